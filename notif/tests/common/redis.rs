//! `RedisServer`: a real `redis-server` for the tests that need a backplane.

use std::time::Duration;

/// A real `redis-server` on a free port, stopped when dropped. Fails (never skips) when Redis
/// is not installed: `scripts/setup` installs it.
pub struct RedisServer {
    pub port: u16,
    process: Option<std::process::Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = RedisServer { port, process: None };
        redis.spawn().await;
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/setup installs it)");
        self.process = Some(child);
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// Redis stops answering write commands (`PUBLISH` included) for `how_long`.
    pub async fn pause_writes(&self, how_long: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut redis = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .unwrap();
        let command = format!("CLIENT PAUSE {} WRITE\r\n", how_long.as_millis());
        redis.write_all(command.as_bytes()).await.unwrap();
        let mut reply = [0; 5];
        redis.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"+OK\r\n");
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
