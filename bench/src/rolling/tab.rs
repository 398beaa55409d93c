//! A tab: its connections, reconnecting to a live node after each bye or close, and counting
//! what it receives.
use std::{
    rc::Rc,
    time::{Duration, Instant},
};

use super::{parse, Frame, Shared};
use crate::ws::WsConn;

/// One connection of a tab.
pub(super) struct Connection {
    /// Seconds since the start: when its socket was opened, and when its hello came.
    pub(super) at: f64,
    pub(super) port: u16,
    pub(super) hello_at: Option<f64>,
    pub(super) recovered: bool,
    pub(super) node: String,
    pub(super) tab_id: String,
    /// How it ended, and when.
    pub(super) ended: Option<(f64, String)>,
}

pub(super) struct TabState {
    pub(super) user: String,
    pub(super) key: usize,
    pub(super) tab_id: String,
    pub(super) node: String,
    pub(super) seq: u64,
    pub(super) counts: Vec<u8>,
    /// Notifications whose seq did not follow the one before.
    pub(super) seq_gaps: u64,
    /// Notifications carrying another tab id than the tab's.
    pub(super) foreign: u64,
    pub(super) resets: u64,
    pub(super) reconnects: u64,
    pub(super) failed_attempts: u64,
    pub(super) last_error: String,
    pub(super) history: Vec<Connection>,
}

async fn listen(shared: &Shared, node: usize, tab: usize) -> Result<(), String> {
    let (user, key, tab_id, tab_node) = {
        let t = shared.tabs[tab].borrow();
        (
            t.user.clone(),
            format!("k{}", t.key),
            t.tab_id.clone(),
            t.node.clone(),
        )
    };
    let response = shared
        .http
        .post(format!("{}/listen", shared.url(node)))
        .query(&[("topic", "group"), ("key", &key), ("user", &user)])
        .header(notif::wire::TAB_HEADER, tab_id)
        .header(notif::wire::NODE_HEADER, tab_node)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("listen: {e}"))?;
    if !response.status().is_success() {
        let status = response.status();
        return Err(format!(
            "listen refused: {status} {}",
            response.text().await.unwrap_or_default()
        ));
    }
    Ok(())
}

/// Opens a socket to `node` (resuming the tab if it had a hello) and reads its hello.
async fn connect(shared: &Shared, tab: usize, node: usize) -> Result<(WsConn, Frame), String> {
    let query = {
        let t = shared.tabs[tab].borrow();
        if t.tab_id.is_empty() {
            format!("user={}", t.user)
        } else {
            format!(
                "user={}&{}={}.{}&{}={}",
                t.user,
                notif::wire::LAST_EVENT_ID_QUERY,
                t.tab_id,
                t.seq,
                notif::wire::NODE_QUERY,
                t.node
            )
        }
    };
    let url = format!(
        "ws://127.0.0.1:{}{}?{query}",
        shared.run.ports[node],
        notif::wire::WS_PATH
    );
    let mut conn = WsConn::connect(&url).await?;
    let hello = parse(conn.next_text().await?);
    if !matches!(hello, Frame::Hello { .. }) {
        return Err(format!("expected a hello from :{}", shared.run.ports[node]));
    }
    Ok((conn, hello))
}

/// Counts a reconnect attempt that failed, and waits a little before the next.
async fn failed(shared: &Shared, tab: usize, at: f64, node: usize, error: &str) {
    {
        let mut t = shared.tabs[tab].borrow_mut();
        t.failed_attempts += 1;
        t.last_error = format!("{at:.3} s :{}: {error}", shared.run.ports[node]);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Connects (again) until a hello comes; after a reset, listens again.
pub(super) async fn reconnect(shared: &Shared, tab: usize, first: bool) -> WsConn {
    loop {
        if !first && !shared.run.jitter.is_zero() {
            let ms = shared.random() % shared.run.jitter.as_millis().max(1) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let node = if first {
            tab % shared.run.ports.len()
        } else {
            shared.pick(shared.run.random, &shared.cursor).await
        };
        let at = shared.now();
        let started = Instant::now();
        let attempt = tokio::time::timeout(Duration::from_secs(10), connect(shared, tab, node)).await;
        let (conn, hello) = match attempt {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                failed(shared, tab, at, node, &error).await;
                continue;
            }
            Err(_) => {
                failed(shared, tab, at, node, "no hello within 10 s").await;
                continue;
            }
        };
        let Frame::Hello {
            tab_id,
            seq,
            recovered,
            node: node_id,
        } = hello
        else {
            unreachable!("connect returns a hello");
        };
        let hello_at = shared.now();
        if !first {
            let _ = shared
                .reconnect_us
                .borrow_mut()
                .record((started.elapsed().as_micros() as u64).max(1));
            if let Some(last) = shared.restart_us.borrow_mut().last_mut() {
                let _ = last.record((started.elapsed().as_micros() as u64).max(1));
            }
        }
        let reset = {
            let mut t = shared.tabs[tab].borrow_mut();
            let reset = !first && !recovered;
            if !first {
                t.reconnects += 1;
            }
            if reset {
                t.resets += 1;
            }
            if recovered && tab_id != t.tab_id {
                t.foreign += 1;
            }
            t.tab_id = tab_id.clone();
            t.node = node_id.clone();
            t.seq = seq;
            t.history.push(Connection {
                at,
                port: shared.run.ports[node],
                hello_at: Some(hello_at),
                recovered,
                node: node_id,
                tab_id,
                ended: None,
            });
            reset || first
        };
        if reset {
            // The tab is new to the server: listen again (through another node, naming this one).
            let via = (node + 1) % shared.run.ports.len();
            let via = if shared.live.borrow()[via] { via } else { node };
            if let Err(error) = listen(shared, via, tab).await {
                {
                    let mut t = shared.tabs[tab].borrow_mut();
                    t.last_error = format!("{:.3} s: {error}", shared.now());
                    t.failed_attempts += 1;
                }
                conn.close().await;
                continue;
            }
        }
        return conn;
    }
}

/// Reads the tab's frames; reconnects after each bye or close.
pub(super) async fn run_tab(shared: Rc<Shared>, tab: usize, mut conn: WsConn) {
    loop {
        let ended = loop {
            let text = match conn.next_text().await {
                Ok(text) => text,
                Err(error) => break error,
            };
            match parse(text) {
                Frame::Notif { tab_id, seq, number } => {
                    let mut t = shared.tabs[tab].borrow_mut();
                    if tab_id != t.tab_id {
                        t.foreign += 1;
                    }
                    if seq != t.seq + 1 {
                        t.seq_gaps += 1;
                    }
                    t.seq = seq;
                    let number = number as usize;
                    if t.counts.len() <= number {
                        t.counts.resize(number + 1, 0);
                    }
                    t.counts[number] = t.counts[number].saturating_add(1);
                }
                Frame::Bye(reason) => break format!("bye {reason}"),
                Frame::Hello { .. } => shared.tabs[tab].borrow_mut().foreign += 1,
                Frame::Other => {}
            }
        };
        let now = shared.now();
        if let Some(last) = shared.tabs[tab].borrow_mut().history.last_mut() {
            last.ended = Some((now, ended));
        }
        conn.close().await;
        conn = reconnect(&shared, tab, false).await;
    }
}
