//! The server's side of a run: resident memory and CPU time from /proc, counters from /metrics.
use std::{collections::BTreeMap, time::Duration};

/// A process's resident memory and CPU time.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub rss_kib: u64,
    /// Anonymous memory only (heap, stacks): RSS less the pages of the binary and libraries
    /// that the run happened to touch.
    pub anon_kib: u64,
    pub cpu_seconds: f64,
    /// The user-space part of `cpu_seconds`: the rest is the kernel's (on loopback, most of it
    /// `write()` and the receiving half it runs), so this part moves with the server's own code
    /// and far less with how fast the VM's kernel path is that hour.
    pub user_seconds: f64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let (rss_kib, anon_kib) = (field("VmRSS:")?, field("RssAnon:")?);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some(ProcStat {
        rss_kib,
        anon_kib,
        cpu_seconds: (user + system) / 100.0,
        user_seconds: user / 100.0,
    })
}

/// `notif_tabs`, `notif_listens` and friends from a notif server's `/metrics` (none from a peer),
/// and from `bench serve` the allocator's live heap and its extent records (what it keeps for
/// the peak after everyone left).
pub async fn metrics(http: &reqwest::Client, url: &str) -> String {
    summary(&metrics_text(http, url).await)
}

/// The whole of a server's `/metrics`, or nothing if it has none.
pub async fn metrics_text(http: &reqwest::Client, url: &str) -> String {
    let get = http
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(5))
        .send();
    match get.await {
        Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
        _ => String::new(),
    }
}

/// The counters a run prints on each line, as `name=value`.
pub fn summary(text: &str) -> String {
    [
        "notif_tabs ",
        "notif_connected_tabs ",
        "notif_listens ",
        "notif_keys ",
        "bench_jemalloc_allocated_bytes ",
        "bench_jemalloc_metadata_edata_bytes ",
    ]
    .iter()
    .filter_map(|name| text.lines().find(|l| l.starts_with(name)))
    .map(|l| l.replacen(' ', "=", 1))
    .collect::<Vec<_>>()
    .join(" ")
}

/// jemalloc's live allocations per size class, from `bench serve`'s
/// `bench_jemalloc_live{size="…"} N` lines.
pub fn live_by_size(text: &str) -> BTreeMap<u64, u64> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("bench_jemalloc_live{size=\"")?;
            let (size, count) = rest.split_once("\"} ")?;
            Some((size.parse().ok()?, count.trim().parse().ok()?))
        })
        .collect()
}

/// What each of `streams` added to the heap, by size class: `size×count` for every class
/// that grew by at least one object per twenty streams, largest share first, then the sum of
/// all classes. `None` without jemalloc's counts (a peer).
pub fn per_stream_by_size(
    before: &BTreeMap<u64, u64>,
    after: &BTreeMap<u64, u64>,
    streams: f64,
) -> Option<String> {
    if after.is_empty() {
        return None;
    }
    let mut grown: Vec<(u64, f64)> = after
        .iter()
        .map(|(&size, &n)| {
            (
                size,
                (n as f64 - *before.get(&size).unwrap_or(&0) as f64) / streams,
            )
        })
        .collect();
    let total: f64 = grown.iter().map(|(size, per)| *size as f64 * per).sum();
    grown.retain(|(_, per)| *per >= 0.05);
    grown.sort_by(|a, b| (b.0 as f64 * b.1).total_cmp(&(a.0 as f64 * a.1)));
    let classes: Vec<String> = grown
        .iter()
        .map(|(size, per)| format!("{size}x{per:.2}"))
        .collect();
    Some(format!(
        "allocated per stream, size x count: {} = {total:.0} bytes",
        classes.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_counts_per_size_class_give_what_each_stream_allocated() {
        let before = live_by_size("bench_jemalloc_live{size=\"256\"} 5\nnotif_tabs 0\n");
        let after = live_by_size(
            "bench_jemalloc_live{size=\"16\"} 1\nbench_jemalloc_live{size=\"256\"} 2005\n\
             bench_jemalloc_live{size=\"128\"} 1000\nbench_jemalloc_live{size=\"8192\"} 2\n",
        );
        assert_eq!(after.len(), 4);
        let line = per_stream_by_size(&before, &after, 1000.0).unwrap();
        // 256 x 2 and 128 x 1 each stream; 8192 x 0.002 and 16 x 0.001 count only in the sum.
        assert_eq!(
            line,
            "allocated per stream, size x count: 256x2.00 128x1.00 = 656 bytes"
        );
        assert_eq!(per_stream_by_size(&before, &BTreeMap::new(), 1000.0), None);
    }
}
