//! Presence on the server: which topics track it and how their identities appear
//! ([`Hub::with_presence`]), and who is on a key ([`Hub::presence`], [`Hub::present`]).
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};

use super::{key_id::KeyId, state::Appearance, Hub};
use crate::{Identity, Presence, Topic};

type PublicFn<I> = dyn Fn(I) -> Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync;

/// The topics registered with presence, by name: how each shows an identity, as JSON.
pub(super) struct Registry<I> {
    topics: RwLock<HashMap<&'static str, Arc<PublicFn<I>>>>,
}

impl<I> Default for Registry<I> {
    fn default() -> Self {
        Registry {
            topics: RwLock::default(),
        }
    }
}

/// How many are on a key: see [`Hub::presence`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresenceCount {
    /// Tabs listening on the key: connected, or disconnected within their resume window.
    pub tabs: u64,
    /// Distinct identities among them.
    pub identities: u64,
}

/// One page of the identities on a key, in a stable order (that of their JSON): see
/// [`Hub::present`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PresentPage<I> {
    /// At most the `limit` asked for.
    pub identities: Vec<I>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageCursor>,
}

/// Where a page of [`Hub::present`] starts: the last identity of the page before it. Opaque;
/// serialisable, so a server function can hand it to the browser and back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageCursor(String);

/// A presence question that could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresenceError {
    /// The key cannot be serialised to JSON, or is not one a tab could listen on.
    #[error("bad key: {0}")]
    BadKey(String),
    /// Another node did not answer within 2 s (it may have just died: it is counted out after
    /// `Config::node_timeout`); ask again.
    #[error("another node did not answer in time; try again")]
    Unreachable,
}

impl<I: Identity> Hub<I> {
    /// Tracks who listens on the keys of `T` and tells listeners (see [`Presence`]): a tab
    /// that listens on a key of `T` then gets the list of those on it, and `join`/`leave` as
    /// identities come and go. Register at startup, on every node, before tabs listen.
    ///
    /// # Examples
    ///
    /// ```
    /// use notif::{Config, Hub, Presence, SimpleTopic};
    ///
    /// struct Room;
    /// impl SimpleTopic for Room {
    ///     const NAME: &'static str = "room";
    ///     type Key = u32;
    ///     type Message = String;
    ///     type Identity = Option<String>;
    /// }
    /// impl Presence for Room {
    ///     type Public = String;
    ///     #[cfg(feature = "ssr")]
    ///     async fn public(user: &Option<String>) -> Option<String> {
    ///         user.clone()
    ///     }
    /// }
    ///
    /// let hub: Hub<Option<String>> = Hub::new(Config::default(), |_| async { None }).with_presence::<Room>();
    /// # let _ = hub;
    /// ```
    pub fn with_presence<T: Presence + Topic<Identity = I>>(self) -> Self {
        self.register::<T>();
        let public: Arc<PublicFn<I>> = Arc::new(|identity: I| {
            Box::pin(async move {
                let public = T::public(&identity).await?;
                serde_json::to_string(&public).ok()
            })
        });
        let mut topics = self
            .inner
            .presence
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner());
        topics.insert(T::NAME, public);
        drop(topics);
        self
    }

    /// How `identity` appears on `key`, if its topic has presence.
    pub(in crate::hub) async fn appearance(&self, key: &KeyId, identity: &I) -> Option<Appearance> {
        let public = {
            let topics = self
                .inner
                .presence
                .topics
                .read()
                .unwrap_or_else(|e| e.into_inner());
            topics.get(key.topic())?.clone()
        };
        Some(Appearance {
            order: serde_json::to_string(identity).unwrap_or_default().into(),
            public: public(identity.clone()).await.map(Into::into),
        })
    }

    /// How many tabs listen on `key`, and how many distinct identities they belong to, on every
    /// node. Any topic can be asked, with presence or not.
    ///
    /// # Errors
    ///
    /// [`PresenceError::BadKey`] when the key does not serialise to JSON;
    /// [`PresenceError::Unreachable`] when another node did not answer.
    pub async fn presence<T: Topic<Identity = I>>(
        &self,
        key: &T::Key,
    ) -> Result<PresenceCount, PresenceError> {
        let on_key = self.gather::<T>(key).await?;
        Ok(PresenceCount {
            tabs: on_key.values().sum(),
            identities: on_key.len() as u64,
        })
    }

    /// The identities listening on `key` on every node, `limit` at a time, in the order of their
    /// JSON:
    /// `after` is `None` for the first page and the previous page's `next` for the others (a
    /// `limit` of 0 counts as 1). The
    /// identities themselves, for server code; browsers see only what [`Presence::public`]
    /// shows.
    ///
    /// # Examples
    ///
    /// ```
    /// # use notif::{Config, Hub, SimpleTopic};
    /// # struct Room;
    /// # impl SimpleTopic for Room {
    /// #     const NAME: &'static str = "room";
    /// #     type Key = u32;
    /// #     type Message = String;
    /// #     type Identity = Option<String>;
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), notif::PresenceError> {
    /// # let hub: Hub<Option<String>> = Hub::new(Config::default(), |_| async { None });
    /// let mut everyone = Vec::new();
    /// let mut after = None;
    /// loop {
    ///     let page = hub.present::<Room>(&7, after.as_ref(), 100).await?;
    ///     everyone.extend(page.identities);
    ///     match page.next {
    ///         Some(next) => after = Some(next),
    ///         None => break,
    ///     }
    /// }
    /// # assert!(everyone.is_empty());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`PresenceError::BadKey`] when the key does not serialise to JSON;
    /// [`PresenceError::Unreachable`] when another node did not answer.
    pub async fn present<T: Topic<Identity = I>>(
        &self,
        key: &T::Key,
        after: Option<&PageCursor>,
        limit: usize,
    ) -> Result<PresentPage<I>, PresenceError> {
        let limit = limit.max(1);
        let on_key = self.gather::<T>(key).await?;
        let mut ordered: Vec<(String, I)> = on_key
            .into_keys()
            .filter(|order| after.is_none_or(|after| order.as_str() > after.0.as_str()))
            .filter_map(|order| {
                let identity = serde_json::from_str(&order).ok()?;
                Some((order, identity))
            })
            .collect();
        ordered.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let more = ordered.len() > limit;
        ordered.truncate(limit);
        let next = match ordered.last() {
            Some((order, _)) if more => Some(PageCursor(order.clone())),
            _ => None,
        };
        Ok(PresentPage {
            identities: ordered.into_iter().map(|(_, identity)| identity).collect(),
            next,
        })
    }
}

impl<I: Identity> Hub<I> {
    /// Identities (JSON) on `key` with their tabs, on this node and every other one.
    async fn gather<T: Topic<Identity = I>>(
        &self,
        key: &T::Key,
    ) -> Result<HashMap<String, u64>, PresenceError> {
        let key_id = KeyId::new::<T>(key).map_err(|e| PresenceError::BadKey(e.to_string()))?;
        let mut all: HashMap<String, u64> = self.identities_on_json(&key_id).into_iter().collect();
        if let Some(cluster) = &self.inner.cluster {
            let elsewhere = cluster
                .present_elsewhere(&key_id)
                .await
                .ok_or(PresenceError::Unreachable)?;
            for (identity, tabs) in elsewhere {
                *all.entry(identity).or_default() += tabs;
            }
        }
        Ok(all)
    }

    /// Identities (JSON) on `key` here, with their tabs here.
    pub(in crate::hub) fn identities_on_json(&self, key: &KeyId) -> Vec<(String, u64)> {
        let on_key = self.state().identities_on(key);
        on_key
            .into_iter()
            .map(|(identity, tabs)| (serde_json::to_string(&identity).unwrap_or_default(), tabs as u64))
            .collect()
    }
}
