//! What gets printed: the run's summary, and what went wrong for each bad tab.
use std::fmt::Write as _;

use super::{
    metric,
    tab::TabState,
    tally::{tally, Tally},
    Published, Restart, Rolling, Shared,
};

pub(super) fn report(
    shared: &Shared,
    opened_at: f64,
    restarts: &[Restart],
    final_metrics: &[String],
) -> (String, bool) {
    let run = &shared.run;
    let published = shared.published.borrow();
    let ok: Vec<bool> = published.iter().map(|p| p.ok).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rolling restart: {} nodes (:{}), {} WebSocket tabs on {} key(s), {} notify/s posted round robin to the live nodes, \
         reconnect to a live node {}{}, {} round(s)",
        run.ports.len(),
        run.ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", :"),
        run.tabs,
        run.keys,
        run.rate,
        if run.random { "at random" } else { "round robin" },
        if run.jitter.is_zero() {
            " at once".to_owned()
        } else {
            format!(" after 0-{} ms", run.jitter.as_millis())
        },
        run.rounds,
    );
    let _ = writeln!(out, "tabs open and listening at {opened_at:.2} s");
    let per_restart = shared.restart_us.borrow();
    for (r, h) in restarts.iter().zip(per_restart.iter()) {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(
            out,
            "node {} (:{}), {} tabs: SIGTERM at {:.2} s, exited after {:.2} s ({}), back with its backplane up {:.2} s later; \
             {} reconnects to hello p50 {:.1} / p99 {:.1} ms",
            r.node,
            run.ports[r.node],
            r.tabs_held.map_or("?".into(), |t| t.to_string()),
            r.term_at,
            r.exited_after,
            r.status,
            r.ready_after,
            h.len(),
            ms(0.5),
            ms(0.99),
        );
    }
    let failed = ok.iter().filter(|o| !**o).count();
    let _ = writeln!(out, "notifications posted: {} ({failed} failed)", ok.len());
    let (mut expected, mut delivered, mut lost, mut dups, mut unexpected) = (0, 0, 0, 0, 0);
    let (mut resets, mut gaps, mut foreign, mut reconnects, mut failed_attempts) = (0, 0, 0, 0, 0);
    let mut tabs_with_loss = 0;
    let mut details = Vec::new();
    for (i, tab) in shared.tabs.iter().enumerate() {
        let t = tab.borrow();
        let tally = tally(&t.counts, t.key, run.keys, &ok);
        expected += tally.expected;
        delivered += tally.delivered;
        lost += tally.lost.len();
        dups += tally.duplicates;
        unexpected += tally.unexpected.len();
        resets += t.resets;
        gaps += t.seq_gaps;
        foreign += t.foreign;
        reconnects += t.reconnects;
        failed_attempts += t.failed_attempts;
        let bad =
            !tally.lost.is_empty() || tally.duplicates > 0 || t.resets > 0 || t.seq_gaps > 0 || t.foreign > 0;
        tabs_with_loss += usize::from(!tally.lost.is_empty() || tally.duplicates > 0);
        if bad && details.len() < 20 {
            details.push(describe(i, &t, &tally, &published, run));
        }
    }
    let hist = shared.reconnect_us.borrow();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let _ = writeln!(
        out,
        "| tabs | expected | delivered | lost | duplicated | unexpected | resets | seq gaps | reconnects | failed attempts |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        out,
        "| {} | {expected} | {delivered} | {lost} | {dups} | {unexpected} | {resets} | {gaps} | {reconnects} | {failed_attempts} |",
        run.tabs
    );
    let _ = writeln!(
        out,
        "reconnect (socket opened) to hello: p50 {:.2} / p90 {:.2} / p99 {:.2} / max {:.2} ms over {} reconnects",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        hist.max() as f64 / 1000.0,
        hist.len()
    );
    let _ = writeln!(
        out,
        "tabs with a loss or a duplicate: {tabs_with_loss}; other tab ids seen: {foreign}"
    );
    for (i, text) in final_metrics.iter().enumerate() {
        let value = |name| metric(text, name).map_or("?".into(), |v| v.to_string());
        let _ = writeln!(
            out,
            "node {} at the end: tabs {}, moved in {}, moved out {}, resets {}, calls forwarded {}",
            i,
            value("notif_tabs"),
            value("notif_tabs_moved_in_total"),
            value("notif_tabs_moved_out_total"),
            value("notif_resets_total"),
            value("notif_calls_forwarded_total"),
        );
    }
    let clean = lost == 0 && dups == 0 && resets == 0 && gaps == 0 && foreign == 0 && failed == 0;
    let _ = writeln!(
        out,
        "{}",
        if clean {
            "every tab got every notification exactly once, no reset".to_owned()
        } else {
            format!("NOT CLEAN: {lost} lost, {dups} duplicates, {resets} resets, {gaps} seq gaps, {failed} notify failed")
        }
    );
    for detail in details {
        out += &detail;
    }
    (out, clean)
}

/// What went wrong for one tab, with its connections, for the logs.
fn describe(i: usize, t: &TabState, tally: &Tally, published: &[Published], run: &Rolling) -> String {
    let mut out = format!(
        "tab {i} ({}, key k{}): {} lost, {} duplicates, {} resets, {} seq gaps; last error: {}\n",
        t.user,
        t.key,
        tally.lost.len(),
        tally.duplicates,
        t.resets,
        t.seq_gaps,
        if t.last_error.is_empty() {
            "none"
        } else {
            &t.last_error
        }
    );
    let origin = |n: u64| {
        published.get(n as usize).map_or("?".into(), |p| {
            format!("{n} (posted to :{} at {:.3} s)", run.ports[p.node], p.at)
        })
    };
    for (label, numbers) in [("lost", &tally.lost), ("duplicated", &tally.duplicated)] {
        if !numbers.is_empty() {
            let shown: Vec<String> = numbers.iter().take(8).map(|&n| origin(n)).collect();
            out += &format!(
                "  {label}: {}{}\n",
                shown.join(", "),
                if numbers.len() > 8 { ", ..." } else { "" }
            );
        }
    }
    for c in &t.history {
        out += &format!(
            "  {:.3} s -> :{} hello {} {} node {} tab {}; ended {}\n",
            c.at,
            c.port,
            c.hello_at.map_or("none".into(), |h| format!("at {h:.3} s")),
            if c.recovered { "recovered" } else { "new" },
            c.node,
            c.tab_id,
            c.ended
                .as_ref()
                .map_or("no".into(), |(at, why)| format!("at {at:.3} s: {why}")),
        );
    }
    out
}
