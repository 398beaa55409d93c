//! Load generator for notif, driving the demo app exactly as browsers do: sign in, open a
//! stream, listen through the app's server function, post through the app's server function.
//!
//! ```text
//! bench smoke                          # in-process server, 50 streams, 200 messages: asserts zero loss
//! bench fanout --url URL [--streams N] [--messages M] [--rate R] [--pid PID]
//! ```
//! Latency is timed from each message's *scheduled* send time (so a stalled publisher cannot
//! hide delay) to its arrival at each stream.
mod load;

use std::time::Duration;

use load::{run_fanout, Fanout};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("smoke") => smoke().await,
        Some("fanout") => match Fanout::from_args(&args[1..]) {
            Ok(fanout) => run_fanout(fanout).await.map(|report| println!("{report}")),
            Err(error) => Err(error),
        },
        _ => Err(
            "usage: bench smoke | bench fanout --url URL [--streams N] [--messages M] [--rate R] [--pid PID]"
                .into(),
        ),
    };
    if let Err(error) = result {
        eprintln!("bench: {error}");
        std::process::exit(1);
    }
}

/// A few seconds against an in-process server: proves the harness works, asserts no loss.
async fn smoke() -> Result<(), String> {
    let db = std::env::temp_dir().join(format!("notif-bench-smoke-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&db);
    app::server::open_database(db.to_str().unwrap())
        .await
        .map_err(|e| e.to_string())?;
    let hub = app::server::hub(notif::Config::default(), None);
    let options = leptos::prelude::LeptosOptions::builder()
        .output_name("notif-demo")
        .build();
    let router = server::router(options, hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    tokio::spawn(async move { axum::serve(listener, router).await });
    let report = run_fanout(Fanout {
        url,
        streams: 50,
        messages: 200,
        rate: 100.0,
        pid: None,
        settle: Duration::from_secs(10),
    })
    .await?;
    println!("{report}");
    if report.lost != 0 || report.duplicated != 0 || report.reordered != 0 {
        return Err(format!(
            "smoke run lost {} and duplicated {} deliveries",
            report.lost, report.duplicated
        ));
    }
    Ok(())
}
