//! `bench cross-node-listen`: what a listen costs when it reaches another node than the one
//! holding the tab. Tabs open WebSocket streams on node A; then, one call at a time, each tab
//! listens on a key through node A (local) and on another key through node B naming node A in
//! `x-notif-node` (forwarded over Redis: one message each way), the two kinds alternating and
//! swapping order every call so the VM's drift falls on both. Both keys are already subscribed
//! on node A (a warm-up tab listens on them first), so neither call waits for a Redis
//! subscription: the difference is the forwarding alone. Timed at the client, from sending the
//! request to its answer, over a kept-alive HTTP connection to each node.
use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use hdrhistogram::Histogram;

use crate::{
    rolling::{metric, parse, Frame},
    ws::WsConn,
};

pub struct ListenHop {
    /// Node A (holds the tabs) and node B.
    pub url: String,
    pub other_url: String,
    pub tabs: usize,
    /// Calls of each kind.
    pub calls: usize,
}

struct Tab {
    user: String,
    tab_id: String,
    node: String,
}

fn ws_url(url: &str, query: &str) -> String {
    format!(
        "ws{}{}?{query}",
        url.strip_prefix("http").unwrap_or(url),
        notif::wire::WS_PATH
    )
}

async fn open(url: &str, user: String) -> Result<(WsConn, Tab), String> {
    let mut conn = WsConn::connect(&ws_url(url, &format!("user={user}"))).await?;
    match parse(conn.next_text().await?) {
        Frame::Hello { tab_id, node, .. } if !node.is_empty() => Ok((conn, Tab { user, tab_id, node })),
        Frame::Hello { .. } => {
            Err("a hello without a node: is the server one node of several (--redis)?".into())
        }
        _ => Err("expected a hello".into()),
    }
}

async fn listen(
    http: &reqwest::Client,
    url: &str,
    tab: &Tab,
    key: &str,
    node: Option<&str>,
) -> Result<Duration, String> {
    let mut request = http
        .post(format!("{url}/listen"))
        .query(&[("topic", "group"), ("key", key), ("user", &tab.user)])
        .header(notif::wire::TAB_HEADER, &tab.tab_id);
    if let Some(node) = node {
        request = request.header(notif::wire::NODE_HEADER, node);
    }
    let start = Instant::now();
    let response = request.send().await.map_err(|e| format!("listen: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("listen: {e}"))?;
    let took = start.elapsed();
    if !status.is_success() {
        return Err(format!(
            "listen via {url} refused: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(took)
}

async fn counter(http: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    metric(&text, name)
}

pub async fn run_listen_hop(run: ListenHop) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(4)
        .build()
        .map_err(|e| e.to_string())?;
    let opened: Vec<(WsConn, Tab)> = stream::iter(0..run.tabs + 1)
        .map(|i| open(&run.url, format!("u{i}")))
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut tabs = Vec::new();
    let mut readers = Vec::new();
    for (mut conn, tab) in opened {
        tabs.push(tab);
        // Answers the server's pings; nothing is notified.
        readers.push(tokio::task::spawn_local(async move {
            while conn.next_text().await.is_ok() {}
        }));
    }
    let warm = tabs.pop().ok_or("no tab")?;
    let node = warm.node.clone();
    for key in ["local", "far"] {
        listen(&http, &run.url, &warm, key, None).await?;
    }
    // One call of each kind first, so both HTTP connections are open before the timing.
    listen(&http, &run.url, &warm, "local", None).await?;
    listen(&http, &run.other_url, &warm, "far", Some(&node)).await?;
    let forwarded_before = counter(&http, &run.other_url, "notif_calls_forwarded_total").await;
    let histogram = || Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let (mut local, mut far) = (histogram(), histogram());
    let started = Instant::now();
    for call in 0..run.calls {
        let tab = &tabs[call % tabs.len()];
        for far_first in [call % 2 == 1, call % 2 == 0] {
            let took = if far_first {
                listen(&http, &run.other_url, tab, "far", Some(&tab.node)).await?
            } else {
                listen(&http, &run.url, tab, "local", None).await?
            };
            let into = if far_first { &mut far } else { &mut local };
            let _ = into.record((took.as_micros() as u64).max(1));
        }
    }
    let elapsed = started.elapsed();
    let forwarded_after = counter(&http, &run.other_url, "notif_calls_forwarded_total").await;
    for reader in readers {
        reader.abort();
    }
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let row = |label: &str, h: &Histogram<u64>| {
        format!(
            "| {label} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            h.len(),
            h.min() as f64 / 1000.0,
            ms(h, 0.5),
            ms(h, 0.9),
            ms(h, 0.99),
            ms(h, 0.999),
            h.max() as f64 / 1000.0
        )
    };
    let mut out = format!(
        "cross-node listen: {} tabs on node A ({}), {} calls of each kind in {:.1} s, one at a time\n",
        tabs.len(),
        run.url,
        run.calls,
        elapsed.as_secs_f64()
    );
    out += "| listen sent to | calls | min ms | p50 ms | p90 ms | p99 ms | p999 ms | max ms |\n";
    out += "|---|---:|---:|---:|---:|---:|---:|---:|\n";
    out += &row("node A (local)", &local);
    out += &row("node B, naming node A (forwarded)", &far);
    out += &format!(
        "forwarded p50 - local p50: {:.3} ms; forwarded p50 / local p50: {:.2}\n",
        ms(&far, 0.5) - ms(&local, 0.5),
        ms(&far, 0.5) / ms(&local, 0.5).max(1e-9)
    );
    match forwarded_before.zip(forwarded_after) {
        Some((before, after)) => {
            out += &format!(
                "node B's notif_calls_forwarded_total grew by {} (calls sent to it: {})\n",
                after - before,
                run.calls
            );
        }
        None => out += "node B's notif_calls_forwarded_total: not read\n",
    }
    Ok(out)
}
