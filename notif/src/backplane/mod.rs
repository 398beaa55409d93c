//! Several server nodes: a [`Backplane`] carries notifications and identity operations between
//! hubs. Without one, a hub is a single node and needs nothing external.
//!
//! Each node subscribes to one channel per key it has local listeners for (on the first local
//! listen, off with the last) plus one control channel. What crosses is the serialised event,
//! its key and its exclusion; `prepare` runs on the node where the listener lives.
//!
//! ```
//! use notif::{backplane::MemoryBackplane, Config, Hub};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Two hubs in one process, as tests run them; in production use `RedisBackplane`.
//! let bus = MemoryBackplane::new();
//! let a: Hub<Option<String>> = Hub::with_backplane(Config::default(), bus.node(), |_| async { None });
//! let b: Hub<Option<String>> = Hub::with_backplane(Config::default(), bus.node(), |_| async { None });
//! # let _ = (a, b);
//! # }
//! ```
mod lost;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::{future::Future, pin::Pin};

use tokio::sync::{mpsc, oneshot};

pub(crate) use lost::LostChannels;
pub use memory::MemoryBackplane;
#[cfg(feature = "redis")]
pub use redis::RedisBackplane;

/// What a backplane tells its hub.
#[derive(Debug)]
#[non_exhaustive]
pub enum BackplaneEvent {
    /// A message published on a channel this node subscribes to (its own included).
    Message {
        /// The channel.
        channel: String,
        /// The payload as published.
        payload: Vec<u8>,
    },
    /// The connection to the other nodes is working (again): every channel is subscribed.
    Up,
    /// The connection is lost: messages published meanwhile are lost. Local delivery goes on.
    Down,
    /// Publishes on these channels were dropped (the connection was down, or too far behind),
    /// so other nodes' listeners on them may have missed something; `None`: too many to list.
    /// Sent once the connection works again, just before `Up`.
    Lost {
        /// The channels published on and dropped, or `None` for any channel.
        channels: Option<Vec<String>>,
    },
}

/// Transport between nodes. Implementations keep the order of publishes, subscribes and
/// unsubscribes made by one node, resubscribe every channel by themselves after an outage, and
/// report what they dropped ([`BackplaneEvent::Lost`]) so the other nodes can reset the tabs
/// that missed it.
pub trait Backplane: Send + Sync + 'static {
    /// Starts the backplane; every event for this node goes to `events`. Called once, by the hub.
    fn start(&self, events: mpsc::UnboundedSender<BackplaneEvent>);
    /// Publishes `payload` on `channel`. Never waits; failures are reported through `Down`.
    fn publish(&self, channel: String, payload: Vec<u8>);
    /// Subscribes to `channel`; the receiver fires once the subscription is in effect (or at
    /// once while the backplane is down: it resubscribes when it comes back).
    fn subscribe(&self, channel: String) -> oneshot::Receiver<()>;
    /// Unsubscribes from `channel`.
    fn unsubscribe(&self, channel: String);
    /// Resolves once everything published so far has left this node, or cannot (the connection
    /// is down). A node about to exit awaits it, so that its last publishes do not die with the
    /// process. By default at once: a backplane that buffers nothing.
    fn flushed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(std::future::ready(()))
    }
}
