//! The demo server as a real process (`target/debug/server`, the binary these tests build), as a
//! deploy runs it: started with env vars, stopped with a signal; and what runs beside it in a
//! deploy of several nodes: a `redis-server` and HAProxy in front (the configuration
//! `scripts/cluster` runs). Tests that need Redis or HAProxy fail, never skip, when either is
//! missing: `scripts/setup` installs both.
#![allow(dead_code)] // each test file uses some of these

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free port on loopback (the system's pick for port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `n` distinct free ports on loopback (the system's picks, held open together).
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// A server process, killed if a test ends (or panics) with it still running.
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The demo server on `port`, with `env` on top of its defaults for tests.
pub fn start_server(port: u16, env: &[(&str, &str)]) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "notif-demo")
        .env("NOTIF_DB", ":memory:")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    Running(command.spawn().expect("the server binary starts"))
}

/// Signs in as `name` at `base`, waiting up to 20 s for the server to answer; the session cookie.
pub async fn sign_in(base: &str, name: &str) -> String {
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        match http
            .post(format!("{base}/api/sign_in"))
            .form(&[("name", name)])
            .send()
            .await
        {
            Ok(response) if response.status() == 200 => {
                let cookie = response.headers()["set-cookie"].to_str().unwrap();
                return cookie.split(';').next().unwrap().to_owned();
            }
            other if started.elapsed() > Duration::from_secs(20) => panic!("no server: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Sends SIGTERM to `server`.
pub fn terminate(server: &Child) {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
}

/// Waits up to `within` for `server` to exit; its status.
pub async fn exited(server: &mut Child, within: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = server.try_wait().unwrap() {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "the server did not exit within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to 30 s for `port` on loopback to accept connections, failing early if `child`
/// exits first.
pub async fn accepting(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited before accepting connections on {port}: {status:?}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} does not accept connections on {port} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `redis-server` on `port` (nothing saved to disk), once it accepts connections.
pub async fn start_redis(port: u16) -> Running {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/setup installs it)");
    let mut redis = Running(child);
    accepting(port, &mut redis, "redis-server").await;
    redis
}

/// HAProxy on `front`, balancing over the nodes on `backends` round robin, each request on its
/// own, with the configuration `scripts/cluster` runs (`scripts/cluster haproxy-config`), once
/// it accepts connections. Every response names the node that answered in `x-served-by`
/// (`node1`, `node2`, ... in the order of `backends`).
pub async fn start_haproxy(front: u16, backends: &[u16]) -> Running {
    haproxy(front, backends, None).await
}

/// [`start_haproxy`], its log (requests that failed, nodes going down and up) appended to `log`.
pub async fn start_haproxy_logging(front: u16, backends: &[u16], log: &std::path::Path) -> Running {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    haproxy(front, backends, Some(file)).await
}

/// HAProxy, its output (warnings included) in `log` or nowhere.
async fn haproxy(front: u16, backends: &[u16], log: Option<std::fs::File>) -> Running {
    let output = |log: &Option<std::fs::File>| match log.as_ref().and_then(|f| f.try_clone().ok()) {
        Some(file) => Stdio::from(file),
        None => Stdio::null(),
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/cluster");
    let config = Command::new(script)
        .arg("haproxy-config")
        .arg(front.to_string())
        .args(backends.iter().map(u16::to_string))
        .output()
        .expect("scripts/cluster runs");
    assert!(
        config.status.success(),
        "scripts/cluster haproxy-config: {config:?}"
    );
    let dir = std::env::temp_dir().join(format!("notif-haproxy-{}-{front}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("haproxy.cfg");
    std::fs::write(&file, &config.stdout).unwrap();
    let child = Command::new("haproxy")
        .arg("-f")
        .arg(&file)
        .arg("-db") // in the foreground, a child of the test
        .stdout(output(&log))
        .stderr(output(&log))
        .spawn()
        .expect("haproxy must be installed (scripts/setup installs it)");
    let mut haproxy = Running(child);
    accepting(front, &mut haproxy, "haproxy").await;
    // HAProxy read its configuration at start.
    let _ = std::fs::remove_dir_all(&dir);
    haproxy
}

/// The `/metrics` of the node on `port`: each sample's name (labels included) and value.
pub async fn metrics(port: u16) -> std::collections::HashMap<String, f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// Waits up to 30 s for the node `server` on `port` to serve and reach Redis
/// (`notif_backplane_up 1`); why not, if it exits first or does not within 30 s.
pub async fn ready(port: u16, server: &mut Child) -> Result<(), String> {
    let started = Instant::now();
    loop {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
            if let Ok(text) = response.text().await {
                if text.lines().any(|line| line == "notif_backplane_up 1") {
                    return Ok(());
                }
            }
        }
        if let Some(status) = server.try_wait().unwrap() {
            return Err(format!("the node on {port} exited: {status:?}"));
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the node on {port} is not ready after 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The demo server on `port` as [`start_server`] starts it, its output (the log) appended to
/// `log`.
pub fn start_server_logging(port: u16, env: &[(&str, &str)], log: &std::path::Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    command
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("LEPTOS_OUTPUT_NAME", "notif-demo")
        .env("NOTIF_DB", ":memory:")
        .env("RUST_LOG", "warn")
        .stdout(file);
    for (name, value) in env {
        command.env(name, value);
    }
    Running(command.spawn().expect("the server binary starts"))
}
