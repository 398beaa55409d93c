//! The Redis backplane: Redis pub/sub between nodes (feature `redis`).
use std::{collections::HashSet, future::Future, pin::Pin, sync::Mutex, time::Duration};

use futures::{future::OptionFuture, StreamExt};
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
    max_unsent: usize,
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
            max_unsent: DEFAULT_MAX_UNSENT,
        })
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
}

const FIRST_RETRY: Duration = Duration::from_millis(50);
const LAST_RETRY: Duration = Duration::from_secs(2);
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
    let mut dropped = Dropped::default();
    let mut retry = FIRST_RETRY;
    loop {
        match connect(&client, &channels).await {
            Ok((mut sink, mut stream, publisher)) => {
                retry = FIRST_RETRY;
                if let Some(lost) = dropped.take() {
                    let _ = events.send(lost);
                }
                let _ = events.send(BackplaneEvent::Up);
                let mut unsent = Unsent::new(max_unsent);
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
                unsent.abandon().for_each(|channel| dropped.add(channel));
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
                },
            }
        }
        retry = (retry * 2).min(LAST_RETRY);
    }
}

/// Publishes not yet acknowledged by Redis: those waiting for the next round trip, and the
/// batch in flight.
struct Unsent {
    waiting: Vec<(String, Vec<u8>)>,
    waiting_bytes: usize,
    in_flight: Vec<(String, Vec<u8>)>,
    in_flight_bytes: usize,
    max: usize,
}

impl Unsent {
    fn new(max: usize) -> Self {
        Unsent {
            waiting: Vec::new(),
            waiting_bytes: 0,
            in_flight: Vec::new(),
            in_flight_bytes: 0,
            max,
        }
    }

    /// Queues a publish; `false` once more than `max` bytes would be unsent.
    fn push(&mut self, channel: String, payload: Vec<u8>) -> bool {
        self.waiting_bytes += channel.len() + payload.len();
        self.waiting.push((channel, payload));
        self.waiting_bytes + self.in_flight_bytes <= self.max
    }

    /// Everything waiting, in order, as one pipeline, now in flight; `None` if nothing waits.
    fn next_batch(&mut self) -> Option<redis::Pipeline> {
        if self.waiting.is_empty() {
            return None;
        }
        self.in_flight.clear();
        std::mem::swap(&mut self.waiting, &mut self.in_flight);
        self.in_flight_bytes = std::mem::take(&mut self.waiting_bytes);
        let mut pipe = redis::pipe();
        for (channel, payload) in &self.in_flight {
            pipe.publish(channel, payload).ignore();
        }
        Some(pipe)
    }

    /// The batch in flight was answered.
    fn sent(&mut self) {
        self.in_flight.clear();
        self.in_flight_bytes = 0;
    }

    /// The connection failed: the channels of everything unsent (the batch in flight may or
    /// may not have reached Redis).
    fn abandon(self) -> impl Iterator<Item = String> {
        self.in_flight
            .into_iter()
            .chain(self.waiting)
            .map(|(channel, _)| channel)
    }
}

/// Most channels a [`BackplaneEvent::Lost`] names; past it, it says "any".
const MAX_LOST_LISTED: usize = 1024;

/// Channels whose publishes were dropped since the connection last worked.
#[derive(Default)]
struct Dropped {
    channels: HashSet<String>,
    any: bool,
}

impl Dropped {
    fn add(&mut self, channel: String) {
        if self.any || self.channels.contains(&channel) {
            return;
        }
        if self.channels.len() == MAX_LOST_LISTED {
            self.any = true;
            self.channels = HashSet::new();
        } else {
            self.channels.insert(channel);
        }
    }

    /// What to report once connected again, if anything was dropped; starts over empty.
    fn take(&mut self) -> Option<BackplaneEvent> {
        let Dropped { channels, any } = std::mem::take(self);
        if any {
            return Some(BackplaneEvent::Lost { channels: None });
        }
        (!channels.is_empty()).then(|| BackplaneEvent::Lost {
            channels: Some(channels.into_iter().collect()),
        })
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

    fn publishes(list: &[(&str, &str)]) -> Vec<u8> {
        let mut pipe = redis::pipe();
        for (channel, payload) in list {
            pipe.publish(*channel, payload.as_bytes()).ignore();
        }
        pipe.get_packed_pipeline()
    }

    #[test]
    fn publishes_made_during_a_round_trip_go_together_in_the_next_in_order() {
        let mut unsent = Unsent::new(1 << 20);
        assert!(unsent.next_batch().is_none(), "nothing to send");
        assert!(unsent.push("a".into(), b"1".to_vec()));
        let first = unsent.next_batch().unwrap();
        assert_eq!(first.get_packed_pipeline(), publishes(&[("a", "1")]));
        assert!(unsent.push("b".into(), b"2".to_vec()));
        assert!(unsent.push("a".into(), b"3".to_vec()));
        unsent.sent();
        let second = unsent.next_batch().unwrap();
        assert_eq!(second.get_packed_pipeline(), publishes(&[("b", "2"), ("a", "3")]));
        assert!(unsent.next_batch().is_none(), "each publish goes once");
    }

    #[test]
    fn the_bound_counts_what_waits_and_what_is_in_flight() {
        let mut unsent = Unsent::new(10);
        assert!(unsent.push("k".into(), vec![0; 4])); // 5 bytes
        let _in_flight = unsent.next_batch();
        assert!(unsent.push("k".into(), vec![0; 4])); // 10: at the bound
        assert!(!unsent.push("k".into(), vec![0; 1]), "12 bytes unsent > 10");
        unsent.sent();
        let mut unsent = Unsent::new(10);
        assert!(unsent.push("k".into(), vec![0; 9]));
        let _ = unsent.next_batch();
        unsent.sent();
        assert!(
            unsent.push("k".into(), vec![0; 9]),
            "an answered batch no longer counts"
        );
    }

    #[test]
    fn what_was_unsent_is_reported_lost_by_channel_then_as_any_past_the_list_limit() {
        let mut unsent = Unsent::new(1 << 20);
        unsent.push("a".into(), vec![1]);
        let _in_flight = unsent.next_batch();
        unsent.push("b".into(), vec![2]);
        unsent.push("a".into(), vec![3]);
        let mut dropped = Dropped::default();
        assert!(dropped.take().is_none(), "nothing dropped, nothing to report");
        unsent.abandon().for_each(|channel| dropped.add(channel));
        match dropped.take() {
            Some(BackplaneEvent::Lost {
                channels: Some(mut channels),
            }) => {
                channels.sort();
                assert_eq!(channels, ["a", "b"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(dropped.take().is_none(), "reported once");
        for i in 0..=MAX_LOST_LISTED {
            dropped.add(i.to_string());
        }
        assert!(matches!(
            dropped.take(),
            Some(BackplaneEvent::Lost { channels: None })
        ));
    }
}
