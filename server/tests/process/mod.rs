//! The demo server as a real process (`target/debug/server`, the binary these tests build), as a
//! deploy runs it: started with env vars, stopped with a signal.
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
