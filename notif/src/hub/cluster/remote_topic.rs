//! Delivering events that arrive from other nodes: a topic known by name, its types restored
//! from JSON.
use std::{future::Future, marker::PhantomData, pin::Pin};

use super::Origin;
use crate::{hub::key_id::KeyId, Exclude, Hub, Identity, Topic};

pub(super) type Delivery<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A topic as a node receiving its events knows it: by name, types restored from JSON.
pub(super) trait RemoteTopic<I: Identity>: Send + Sync {
    fn deliver<'a>(
        &'a self,
        hub: &'a Hub<I>,
        key: &'a str,
        event: &'a str,
        exclude: Exclude<I>,
        origin: Origin,
    ) -> Delivery<'a>;
}

pub(super) struct Typed<T>(pub(super) PhantomData<fn() -> T>);

impl<T: Topic> RemoteTopic<T::Identity> for Typed<T> {
    fn deliver<'a>(
        &'a self,
        hub: &'a Hub<T::Identity>,
        key: &'a str,
        event: &'a str,
        exclude: Exclude<T::Identity>,
        origin: Origin,
    ) -> Delivery<'a> {
        Box::pin(async move {
            match serde_json::from_str::<T::Event>(event) {
                Ok(event) => {
                    let key_id = KeyId::from_json(T::NAME, key);
                    let source = crate::hub::notify::Source::From(origin);
                    // Nodes share no clock: timed from its arrival here.
                    let at = crate::hub::Stamp::now();
                    if let Err(error) = hub.deliver::<T>(&key_id, key, &event, exclude, source, at).await {
                        tracing::warn!(%error, topic = T::NAME, "notif: a notification from another node was not delivered");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, topic = T::NAME, "notif: undecodable event from another node")
                }
            }
        })
    }
}
