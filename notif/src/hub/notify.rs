//! Sending: `notify` a key (with `prepare` per identity), or send straight to an identity.
use std::{borrow::Cow, sync::Arc};

use super::{
    cluster::{Cluster, Origin, Outbound},
    key_id::KeyId,
    metrics::{Counters, Stamp},
    state::{Delivered, Wakes},
    Hub,
};
use crate::{wire::encode_notification, Identity, TabId, Topic};

/// Tabs a `notify` leaves out (Eliom's `?notfor`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exclude<I> {
    /// Every listener gets it.
    Nobody,
    /// Every listener but this tab (typically the caller: see [`caller`](crate::caller)).
    Tab(TabId),
    /// Every listener but the tabs of this identity.
    Identity(I),
}

/// A notification that was not sent. Nothing was queued for anyone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A key or message cannot be serialised to JSON.
    #[error("notif could not serialise a key or message to JSON ({0}); check its Serialize impl")]
    Serialize(#[from] serde_json::Error),
    /// An encoded notification is larger than `Config::max_message_bytes`.
    #[error("a notification of {bytes} bytes exceeds the {cap}-byte cap (NOTIF_MAX_MESSAGE_BYTES); send a reference and let the tab_id fetch the content")]
    TooLarge {
        /// Its encoded size.
        bytes: usize,
        /// The configured cap.
        cap: usize,
    },
}

/// Most distinct messages remembered per notify for sharing encodings; beyond it (per-user
/// payloads), each identity's message is encoded on its own rather than compared linearly.
const SHARED_ENCODINGS: usize = 32;

/// Where a delivery's frames come from, so each is stamped with its origin (see
/// `cluster/node.rs`).
pub(super) enum Source {
    /// Notified here: published to the other nodes, if any, as its frames are queued here.
    Here(Option<Outbound>),
    /// From another node.
    From(Origin),
}

impl Source {
    /// Publishes what is to be published, numbered; the origin of the frames. Called with the
    /// tables locked when frames are queued, so the number and the frames agree.
    fn stamp<I: Identity>(&mut self, cluster: Option<&Cluster<I>>) -> Origin {
        match self {
            Source::Here(outbound) => match (outbound.take(), cluster) {
                (Some(outbound), Some(cluster)) => cluster.post(outbound),
                _ => Origin::HERE,
            },
            Source::From(origin) => *origin,
        }
    }
}

impl<I: Identity> Hub<I> {
    /// Sends `event` to every tab listening on `key` now, minus `exclude`. Each recipient
    /// identity gets `T::prepare(identity, event)`, computed once per identity; equal messages
    /// are encoded once. Returns how many tabs a frame was queued for on this node (with a
    /// backplane, the other nodes' listeners get it too): a notification to a few tabs is
    /// written to their WebSockets before this returns, one to many tabs by the hub's writer
    /// tasks just after, so a caller never waits for thousands of writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use notif::{Config, Exclude, Hub, SimpleTopic};
    ///
    /// struct Visits;
    /// impl SimpleTopic for Visits {
    ///     const NAME: &'static str = "visits";
    ///     type Key = String;  // a page
    ///     type Message = u64; // its count
    ///     type Identity = Option<String>;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), notif::NotifyError> {
    /// let hub: Hub<Option<String>> = Hub::new(Config::default(), |_parts| async { None });
    /// let reached = hub.notify::<Visits>(&"/".to_string(), &42, Exclude::Nobody).await?;
    /// assert_eq!(reached, 0); // no tab listens yet
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`NotifyError::Serialize`] when the key, event or a message does not serialise to JSON,
    /// [`NotifyError::TooLarge`] when an encoded message exceeds `Config::max_message_bytes`.
    /// Nothing was sent to anyone then.
    pub async fn notify<T: Topic<Identity = I>>(
        &self,
        key: &T::Key,
        event: &T::Event,
        exclude: Exclude<I>,
    ) -> Result<usize, NotifyError> {
        let at = Stamp::now();
        Counters::add(&self.inner.counters.notifies, 1);
        self.inner.counters.topics.notified(T::NAME);
        self.register::<T>();
        let key_json = serde_json::to_string(key)?;
        let key_id = KeyId::from_json(T::NAME, &key_json);
        let outbound = match &self.inner.cluster {
            Some(cluster) => {
                let event = serde_json::to_string(event)?;
                cluster.notify_message(&key_id, T::NAME, &key_json, event, &exclude)
            }
            None => None,
        };
        self.deliver::<T>(&key_id, &key_json, event, exclude, Source::Here(outbound), at)
            .await
    }

    /// Publishes a notification none of this node's tabs gets.
    fn publish_only(&self, mut source: Source) {
        source.stamp(self.inner.cluster.as_ref());
    }

    /// The local half of `notify`: `prepare` for this node's listeners and queue their frames,
    /// stamped `at` (when `notify` was called).
    pub(super) async fn deliver<T: Topic<Identity = I>>(
        &self,
        key_id: &KeyId,
        key_json: &str,
        event: &T::Event,
        exclude: Exclude<I>,
        mut source: Source,
        at: Stamp,
    ) -> Result<usize, NotifyError> {
        let excluded = |tab_id: TabId, identity: &I| match &exclude {
            Exclude::Nobody => false,
            Exclude::Tab(c) => *c == tab_id,
            Exclude::Identity(i) => i == identity,
        };
        if !T::PER_IDENTITY {
            // Everyone gets the same message: prepare and encode once, then one pass over the
            // key's listeners (which may have changed during `prepare`: the pass sees them now).
            let Some(identity) = self.state().any_listener(key_id, excluded) else {
                self.publish_only(source);
                return Ok(0);
            };
            let Some(message) = T::prepare(&identity, event).await else {
                self.publish_only(source);
                return Ok(0);
            };
            let data: Arc<str> =
                encode_notification(T::NAME, key_json, &serde_json::to_string(&message)?).into();
            self.check_size(&data)?;
            let mut wakes = Wakes::new();
            let (queued, lagged) = {
                let mut state = self.state();
                let origin = source.stamp(self.inner.cluster.as_ref());
                state.deliver_to_key(key_id, excluded, &data, origin, at, &mut wakes)
            };
            self.count_deliveries(T::NAME.into(), queued, lagged);
            self.inner.writes.send(wakes, at);
            return Ok(queued as usize);
        }
        let groups = self.state().listeners(key_id, excluded);
        if groups.is_empty() {
            self.publish_only(source);
            return Ok(0);
        }
        let messages =
            futures::future::join_all(groups.iter().map(|(identity, _)| T::prepare(identity, event))).await;

        let mut shared: Vec<(T::Message, Arc<str>)> = Vec::new();
        let mut batches: Vec<(Arc<str>, &[TabId])> = Vec::with_capacity(groups.len());
        for ((_, tab_ids), message) in groups.iter().zip(messages) {
            let Some(message) = message else { continue };
            let data = match shared.iter().find(|(m, _)| *m == message) {
                Some((_, data)) => data.clone(),
                None => {
                    let data: Arc<str> =
                        encode_notification(T::NAME, key_json, &serde_json::to_string(&message)?).into();
                    if shared.len() < SHARED_ENCODINGS {
                        shared.push((message, data.clone()));
                    }
                    data
                }
            };
            self.check_size(&data)?;
            batches.push((data, tab_ids));
        }
        Ok(self.enqueue(T::NAME.into(), Some(key_id), batches, source, at))
    }

    /// Sends `message` to every connected tab of `identity`, listening or not, with `key` in the
    /// frame if given (Ocsigen's manual way: "you have a new message" to one user). No `prepare`.
    /// Returns how many tabs it was queued for on this node; with a backplane, the identity's
    /// tabs on other nodes get it too.
    ///
    /// In the browser, no listen is needed, only an open stream (the first notif hook a page
    /// calls opens it): [`on_notification::<T>`](crate::on_notification) and
    /// [`latest_notification::<T>`](crate::latest_notification) receive it as a
    /// [`Notification`](crate::Notification) whose `key` is the `key` given here (`None`
    /// without). With a key, a component holding that key through
    /// [`use_listen`](crate::use_listen) also gets it in
    /// [`Listening::on_message`](crate::Listening::on_message) and `latest`; with `None`, only
    /// the topic-wide hooks do.
    ///
    /// # Examples
    ///
    /// ```
    /// use leptos::prelude::*;
    /// use notif::{Config, Hub, SimpleTopic};
    ///
    /// struct Inbox;
    /// impl SimpleTopic for Inbox {
    ///     const NAME: &'static str = "inbox";
    ///     type Key = u32; // a conversation, when the message names one
    ///     type Message = String;
    ///     type Identity = Option<String>;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), notif::NotifyError> {
    /// let hub: Hub<Option<String>> = Hub::new(Config::default(), |_parts| async { None });
    /// let ann = Some("ann".to_string());
    /// let tabs = hub.send_to_identity::<Inbox>(&ann, None, &"you have a new message".into())?;
    /// assert_eq!(tabs, 0); // ann has no tab open
    /// # Ok(())
    /// # }
    ///
    /// /// In ann's tabs: a count of new messages, with no listen.
    /// #[component]
    /// fn Unread() -> impl IntoView {
    ///     let unread = RwSignal::new(0);
    ///     notif::on_notification::<Inbox>(move |_| unread.update(|n| *n += 1));
    ///     view! { <span class="unread">{unread}</span> }
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`notify`](Self::notify): the key or message does not serialise, or is too large.
    pub fn send_to_identity<T: Topic<Identity = I>>(
        &self,
        identity: &I,
        key: Option<&T::Key>,
        message: &T::Message,
    ) -> Result<usize, NotifyError> {
        let at = Stamp::now();
        let key_json = match key {
            Some(key) => serde_json::to_string(key)?,
            None => "null".to_owned(),
        };
        let message_json = serde_json::to_string(message)?;
        let data: Arc<str> = encode_notification(T::NAME, &key_json, &message_json).into();
        self.check_size(&data)?;
        let outbound = self
            .inner
            .cluster
            .as_ref()
            .and_then(|cluster| cluster.send_message(T::NAME, identity, &key_json, &message_json));
        Ok(self.enqueue_to_identity(T::NAME.into(), identity, data, Source::Here(outbound), at))
    }

    /// The local half of `send_to_identity`, for a message from another node.
    pub(super) fn send_local(
        &self,
        topic: &str,
        identity: &I,
        key_json: &str,
        message_json: &str,
        origin: Origin,
    ) {
        // Nodes share no clock: timed from its arrival here.
        let at = Stamp::now();
        let data: Arc<str> = encode_notification(topic, key_json, message_json).into();
        let topic = Cow::Owned(topic.to_owned());
        self.enqueue_to_identity(topic, identity, data, Source::From(origin), at);
    }

    fn enqueue_to_identity(
        &self,
        topic: Cow<'static, str>,
        identity: &I,
        data: Arc<str>,
        source: Source,
        at: Stamp,
    ) -> usize {
        let tab_ids = self.state().tabs_of(identity);
        self.enqueue(topic, None, vec![(data, &tab_ids[..])], source, at)
    }

    fn check_size(&self, data: &str) -> Result<(), NotifyError> {
        let cap = self.inner.config.max_message_bytes;
        if data.len() > cap {
            return Err(NotifyError::TooLarge {
                bytes: data.len(),
                cap,
            });
        }
        Ok(())
    }

    fn enqueue(
        &self,
        topic: Cow<'static, str>,
        key: Option<&KeyId>,
        batches: Vec<(Arc<str>, &[TabId])>,
        mut source: Source,
        at: Stamp,
    ) -> usize {
        let (mut queued, mut lagged) = (0u64, 0u64);
        let mut wakes = Wakes::new();
        {
            let mut state = self.state();
            let origin = source.stamp(self.inner.cluster.as_ref());
            for (data, tab_ids) in &batches {
                for &tab_id in *tab_ids {
                    match state.deliver(tab_id, key, data, origin, at, &mut wakes) {
                        Delivered::Queued => queued += 1,
                        Delivered::Lagged => lagged += 1,
                        Delivered::Skipped => {}
                    }
                }
            }
        }
        self.count_deliveries(topic, queued, lagged);
        self.inner.writes.send(wakes, at);
        queued as usize
    }

    fn count_deliveries(&self, topic: Cow<'static, str>, queued: u64, lagged: u64) {
        let counters = &self.inner.counters;
        Counters::add(&counters.deliveries, queued);
        counters.topics.delivered(topic, queued);
        Counters::add(&counters.drops, lagged);
        Counters::add(&counters.lagged, lagged);
        if lagged > 0 {
            tracing::warn!(lagged, "notif: cut off tabs whose queue was full");
        }
    }
}
