//! The Redis backplane: Redis pub/sub between nodes (feature `redis`).
use std::{collections::HashSet, future::Future, pin::Pin, sync::Mutex, time::Duration};

use futures::{future::OptionFuture, StreamExt};
use tokio::sync::{mpsc, oneshot};

mod unsent;

use unsent::Unsent;

use super::{Backplane, BackplaneEvent, LostChannels};

/// The env var [`RedisBackplane::from_env`] reads.
const URL_VAR: &str = "NOTIF_REDIS_URL";

/// Nodes sharing one Redis: each publishes to a channel per key and subscribes to the keys it
/// has listeners for. It reconnects and resubscribes by itself after an outage.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
/// use std::sync::Arc;
/// let backplane = Arc::new(notif::backplane::RedisBackplane::new("redis://127.0.0.1:6379")?);
/// let hub: notif::Hub<Option<String>> =
///     notif::Hub::with_backplane(notif::Config::default(), backplane, |_| async { None });
/// # let _ = hub; Ok(()) }
/// ```
pub struct RedisBackplane {
    client: redis::Client,
    commands: mpsc::UnboundedSender<Command>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
    max_unsent: usize,
}

enum Command {
    Publish(String, Vec<u8>),
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
    /// Answer once everything published before is acknowledged by Redis (or lost).
    Flush(oneshot::Sender<()>),
}

impl RedisBackplane {
    /// A backplane for the Redis at `url` (`redis://host:port`). Connects when the hub starts it;
    /// fails here only if the URL is not a Redis URL.
    ///
    /// # Errors
    ///
    /// A [`redis::RedisError`] of kind `InvalidClientConfig` when the `redis` crate does not
    /// take `url`: it does not parse, its scheme is not `redis`, `valkey` or a Unix socket's, or
    /// its host, database number, user, password or `protocol` is unusable. `rediss://` (TLS)
    /// fails too unless the app turns on one of `redis`'s TLS features: notif turns on none.
    /// Nothing connects here, so Redis being down is not an error yet.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (commands, pending) = mpsc::unbounded_channel();
        Ok(RedisBackplane {
            client,
            commands,
            pending: Mutex::new(Some(pending)),
            max_unsent: DEFAULT_MAX_UNSENT,
        })
    }

    /// The backplane `NOTIF_REDIS_URL` names (`redis://host:port`), or `None` when it is unset
    /// or empty: then the hub is one node on its own. [`Config::from_env`](crate::Config::from_env)
    /// reads the hub's other settings; this is the one that makes a node one of several.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`](crate::ConfigError) naming `NOTIF_REDIS_URL` when it is set but not a
    /// URL [`new`](Self::new) takes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    /// use notif::{backplane::RedisBackplane, Config, Hub};
    ///
    /// let identify = |_: &http::request::Parts| async { None::<String> };
    /// let config = Config::from_env()?;
    /// let hub = match RedisBackplane::from_env()? {
    ///     Some(redis) => Hub::with_backplane(config, Arc::new(redis), identify),
    ///     None => Hub::new(config, identify),
    /// };
    /// # let _ = hub; Ok(()) }
    /// ```
    pub fn from_env() -> Result<Option<Self>, crate::ConfigError> {
        Self::from_setting(std::env::var(URL_VAR).ok())
    }

    fn from_setting(url: Option<String>) -> Result<Option<Self>, crate::ConfigError> {
        match url {
            Some(url) if !url.trim().is_empty() => match Self::new(url.trim()) {
                Ok(backplane) => Ok(Some(backplane)),
                Err(_) => Err(crate::ConfigError {
                    name: URL_VAR,
                    value: url,
                    expected: "a Redis URL, redis://host:port (rediss:// needs one of the redis crate's TLS features)",
                }),
            },
            _ => Ok(None),
        }
    }

    /// At most `bytes` of payload published but not yet acknowledged by Redis (default 16 MiB).
    /// A Redis that falls that far behind is treated as down: what is unsent is dropped, and
    /// when Redis is back every node resets the tabs that may have missed something, as after
    /// an outage. Memory stays bounded however slow Redis gets.
    pub fn max_unsent_bytes(mut self, bytes: usize) -> Self {
        self.max_unsent = bytes;
        self
    }
}

impl Backplane for RedisBackplane {
    fn start(&self, events: mpsc::UnboundedSender<BackplaneEvent>) {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(commands) = pending {
            tokio::spawn(drive(self.client.clone(), commands, events, self.max_unsent));
        }
    }

    fn publish(&self, channel: String, payload: Vec<u8>) {
        let _ = self.commands.send(Command::Publish(channel, payload));
    }

    fn subscribe(&self, channel: String) -> oneshot::Receiver<()> {
        let (done, confirmed) = oneshot::channel();
        let _ = self.commands.send(Command::Subscribe(channel, done));
        confirmed
    }

    fn unsubscribe(&self, channel: String) {
        let _ = self.commands.send(Command::Unsubscribe(channel));
    }

    fn flushed(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let (done, flushed) = oneshot::channel();
        let _ = self.commands.send(Command::Flush(done));
        Box::pin(async move {
            let _ = flushed.await;
        })
    }
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);
/// A connection that lasted this long was a working one: the next outage retries quickly again.
const STABLE: Duration = Duration::from_secs(10);

/// The wait before reconnecting after a connection that lasted `lasted` broke. One that broke
/// soon after it was made (Redis too slow for this node, or flapping) keeps backing off: each
/// reconnection resets tabs, so it must not come every 50 ms.
fn retry_after(retry: Duration, lasted: Duration) -> Duration {
    if lasted >= STABLE {
        FIRST_RETRY
    } else {
        retry
    }
}
const DEFAULT_MAX_UNSENT: usize = 16 << 20;
/// A publish batch not acknowledged within this is a Redis that hangs: treated as down.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Owns the connections. Connected: carries commands and messages until either fails. Down:
/// records subscriptions (confirming them at once, so listens go on locally), drops publishes
/// (noting their channels, reported as [`BackplaneEvent::Lost`] once back), and retries with
/// backoff.
async fn drive(
    client: redis::Client,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<BackplaneEvent>,
    max_unsent: usize,
) {
    let mut channels: HashSet<String> = HashSet::new();
    let mut dropped = LostChannels::default();
    let mut retry = FIRST_RETRY;
    loop {
        match connect(&client, &channels).await {
            Ok((mut sink, mut stream, publisher)) => {
                let connected = tokio::time::Instant::now();
                if let Some(channels) = dropped.take() {
                    let _ = events.send(BackplaneEvent::Lost { channels });
                }
                let _ = events.send(BackplaneEvent::Up);
                let mut unsent = Unsent::new(max_unsent);
                // Flushes waiting for what was published before them to be acknowledged.
                let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
                // One pipeline of publishes in flight; those made meanwhile wait for the next.
                // One round trip carries everything published during the previous one, in order.
                let mut in_flight: Option<Pin<Box<dyn Future<Output = bool> + Send>>> = None;
                loop {
                    if in_flight.is_none() {
                        if let Some(pipe) = unsent.next_batch() {
                            let mut publisher = publisher.clone();
                            in_flight = Some(Box::pin(async move {
                                pipe.query_async::<()>(&mut publisher).await.is_ok()
                            }));
                        }
                    }
                    tokio::select! {
                        Some(ok) = OptionFuture::from(in_flight.as_mut()), if in_flight.is_some() => {
                            in_flight = None;
                            unsent.sent();
                            if !ok {
                                break;
                            }
                            if unsent.is_empty() {
                                for done in flushes.drain(..) {
                                    let _ = done.send(());
                                }
                            }
                        }
                        command = commands.recv() => {
                            let ok = match command {
                                None => return,
                                Some(Command::Publish(channel, payload)) => {
                                    let ok = unsent.push(channel, payload);
                                    if !ok {
                                        tracing::warn!(
                                            max_unsent,
                                            "notif: Redis is too far behind; treating it as down"
                                        );
                                    }
                                    ok
                                }
                                Some(Command::Subscribe(channel, done)) => {
                                    let ok = sink.subscribe(&channel).await.is_ok();
                                    channels.insert(channel);
                                    let _ = done.send(());
                                    ok
                                }
                                Some(Command::Unsubscribe(channel)) => {
                                    channels.remove(&channel);
                                    sink.unsubscribe(&channel).await.is_ok()
                                }
                                Some(Command::Flush(done)) => {
                                    if unsent.is_empty() {
                                        let _ = done.send(());
                                    } else {
                                        flushes.push(done);
                                    }
                                    true
                                }
                            };
                            if !ok {
                                break;
                            }
                        }
                        message = stream.next() => match message {
                            Some(message) => {
                                let channel = message.get_channel_name().to_owned();
                                let payload = message.get_payload_bytes().to_vec();
                                let _ = events.send(BackplaneEvent::Message { channel, payload });
                            }
                            None => break,
                        },
                    }
                }
                drop(in_flight);
                // Dropped: those flushes resolve (what they waited for is lost and reported).
                drop(flushes);
                unsent.abandon().for_each(|channel| dropped.add(channel));
                retry = retry_after(retry, connected.elapsed());
            }
            Err(error) => tracing::debug!(%error, "notif: cannot reach Redis"),
        }
        let _ = events.send(BackplaneEvent::Down);
        // Down: keep serving commands until it is time to retry.
        let until = tokio::time::Instant::now() + retry;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                command = commands.recv() => match command {
                    None => return,
                    // Lost: reported when connected again, so other nodes reset the tabs it was for.
                    Some(Command::Publish(channel, _)) => dropped.add(channel),
                    Some(Command::Subscribe(channel, done)) => {
                        channels.insert(channel);
                        let _ = done.send(());
                    }
                    Some(Command::Unsubscribe(channel)) => {
                        channels.remove(&channel);
                    }
                    Some(Command::Flush(done)) => {
                        let _ = done.send(());
                    }
                },
            }
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

async fn connect(
    client: &redis::Client,
    channels: &HashSet<String>,
) -> redis::RedisResult<(
    redis::aio::PubSubSink,
    redis::aio::PubSubStream,
    redis::aio::MultiplexedConnection,
)> {
    let work = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        for channel in channels {
            sink.subscribe(channel).await?;
        }
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(RESPONSE_TIMEOUT);
        let publisher = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        Ok((sink, stream, publisher))
    };
    match tokio::time::timeout(Duration::from_secs(2), work).await {
        Ok(result) => result,
        Err(_) => Err(redis::RedisError::from((
            redis::ErrorKind::IoError,
            "connecting to Redis timed out",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_var_makes_a_node_one_of_several_and_a_bad_one_is_refused() {
        for unset in [None, Some(String::new()), Some("  ".into())] {
            assert!(RedisBackplane::from_setting(unset).unwrap().is_none(), "one node");
        }
        let set = RedisBackplane::from_setting(Some("redis://127.0.0.1:6379".into()));
        assert!(set.unwrap().is_some());
        for bad in ["127.0.0.1:6379", "http://127.0.0.1", "redis://"] {
            let Err(error) = RedisBackplane::from_setting(Some(bad.into())) else {
                panic!("{bad} taken");
            };
            assert_eq!((error.name, error.value.as_str()), (URL_VAR, bad));
            assert!(error.to_string().contains("redis://host:port"), "{error}");
        }
    }

    #[test]
    fn reconnects_back_off_unless_the_last_connection_held() {
        let mut retry = FIRST_RETRY;
        for _ in 0..10 {
            // Broke at once each time: the wait grows (doubled after each wait) to its cap.
            retry = (retry_after(retry, Duration::from_millis(100)) * 2).min(LAST_RETRY);
        }
        assert_eq!(retry, LAST_RETRY);
        assert_eq!(retry_after(retry, STABLE), FIRST_RETRY, "a connection that held");
    }
}
