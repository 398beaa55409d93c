//! Fan-out at stepped rates: N streams spread over K keys, a publisher notifying at a fixed rate
//! per step; each step reports deliveries per second, loss, latency from the *scheduled* send
//! time, and the server's CPU per delivery. The answer is the highest rate whose p99 stays under
//! the bound with nothing lost.
use std::{
    cell::{Cell, RefCell},
    rc::Rc,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::{
    client::{open_each, Listen, NotOpen, Target},
    procstat::{proc_stat, ProcStat},
};

/// What to run.
#[derive(Debug, Clone)]
pub struct Fanout {
    pub url: String,
    /// Where notifications are posted: another node of the same cluster for the cross-node run.
    pub publish_url: String,
    pub target: Target,
    pub streams: usize,
    pub keys: usize,
    /// `group` (same message for all) or `each` (per-user payloads through `prepare`).
    pub topic: &'static str,
    /// Notifications per second, over all keys, one step each.
    pub rates: Vec<f64>,
    /// Length of each step.
    pub seconds: f64,
    /// How long to wait for the last deliveries of a step.
    pub settle: Duration,
    pub pid: Option<u32>,
}

/// One step's outcome.
pub struct Step {
    pub rate: f64,
    pub deliveries: u64,
    pub lost: u64,
    pub disordered: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    pub cpu: Option<f64>,
    /// The user-space part of `cpu`.
    pub cpu_user: Option<f64>,
    pub rss_kib: Option<u64>,
}

impl Step {
    fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn p99_ms(&self) -> f64 {
        self.ms(0.99)
    }

    fn row(&self) -> String {
        let per_delivery = |seconds: Option<f64>| {
            seconds
                .map(|c| format!("{:.2}", c * 1e6 / self.deliveries.max(1) as f64))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "| {:>8.0} | {:>9.0} | {:>5} | {:>4} | {:>6.2} | {:>7.2} | {:>7.2} | {:>7.2} | {:>8.2} | {:>6} | {:>7} | {:>7} |",
            self.rate,
            self.deliveries as f64 / self.elapsed.as_secs_f64().max(1e-9),
            self.lost,
            self.disordered,
            self.latency.min() as f64 / 1000.0,
            self.ms(0.5),
            self.p99_ms(),
            self.ms(0.999),
            self.latency.max() as f64 / 1000.0,
            per_delivery(self.cpu),
            self.rss_kib.map_or("-".into(), |r| (r / 1024).to_string()),
            per_delivery(self.cpu_user),
        )
    }
}

/// The whole run.
pub struct Report {
    pub run: Fanout,
    pub confirmed: usize,
    pub steps: Vec<Step>,
}

impl Report {
    /// The highest step rate with no loss and p99 at most `bound_ms`.
    pub fn best(&self, bound_ms: f64) -> Option<&Step> {
        self.steps
            .iter()
            .filter(|s| s.lost == 0 && s.disordered == 0 && s.p99_ms() <= bound_ms)
            .max_by(|a, b| a.rate.total_cmp(&b.rate))
    }

    pub fn lost(&self) -> u64 {
        self.steps.iter().map(|s| s.lost + s.disordered).sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let run = &self.run;
        writeln!(
            f,
            "target {:?}, {} streams on {} key(s) of topic {}, listens confirmed {}/{}",
            run.target, run.streams, run.keys, run.topic, self.confirmed, run.streams
        )?;
        writeln!(
            f,
            "| notify/s | deliver/s |  lost | dis. | min ms | p50 ms  | p99 ms  | p999 ms |  max ms  | us/del | RSS MiB | user us |"
        )?;
        writeln!(f, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
        for step in &self.steps {
            writeln!(f, "{}", step.row())?;
        }
        for bound in [50.0, 100.0, f64::INFINITY] {
            let label = if bound.is_finite() {
                format!("highest rate with p99 <= {bound} ms and zero loss")
            } else {
                "highest rate with zero loss".to_owned()
            };
            match self.best(bound) {
                Some(step) => writeln!(
                    f,
                    "{label}: {:.0} notify/s = {:.0} deliveries/s (p99 {:.1} ms)",
                    step.rate,
                    step.deliveries as f64 / step.elapsed.as_secs_f64(),
                    step.p99_ms()
                )?,
                None => writeln!(f, "{label}: none")?,
            }
        }
        Ok(())
    }
}

/// What every stream task records, shared on this thread.
struct Shared {
    base: Instant,
    step: Cell<u64>,
    /// Per stream: deliveries of this step, and the last message number seen.
    received: Vec<Cell<u32>>,
    last: Vec<Cell<i64>>,
    total: Cell<u64>,
    disordered: Cell<u64>,
    latest_ns: Cell<u64>,
    latency: RefCell<Histogram<u64>>,
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to ten minutes.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

/// Records one received message `step:number:scheduled_ns[:...]`.
fn record(shared: &Shared, stream: usize, text: &str) {
    let now = shared.base.elapsed().as_nanos() as u64;
    let mut parts = text.split(':').map(str::parse::<u64>);
    let (Some(Ok(step)), Some(Ok(number)), Some(Ok(scheduled))) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    if step != shared.step.get() {
        return; // a straggler of an earlier step: already counted as lost there
    }
    let received = &shared.received[stream];
    received.set(received.get() + 1);
    shared.total.set(shared.total.get() + 1);
    let last = &shared.last[stream];
    if number as i64 <= last.get() {
        shared.disordered.set(shared.disordered.get() + 1);
    }
    last.set(number as i64);
    shared.latest_ns.set(now);
    let _ = shared
        .latency
        .borrow_mut()
        .record((now.saturating_sub(scheduled) / 1000).max(1));
}

/// Messages of a step of `messages` that go to key `key` of `keys` (message n goes to n % keys).
fn expected_for(key: usize, keys: usize, messages: u64) -> u64 {
    let keys = keys as u64;
    messages / keys + u64::from((key as u64) < messages % keys)
}

pub async fn run_fanout(run: Fanout) -> Result<Report, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| e.to_string())?;
    let key = |i: usize| format!("k{}", i % run.keys);
    let plan = (0..run.streams)
        .map(|i| {
            (
                format!("u{i}"),
                vec![Listen {
                    topic: run.topic,
                    key: key(i),
                }],
            )
        })
        .collect();
    // Every stream must be listening: the loss accounting counts on each.
    let conns = open_each(run.target, &http, &run.url, plan, 64)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, NotOpen>>()?;
    let confirmed = conns.len();
    let shared = Rc::new(Shared {
        base: Instant::now(),
        step: Cell::new(u64::MAX),
        received: (0..run.streams).map(|_| Cell::new(0)).collect(),
        last: (0..run.streams).map(|_| Cell::new(-1)).collect(),
        total: Cell::new(0),
        disordered: Cell::new(0),
        latest_ns: Cell::new(0),
        latency: RefCell::new(histogram()),
    });
    let mut readers = Vec::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let shared = shared.clone();
        readers.push(tokio::task::spawn_local(async move {
            while let Some(text) = conn.next_message().await {
                record(&shared, i, text);
            }
        }));
    }
    let mut steps = Vec::new();
    for (index, &rate) in run.rates.iter().enumerate() {
        let step = run_step(&run, &http, &shared, index as u64, rate).await?;
        let stop = step.lost > 0 && step.p99_ms() > 1000.0;
        steps.push(step);
        if stop {
            break; // far past saturation: higher rates only take longer to fail
        }
    }
    for reader in &readers {
        reader.abort();
    }
    Ok(Report {
        run,
        confirmed,
        steps,
    })
}

/// Steps whose notifications are at least this far apart (100/s or slower) send them on time.
const PRECISE_FROM: Duration = Duration::from_millis(10);

/// Waits until `at`. tokio's timer has a 1 ms tick and wakes up to a tick late, and latency is
/// timed from the scheduled send, so that lateness would be counted as the server's. When
/// `precise` (steps at 100/s or slower, as in the latency scenarios), the
/// timer wakes ~2 ms early and the rest is spun, yielding so this thread's readers still run.
/// At higher rates the spin would take the generator's core from the readers, so the timer
/// alone is used (its lateness is then small next to the bounds those steps are judged by).
async fn wait_until(at: Instant, precise: bool) {
    if !precise {
        return tokio::time::sleep_until(at.into()).await;
    }
    if let Some(early) = at.checked_sub(Duration::from_millis(2)) {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

async fn run_step(
    run: &Fanout,
    http: &reqwest::Client,
    shared: &Rc<Shared>,
    step: u64,
    rate: f64,
) -> Result<Step, String> {
    let messages = (rate * run.seconds).round().max(1.0) as u64;
    let expected: u64 = (0..run.streams)
        .map(|i| expected_for(i % run.keys, run.keys, messages))
        .sum();
    for (received, last) in shared.received.iter().zip(&shared.last) {
        received.set(0);
        last.set(-1);
    }
    shared.total.set(0);
    shared.disordered.set(0);
    *shared.latency.borrow_mut() = histogram();
    shared.step.set(step);
    let before = run.pid.and_then(proc_stat);
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate);
    // Each key's notifications come from one publisher, in order; a few publishers in parallel
    // keep up with high rates over many keys.
    let publishers = run.keys.min(4);
    let precise = interval >= PRECISE_FROM;
    let publish = (0..publishers).map(|p| {
        let http = http.clone();
        let url = format!("{}/notify", run.publish_url);
        let (keys, topic, base) = (run.keys, run.topic, shared.base);
        async move {
            for number in (0..messages).filter(|n| (*n as usize % keys) % publishers == p) {
                let scheduled = start + interval.mul_f64(number as f64);
                wait_until(scheduled, precise).await;
                let body = format!("{step}:{number}:{}", (scheduled - base).as_nanos());
                let key = format!("k{}", number as usize % keys);
                let response = http
                    .post(&url)
                    .query(&[("topic", topic), ("key", &key)])
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("notify: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("notify {number}: {}", response.status()));
                }
            }
            Ok::<(), String>(())
        }
    });
    futures::future::try_join_all(publish).await?;
    let deadline = Instant::now() + run.settle;
    while shared.total.get() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = run.pid.and_then(proc_stat);
    let spent: Option<(ProcStat, ProcStat)> = before.zip(after);
    let latest = shared.base + Duration::from_nanos(shared.latest_ns.get());
    let deliveries = shared.total.get();
    Ok(Step {
        rate,
        deliveries,
        lost: expected.saturating_sub(deliveries - shared.disordered.get().min(deliveries)),
        disordered: shared.disordered.get(),
        elapsed: latest
            .saturating_duration_since(start)
            .max(Duration::from_millis(1)),
        latency: shared.latency.borrow().clone(),
        cpu: spent.map(|(b, a)| a.cpu_seconds - b.cpu_seconds),
        cpu_user: spent.map(|(b, a)| a.user_seconds - b.user_seconds),
        rss_kib: after.map(|a| a.rss_kib),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_spread_over_keys_add_up() {
        for (keys, messages) in [(1, 10), (3, 10), (100, 7), (100, 1000)] {
            let sum: u64 = (0..keys).map(|k| expected_for(k, keys, messages)).sum();
            assert_eq!(sum, messages, "{keys} keys, {messages} messages");
        }
    }

    #[test]
    fn a_precise_wait_never_returns_before_its_time() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            for ahead_us in [0, 300, 2_500, 4_000] {
                let at = Instant::now() + Duration::from_micros(ahead_us);
                wait_until(at, true).await;
                assert!(Instant::now() >= at, "returned before a send {ahead_us} µs ahead");
            }
        });
    }
}
