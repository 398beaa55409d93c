//! The `bench serve` node processes: starting them, waiting for them, reading their metrics.
use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use super::Rolling;

/// A node process.
pub(super) struct Node {
    pub(super) port: u16,
    pub(super) child: Option<tokio::process::Child>,
    pub(super) log: PathBuf,
}

impl Node {
    pub(super) fn start(&mut self, run: &Rolling, base: Instant) -> Result<(), String> {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| format!("{}: {e}", self.log.display()))?;
        let _ = writeln!(
            log,
            "=== {} starting at {:.3} s ===",
            self.port,
            base.elapsed().as_secs_f64()
        );
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let mut command = match run.server_cpu {
            Some(cpu) => {
                let mut c = tokio::process::Command::new("taskset");
                c.arg("-c").arg(cpu.to_string()).arg(&run.server_bin);
                c
            }
            None => tokio::process::Command::new(&run.server_bin),
        };
        command
            .args([
                "serve",
                "--addr",
                &format!("127.0.0.1:{}", self.port),
                "--redis",
                &run.redis,
            ])
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .kill_on_drop(true);
        if std::env::var_os("RUST_LOG").is_none() {
            command.env("RUST_LOG", "notif=info");
        }
        self.child = Some(
            command
                .spawn()
                .map_err(|e| format!("{}: {e}", run.server_bin.display()))?,
        );
        Ok(())
    }

    pub(super) fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }
}

/// Waits until the node answers `/metrics` with its backplane up.
pub(super) async fn ready(http: &reqwest::Client, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(text) = metrics(http, port).await {
            if text.lines().any(|l| l == "notif_backplane_up 1") {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("node :{port} not ready (backplane up) after 30 s"))
}

pub(super) async fn metrics(http: &reqwest::Client, port: u16) -> Result<String, String> {
    let response = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

/// A counter or gauge's value in Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_values() {
        let text = "# HELP notif_tabs x\nnotif_tabs 12\nnotif_tabs_moved_in_total 3\n";
        assert_eq!(metric(text, "notif_tabs"), Some(12.0));
        assert_eq!(metric(text, "notif_tabs_moved_in_total"), Some(3.0));
        assert_eq!(metric(text, "notif_resets_total"), None);
    }
}
