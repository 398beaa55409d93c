//! The server's side of a run: resident memory and CPU time from /proc, counters from /metrics.
use std::time::Duration;

/// A process's resident memory and CPU time.
#[derive(Debug, Clone, Copy)]
pub struct ProcStat {
    pub rss_kib: u64,
    /// Anonymous memory only (heap, stacks): RSS less the pages of the binary and libraries
    /// that the run happened to touch.
    pub anon_kib: u64,
    pub cpu_seconds: f64,
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
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ProcStat {
        rss_kib,
        anon_kib,
        cpu_seconds: ticks / 100.0,
    })
}

/// `notif_tabs`, `notif_listens` and friends from a notif server's `/metrics` (none from a peer),
/// and from `bench serve` the allocator's live heap and its extent records (what it keeps for
/// the peak after everyone left).
pub async fn metrics(http: &reqwest::Client, url: &str) -> String {
    let get = http
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(5))
        .send();
    match get.await {
        Ok(response) if response.status().is_success() => {
            let text = response.text().await.unwrap_or_default();
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
        _ => String::new(),
    }
}
