//! `Relay`: a TCP proxy that can cut its connections, to cut a node off from Redis.

use std::sync::Mutex;

/// A TCP relay to `upstream` that can be cut for good: every connection through it ends and new
/// ones are refused. A node reaching Redis only through it, once cut, falls silent to the others
/// as a killed process does.
pub struct Relay {
    pub port: u16,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    accepting: tokio::task::JoinHandle<()>,
}

impl Relay {
    pub async fn start(upstream: u16) -> std::sync::Arc<Relay> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = std::sync::Arc::new_cyclic(|weak: &std::sync::Weak<Relay>| {
            let weak = weak.clone();
            Relay {
                port,
                tasks: Mutex::new(Vec::new()),
                accepting: tokio::spawn(async move {
                    while let Ok((mut inbound, _)) = listener.accept().await {
                        let Some(relay) = weak.upgrade() else { return };
                        let task = tokio::spawn(async move {
                            if let Ok(mut outbound) =
                                tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                        relay.tasks.lock().unwrap().push(task);
                    }
                }),
            }
        });
        relay
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Ends every connection and refuses new ones.
    pub fn cut(&self) {
        self.accepting.abort();
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}
