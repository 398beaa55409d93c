//! Runs the demo server. Configuration: see the table in `lib.rs` (env vars).
use leptos::prelude::get_configuration;

/// What `server --help` prints.
const HELP: &str = "\
The notif demo server. It takes no arguments: it is configured with environment variables.

  LEPTOS_SITE_ADDR   address to listen on (127.0.0.1:3000)
  LEPTOS_SITE_ROOT   the site built by `cargo leptos build` (target/site), for /pkg
  NOTIF_DB           SQLite file (data/notif-demo.db), shared by every node
  NOTIF_REDIS_URL    redis://host:port: one node of several sharing that Redis (unset: one node)
  NOTIF_*            the hub's settings (notif::Config::from_env) and the demo's own

Every setting, its default and who reads it: docs/OPERATIONS.md.
";

#[tokio::main]
async fn main() {
    if let Some(argument) = std::env::args().nth(1) {
        if argument == "--help" || argument == "-h" {
            print!("{HELP}");
            return;
        }
        eprintln!("unexpected argument {argument:?}: the server takes none (see `server --help`)");
        std::process::exit(2);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,notif=info".into()),
        )
        .init();
    if let Err(error) = run().await {
        tracing::error!("{error}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let options = get_configuration(None)?.leptos_options;
    let addr = options.site_addr;
    let db_path = std::env::var("NOTIF_DB").unwrap_or_else(|_| "data/notif-demo.db".into());
    app::server::open_database(&db_path)
        .await
        .map_err(|e| format!("cannot open database {db_path}: {e}"))?;
    if let Some(secs) = whole_number("NOTIF_SESSION_TTL_SECS")? {
        let max = app::server::sessions::MAX_TTL.as_secs();
        if secs > max {
            return Err(
                format!("NOTIF_SESSION_TTL_SECS={secs} is over the maximum, {max} (10 years)").into(),
            );
        }
        app::server::sessions::set_ttl(std::time::Duration::from_secs(secs));
    }
    let config = notif::Config::from_env()?;
    // A browser's keep-alive connection for its server-function calls costs the server more
    // than its notification stream: close it when idle (streams in progress are not idle).
    let idle = whole_number("NOTIF_HTTP_IDLE_MS")?.map_or(
        notif::Serve::DEFAULT_IDLE_TIMEOUT,
        std::time::Duration::from_millis,
    );
    let hub = match notif::backplane::RedisBackplane::from_env()? {
        Some(redis) => {
            tracing::info!("one node of several, through the Redis NOTIF_REDIS_URL names");
            app::server::hub(config, Some(std::sync::Arc::new(redis)))
        }
        None => app::server::hub(config, None),
    };
    let origins = server::same_origin::Policy::from_env()?;
    let router = server::router(options, hub.clone(), origins);
    let listener = notif::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    tracing::info!("listening on http://{addr}");
    notif::serve(listener, router)
        .idle_timeout(idle)
        .with_graceful_shutdown(&hub, shutdown_signal())
        .await?;
    Ok(())
}

/// The env var `name` as a whole number of at least 1, if set.
fn whole_number(name: &str) -> Result<Option<u64>, String> {
    match std::env::var(name) {
        Ok(value) => value
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or(format!(
                "{name}={value:?} is not valid: expected a whole number of at least 1"
            )),
        Err(_) => Ok(None),
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
