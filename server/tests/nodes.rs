//! Several demo nodes sharing one database, started at the same moment on a fresh database (as
//! a deploy starts them): every one comes up and serves.
mod process;

use std::time::Duration;

#[tokio::test]
async fn nodes_started_at_once_on_a_fresh_database_all_serve() {
    let dir = std::env::temp_dir().join(format!("notif-nodes-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for round in 0..3 {
        let db = dir.join(format!("demo-{round}.db"));
        let db = db.to_str().unwrap();
        let ports: Vec<u16> = (0..3).map(|_| process::free_port()).collect();
        let mut nodes: Vec<_> = ports
            .iter()
            .map(|port| process::start_server(*port, &[("NOTIF_DB", db)]))
            .collect();
        for (port, node) in ports.iter().zip(&mut nodes) {
            if let Some(status) = node.try_wait().unwrap() {
                panic!("round {round}: the node on {port} exited: {status:?}");
            }
            process::sign_in(&format!("http://127.0.0.1:{port}"), "ann").await;
        }
        for node in &mut nodes {
            process::terminate(node);
            assert!(process::exited(node, Duration::from_secs(15)).await.success());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
