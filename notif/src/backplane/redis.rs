//! The Redis backplane: Redis pub/sub between nodes (feature `redis`).
use std::{collections::HashSet, sync::Mutex, time::Duration};

use futures::StreamExt;
use redis::AsyncCommands;
use tokio::sync::{mpsc, oneshot};

use super::{Backplane, BackplaneEvent};

/// Nodes sharing one Redis: each publishes to a channel per key and subscribes to the keys it
/// has listeners for. It reconnects and resubscribes by itself after an outage.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), redis::RedisError> {
/// use std::sync::Arc;
/// let backplane = Arc::new(notif::RedisBackplane::new("redis://127.0.0.1:6379")?);
/// let hub: notif::Hub<Option<String>> =
///     notif::Hub::with_backplane(notif::Config::default(), backplane, |_| async { None });
/// # let _ = hub; Ok(()) }
/// ```
pub struct RedisBackplane {
    client: redis::Client,
    commands: mpsc::UnboundedSender<Command>,
    pending: Mutex<Option<mpsc::UnboundedReceiver<Command>>>,
}

enum Command {
    Publish(String, Vec<u8>),
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
}

impl RedisBackplane {
    /// A backplane for the Redis at `url` (`redis://host:port`). Connects when the hub starts it;
    /// fails here only if the URL is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let (commands, pending) = mpsc::unbounded_channel();
        Ok(RedisBackplane {
            client,
            commands,
            pending: Mutex::new(Some(pending)),
        })
    }
}

impl Backplane for RedisBackplane {
    fn start(&self, events: mpsc::UnboundedSender<BackplaneEvent>) {
        let pending = self.pending.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(commands) = pending {
            tokio::spawn(drive(self.client.clone(), commands, events));
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
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);

/// Owns the connections. Connected: carries commands and messages until either fails. Down:
/// records subscriptions (confirming them at once, so listens go on locally), drops publishes,
/// and retries with backoff.
async fn drive(
    client: redis::Client,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<BackplaneEvent>,
) {
    let mut channels: HashSet<String> = HashSet::new();
    let mut retry = FIRST_RETRY;
    loop {
        match connect(&client, &channels).await {
            Ok((mut sink, mut stream, mut publisher)) => {
                retry = FIRST_RETRY;
                let _ = events.send(BackplaneEvent::Up);
                loop {
                    tokio::select! {
                        command = commands.recv() => {
                            let ok = match command {
                                None => return,
                                Some(Command::Publish(channel, payload)) => {
                                    publisher.publish::<_, _, ()>(channel, payload).await.is_ok()
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
                    Some(Command::Publish(..)) => {} // lost; other nodes reset their tabs when it returns
                    Some(Command::Subscribe(channel, done)) => {
                        channels.insert(channel);
                        let _ = done.send(());
                    }
                    Some(Command::Unsubscribe(channel)) => {
                        channels.remove(&channel);
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
        let publisher = client.get_multiplexed_async_connection().await?;
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
