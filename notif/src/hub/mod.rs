//! The server half: a [`Hub`] holds every tab, its identity, its queue and its listens.
//!
//! # How a notification travels
//!
//! 1. [`Hub::notify`] (`notify.rs`) turns the key into a [`KeyId`](key_id) (topic name and key
//!    JSON). With a backplane it also encodes the event for the other nodes.
//! 2. The key's listeners are read under the tables' lock (`state/`), which is released while
//!    `Topic::prepare` runs once per identity. Equal messages are encoded once into a shared
//!    `Arc<str>` (`wire::encode_notification`).
//! 3. The tables are locked again. The message for the other nodes is numbered and published
//!    (`cluster/`), and each listening tab's frame is pushed (`tab.rs`): numbered, kept in its
//!    replay buffer (`replay.rs`) and queued on its connection (`queue.rs`). Each push returns a
//!    wake.
//! 4. With the lock released, the wakes are sent on their way (`writes.rs`): a few are written
//!    before `notify` returns, many by writer tasks. Each wake writes the tab's queued frames
//!    straight to its WebSocket, under that connection's own lock, if the socket is free
//!    (`stream/ws/link.rs`); otherwise it wakes the connection's task, which writes them.
//! 5. Every other node receives the event in the order Redis gives it (`cluster/receive.rs`) and
//!    runs steps 2–4 for its own listeners.
//!
//! # Locks, in the order they may be taken
//!
//! 1. The tables (`Inner::state`, a std mutex held only for table updates, never across an
//!    `.await`).
//! 2. Under it: the cluster's `outbox`, `applied`, `heard` and lingering subscriptions, the
//!    backplane's own (the in-memory bus), and a tab's queue.
//! 3. After it, never under it: a connection's socket (`stream/ws/link.rs`), the writers'
//!    backlog, the expiry queue, the per-address connection counts.
mod admission;
mod clock;
mod cluster;
mod config;
mod connections;
mod drain;
mod expiry;
mod heartbeat;
mod id_map;
mod key_id;
mod listen;
mod listeners;
mod locked;
mod metrics;
mod notify;
mod presence;
pub(crate) mod queue;
mod replay;
mod revalidate;
mod sessions;
mod shrink;
mod state;
mod tab;
mod writes;

use std::{future::Future, pin::Pin, sync::Arc};

pub use config::{Config, ConfigError};
pub(crate) use connections::Slot;
use metrics::Counters;
pub use metrics::Metrics;
pub(crate) use metrics::{Latency, Stamp};
pub use notify::{Exclude, NotifyError};
pub use presence::{PageCursor, PresenceCount, PresenceError, PresentPage};
pub(crate) use revalidate::{credentials_of, Credentials};
use state::State;
pub(crate) use state::{Outgoing, ResumeRefused, Resumed};

use crate::{Backplane, ByeReason, Identity, TabId, Topic};
use cluster::Cluster;
use connections::Connections;
use expiry::Expiries;
use heartbeat::Heartbeat;
use revalidate::Revalidation;
use writes::Writes;

type IdentifyFn<I> = dyn Fn(&http::request::Parts) -> Pin<Box<dyn Future<Output = I> + Send>> + Send + Sync;

/// The registry of tabs, their identities, queues and listens.
///
/// A `Hub` is a cheap, cloneable handle. Mount its stream route once, put it in Leptos context
/// for server functions, and keep a clone wherever else the server notifies from (a background
/// task, a timer, a database listener).
///
/// The app provides the context itself, on its router:
/// `.leptos_routes_with_context(&options, routes, move || provide_context(hub.clone()), shell)`
/// (move a clone into that closure and keep `hub` for [`serve`](fn@crate::serve)'s graceful
/// shutdown). A server function then takes it with `use_context::<Hub<YourIdentity>>()`, or
/// `expect_context`, `YourIdentity` being the topics' [`Topic::Identity`]; see the second
/// example.
///
/// ```
/// use notif::{Config, Exclude, Hub, SimpleTopic};
///
/// struct Counter;
/// impl SimpleTopic for Counter {
///     const NAME: &'static str = "counter";
///     type Key = String;
///     type Message = u64;
///     type Identity = Option<String>;
/// }
///
/// # async fn run() -> Result<(), notif::NotifyError> {
/// // Identity comes from the request; here everyone is anonymous.
/// let hub: Hub<Option<String>> = Hub::new(Config::default(), |_parts| async { None });
/// let router: axum::Router = hub.routes();
/// // ... serve `router` merged into the app's; then, from anywhere:
/// let reached = hub.notify::<Counter>(&"visits".to_string(), &42, Exclude::Nobody).await?;
/// assert_eq!(reached, 0); // nobody listens yet
/// # Ok(()) }
/// ```
///
/// In a server function, the hub the app put in context:
///
/// ```
/// use leptos::prelude::*;
/// # struct Counter;
/// # impl notif::SimpleTopic for Counter {
/// #     const NAME: &'static str = "counter";
/// #     type Key = String;
/// #     type Message = u64;
/// #     type Identity = Option<String>;
/// # }
///
/// #[server]
/// pub async fn visit(count: u64) -> Result<(), ServerFnError> {
///     let hub = use_context::<notif::Hub<Option<String>>>()
///         .ok_or_else(|| ServerFnError::new("the notif hub is not in context"))?;
///     hub.notify::<Counter>(&"visits".to_string(), &count, notif::Exclude::Nobody).await?;
///     Ok(())
/// }
/// ```
pub struct Hub<I: Identity> {
    inner: Arc<Inner<I>>,
}

impl<I: Identity> Clone for Hub<I> {
    fn clone(&self) -> Self {
        Hub {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<I: Identity> {
    config: Config,
    identify: Box<IdentifyFn<I>>,
    // A std mutex: never held across an `.await`, only for short table updates.
    state: std::sync::Mutex<State<I>>,
    counters: Counters,
    cluster: Option<Cluster<I>>,
    heartbeat: Heartbeat,
    // Its own lock: queued under the tables' lock would hold it longer for nothing.
    expiries: std::sync::Mutex<Expiries>,
    writes: Writes,
    connections: Connections,
    revalidation: Revalidation,
    /// Set by `shutdown`: no stream opens after it.
    shutting_down: std::sync::atomic::AtomicBool,
    /// The app's say on who may open a stream; everyone, until it is set.
    admit: std::sync::RwLock<Option<Arc<admission::AdmitFn<I>>>>,
    /// The topics with presence.
    presence: presence::Registry<I>,
}

impl<I: Identity> Hub<I> {
    /// A hub with `config`, resolving a request's identity with `identify` (for instance from a
    /// session cookie). `identify` runs when a tab opens its stream and on every listen.
    ///
    /// `identify` is given the request head and returns a future, which must not borrow the
    /// head (the future is `'static`): read what it needs from `parts` first, then move that
    /// into `async move`. Written `|parts| async move { user_of(parts) }`, it fails to compile
    /// with "lifetime may not live long enough".
    ///
    /// # Examples
    ///
    /// ```
    /// use notif::{Config, Hub};
    ///
    /// /// The `session` cookie's value, if the request has one.
    /// fn session_cookie(parts: &http::request::Parts) -> Option<String> {
    ///     let cookies = parts.headers.get(http::header::COOKIE)?.to_str().ok()?;
    ///     cookies
    ///         .split(';')
    ///         .filter_map(|pair| pair.trim().split_once('='))
    ///         .find(|(name, _)| *name == "session")
    ///         .map(|(_, value)| value.to_owned())
    /// }
    /// # async fn user_of_session(token: &str) -> Option<String> { Some(token.to_owned()) }
    ///
    /// let hub: Hub<Option<String>> = Hub::new(Config::default(), |parts| {
    ///     let session = session_cookie(parts); // read now: the future may not borrow `parts`
    ///     async move { user_of_session(&session?).await }
    /// });
    /// # let _ = hub;
    /// ```
    pub fn new<F, Fut>(config: Config, identify: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = I> + Send + 'static,
    {
        Self::build(config, None, identify)
    }

    /// A hub that is one node of several, exchanging notifications and identity operations
    /// with the others through `backplane`. Must be called inside a tokio runtime.
    pub fn with_backplane<F, Fut>(config: Config, backplane: Arc<dyn Backplane>, identify: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = I> + Send + 'static,
    {
        let hub = Self::build(config, Some(Cluster::new(backplane)), identify);
        hub.state().poster = hub.inner.cluster.as_ref().map(|cluster| cluster.poster().clone());
        hub.start_cluster();
        hub
    }

    fn build<F, Fut>(config: Config, cluster: Option<Cluster<I>>, identify: F) -> Self
    where
        F: Fn(&http::request::Parts) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = I> + Send + 'static,
    {
        let counters = Counters::default();
        Hub {
            inner: Arc::new(Inner {
                heartbeat: Heartbeat::new(config.heartbeat),
                expiries: std::sync::Mutex::new(Expiries::default()),
                writes: Writes::new(counters.latency.clone()),
                config,
                identify: Box::new(move |parts| Box::pin(identify(parts))),
                state: std::sync::Mutex::new(State::default()),
                counters,
                cluster,
                connections: Connections::default(),
                revalidation: Revalidation::default(),
                admit: std::sync::RwLock::new(None),
                shutting_down: Default::default(),
                presence: presence::Registry::default(),
            }),
        }
    }

    /// The routes notif serves: `GET /notif/ws` (WebSocket, what the browser client uses) and
    /// `GET /notif/stream` (Server-Sent Events, for other clients), carrying the same frames
    /// under the same resume rules (docs/PROTOCOL.md). Merge them into the app's router.
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        crate::stream::routes(self)
    }

    /// The configuration this hub runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The identity of a request, as the `identify` function given to [`Hub::new`] sees it.
    pub async fn identify(&self, parts: &http::request::Parts) -> I {
        (self.inner.identify)(parts).await
    }

    fn register<T: Topic<Identity = I>>(&self) {
        if let Some(cluster) = &self.inner.cluster {
            cluster.register::<T>();
        }
    }

    /// Makes this node ready for `T`: with a backplane, a tab held here may be listening on a
    /// key of `T` through a call another node took (a load balancer sends each call anywhere),
    /// or moved here with such listens, and this node must then know how to deliver `T`'s
    /// notifications from other nodes. Register every topic on every node at startup. Without
    /// a backplane it changes nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use notif::{backplane::MemoryBackplane, Config, Hub, SimpleTopic};
    ///
    /// struct Room;
    /// impl SimpleTopic for Room {
    ///     const NAME: &'static str = "room";
    ///     type Key = u32;
    ///     type Message = String;
    ///     type Identity = Option<String>;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let bus = MemoryBackplane::new();
    /// let hub: Hub<Option<String>> =
    ///     Hub::with_backplane(Config::default(), bus.node(), |_| async { None }).with_topic::<Room>();
    /// # let _ = hub;
    /// # }
    /// ```
    pub fn with_topic<T: Topic<Identity = I>>(self) -> Self {
        self.register::<T>();
        self
    }

    /// This node's id among several (the `node` of the hellos it sends); `None` without a
    /// backplane.
    pub fn node(&self) -> Option<String> {
        self.inner.cluster.as_ref().map(|c| c.node().to_string())
    }

    /// Ends every tab of `identity` at once (sign-out): each gets a `bye` frame, its stream
    /// closes and its listens are gone. Returns how many tabs were ended.
    pub fn disconnect_identity(&self, identity: &I) -> usize {
        if let Some(cluster) = &self.inner.cluster {
            cluster.publish_disconnect(identity);
        }
        self.disconnect_identity_local(identity)
    }

    fn disconnect_identity_local(&self, identity: &I) -> usize {
        let mut state = self.state();
        let tab_ids = state.tabs_of(identity);
        for &tab_id in &tab_ids {
            state.end(tab_id, ByeReason::Disconnected);
        }
        tab_ids.len()
    }

    /// Ends every stream with a `bye` (`shutdown`) frame and refuses new ones (503); browsers
    /// reconnect to whichever server answers next. Call on SIGTERM before the server stops
    /// ([`serve`](fn@crate::serve)'s graceful shutdown does).
    ///
    /// With a backplane the node drains instead: each tab gets its `bye` but is kept, so that
    /// the node its browser reconnects to can take it over with what it missed, for
    /// `Config::drain` ([`drained`](Self::drained) says when that is over).
    pub fn shutdown(&self) {
        let mut state = self.state();
        // Under the tables' lock: a tab being opened or resumed now sees the flag there and is
        // refused, or was registered before and gets its bye below.
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let tab_ids: Vec<TabId> = state.tab_ids();
        let drain = self.inner.cluster.is_some() && !self.inner.config.drain().is_zero();
        for tab_id in tab_ids {
            if drain {
                state.say_bye(tab_id, ByeReason::Shutdown);
            } else {
                state.end(tab_id, ByeReason::Shutdown);
            }
        }
    }

    /// Where the time from `notify` to a socket write is counted.
    pub(crate) fn latency(&self) -> &Latency {
        &self.inner.counters.latency
    }

    /// Current state and counters.
    pub fn metrics(&self) -> Metrics {
        let mut metrics = self.state().metrics().read_counters(&self.inner.counters);
        if let Some(cluster) = &self.inner.cluster {
            metrics.backplane = 1;
            metrics.backplane_up = cluster.is_up() as u64;
            metrics.backplane_outages = cluster.outages.load(std::sync::atomic::Ordering::Relaxed);
            metrics.backplane_received = cluster.received.load(std::sync::atomic::Ordering::Relaxed);
            metrics.backplane_dropped = cluster.dropped.load(std::sync::atomic::Ordering::Relaxed);
            metrics.calls_forwarded = cluster.forwarded.load(std::sync::atomic::Ordering::Relaxed);
            metrics.tabs_moved_in = cluster.moved_in.load(std::sync::atomic::Ordering::Relaxed);
            metrics.tabs_moved_out = cluster.moved_out.load(std::sync::atomic::Ordering::Relaxed);
            metrics.backplane_gaps = cluster.gaps.load(std::sync::atomic::Ordering::Relaxed);
        }
        metrics
    }
}

#[cfg(test)]
mod tests;
