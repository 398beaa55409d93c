//! `bench serve`: the smallest notif server the scenarios need, built on the library alone so a
//! run measures notif rather than an app's database. It is the counterpart of the Socket.IO peer:
//! same two HTTP calls, same frames per delivery.
//!
//! - identity: the `user` query parameter of the stream, listen and notify requests;
//! - `POST /listen?topic=T&key=K&user=U` with `x-notif-client` (and, with several nodes,
//!   `x-notif-node`): the library's `Hub::listen_caller`, carried to the node holding the tab if
//!   that is another, answered once registered (`ListenError`'s status otherwise);
//! - `POST /notify?topic=T&key=K` with the event as body: answers how many tabs got a frame;
//! - `GET /metrics`: the hub's counters.
//!
//! SIGTERM or Ctrl-C shuts it down gracefully: `bye` `shutdown` to every stream, and with a
//! backplane the tabs are kept for `NOTIF_DRAIN_MS` so they can move to the other nodes.
//!
//! Topics: `group` (everyone receives the event as is), `user` (personal: only `user=K` may
//! listen on `K`), `each` (`prepare` makes a different message per identity), `lobby` (as
//! `group`, with presence: every listener is shown to the others by its identity).
use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use axum::{
    extract::{Query, State},
    http::StatusCode,
    routing::{get, post},
    Router,
};
use http::request::Parts;
use notif::{Exclude, Hub, Presence, SimpleTopic, Topic};

type Identity = String;

/// Broadcast: every listener receives the notified text.
struct Group;
impl SimpleTopic for Group {
    const NAME: &'static str = "group";
    type Key = String;
    type Message = String;
    type Identity = Identity;
}

/// One user's own key.
struct Personal;
impl SimpleTopic for Personal {
    const NAME: &'static str = "user";
    type Key = String;
    type Message = String;
    type Identity = Identity;

    async fn authorize(identity: &Identity, key: &String) -> bool {
        identity == key
    }
}

/// Per-user payloads: each identity gets the event with its own name appended.
struct Each;
impl Topic for Each {
    const NAME: &'static str = "each";
    type Key = String;
    type Event = String;
    type Message = String;
    type Identity = Identity;

    async fn prepare(identity: &Identity, event: &String) -> Option<String> {
        Some(format!("{event}:{identity}"))
    }
}

/// Broadcast with presence: the key's listeners get `present`, then `join`/`leave` as identities
/// come and go, each shown as its identity string (`bench presence` measures what that costs
/// against `group`, the same topic without presence).
struct Lobby;
impl SimpleTopic for Lobby {
    const NAME: &'static str = "lobby";
    type Key = String;
    type Message = String;
    type Identity = Identity;
}

impl Presence for Lobby {
    type Public = String;

    async fn public(identity: &Identity) -> Option<String> {
        Some(identity.clone())
    }
}

fn user_of(query: Option<&str>) -> Identity {
    query
        .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("user=")))
        .unwrap_or_default()
        .to_owned()
}

/// The hub and routes; `backplane` makes this server one node of several.
///
/// One load generator on loopback plays every tab, most of them as one identity: the caps that
/// keep one client from holding a server's resources would stop it, so they are lifted. The
/// identity comes from the URL's query, which re-validation does not keep: it is off.
pub fn router(config: notif::Config, backplane: Option<Arc<dyn notif::backplane::Backplane>>) -> Router {
    app(config, backplane).1
}

/// The hub (for the graceful shutdown) and the routes of [`router`].
fn app(
    mut config: notif::Config,
    backplane: Option<Arc<dyn notif::backplane::Backplane>>,
) -> (Hub<Identity>, Router) {
    config.max_tabs_per_identity = usize::MAX;
    config.max_streams_per_address = usize::MAX;
    config.revalidate = std::time::Duration::ZERO;
    let identify = |parts: &http::request::Parts| std::future::ready(user_of(parts.uri.query()));
    let hub = match backplane {
        Some(backplane) => Hub::with_backplane(config, backplane, identify)
            .with_topic::<Group>()
            .with_topic::<Personal>()
            .with_topic::<Each>()
            .with_presence::<Lobby>(),
        // Topics register on their first listen, but presence must be asked for up front.
        None => Hub::new(config, identify).with_presence::<Lobby>(),
    };
    let router = Router::new()
        .merge(hub.routes())
        .route("/listen", post(listen))
        .route("/notify", post(notify))
        .route(
            "/metrics",
            get(|State(hub): State<Hub<Identity>>| async move { hub.prometheus() + &allocator_stats() }),
        )
        .with_state(hub.clone());
    (hub, router)
}

/// What the allocator holds, to tell memory in use from memory it keeps (Prometheus text).
#[cfg(feature = "jemalloc")]
fn allocator_stats() -> String {
    use tikv_jemalloc_ctl::{epoch, stats};
    if epoch::advance().is_err() {
        return String::new();
    }
    let read = [
        ("allocated", stats::allocated::read()),
        ("active", stats::active::read()),
        ("resident", stats::resident::read()),
        ("metadata", stats::metadata::read()),
        ("retained", stats::retained::read()),
    ];
    let mut out: String = read
        .iter()
        .filter_map(|(name, value)| Some(format!("bench_jemalloc_{name}_bytes {}\n", value.as_ref().ok()?)))
        .collect();
    // The two parts of `metadata` that grow with the heap's peak and are never returned: extent
    // records and the address tree's nodes.
    for part in ["edata", "rtree"] {
        let bytes: usize = read_number(format!("stats.metadata_{part}"));
        out += &format!("bench_jemalloc_metadata_{part}_bytes {bytes}\n");
    }
    // Pages freed but not yet given back (dirty: the background thread purges them over
    // `dirty_decay_ms`), over every arena.
    for part in ["pdirty", "pmuzzy"] {
        let pages: usize = read_number(format!("stats.arenas.4096.{part}"));
        out += &format!("bench_jemalloc_{part}_pages {pages}\n");
    }
    out += &live_allocations_by_size();
    out
}

/// Live allocations per jemalloc size class (small classes, then large ones up to 1 MiB), as
/// `bench_jemalloc_live{size="512"} 2000`: read before and while streams are held, the
/// difference says what each stream allocates. Per-thread caches are off in `bench serve`,
/// so the counts are exact.
#[cfg(feature = "jemalloc")]
fn live_allocations_by_size() -> String {
    let read = read_number::<usize>;
    // "4096" names every arena merged (MALLCTL_ARENAS_ALL). The counts of classes are
    // `unsigned` in jemalloc: read as u32.
    let small = (0..read_number::<u32>("arenas.nbins".into())).map(|i| {
        (
            read(format!("arenas.bin.{i}.size")),
            read(format!("stats.arenas.4096.bins.{i}.curregs")),
        )
    });
    let large = (0..read_number::<u32>("arenas.nlextents".into())).map(|i| {
        (
            read(format!("arenas.lextent.{i}.size")),
            read(format!("stats.arenas.4096.lextents.{i}.curlextents")),
        )
    });
    small
        .chain(large.take_while(|(size, _)| *size <= 1 << 20))
        .filter(|(_, live)| *live > 0)
        .map(|(size, live)| format!("bench_jemalloc_live{{size=\"{size}\"}} {live}\n"))
        .collect()
}

/// A numeric jemalloc setting or statistic by name, read as its own type (jemalloc refuses a
/// read of another width); 0 if jemalloc has no such name.
#[cfg(feature = "jemalloc")]
fn read_number<T: Default>(name: String) -> T
where
    tikv_jemalloc_ctl::Name: tikv_jemalloc_ctl::Access<T>,
{
    use tikv_jemalloc_ctl::{Access, AsName};
    (name + "\0").as_bytes().name().read().unwrap_or_default()
}

#[cfg(not(feature = "jemalloc"))]
fn allocator_stats() -> String {
    String::new()
}

type Params = Query<HashMap<String, String>>;

/// The tab is the one `x-notif-client` names, on the node `x-notif-node` names (this one if
/// none); the identity is the `user` query parameter, read by the hub's `identify` from the URI.
async fn listen(State(hub): State<Hub<Identity>>, Query(q): Params, parts: Parts) -> (StatusCode, String) {
    let Some(key) = q.get("key") else {
        return (StatusCode::BAD_REQUEST, "needs key".into());
    };
    let result = match q.get("topic").map(String::as_str) {
        Some("group") => hub.listen_caller::<Group>(&parts, key).await,
        Some("user") => hub.listen_caller::<Personal>(&parts, key).await,
        Some("each") => hub.listen_caller::<Each>(&parts, key).await,
        Some("lobby") => hub.listen_caller::<Lobby>(&parts, key).await,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "topic must be group, user, each or lobby".into(),
            )
        }
    };
    match result {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(error) => (
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST),
            error.to_string(),
        ),
    }
}

async fn notify(State(hub): State<Hub<Identity>>, Query(q): Params, body: String) -> (StatusCode, String) {
    let Some(key) = q.get("key") else {
        return (StatusCode::BAD_REQUEST, "needs key".into());
    };
    let result = match q.get("topic").map(String::as_str).unwrap_or("group") {
        "group" => hub.notify::<Group>(key, &body, Exclude::Nobody).await,
        "user" => hub.notify::<Personal>(key, &body, Exclude::Nobody).await,
        "each" => hub.notify::<Each>(key, &body, Exclude::Nobody).await,
        "lobby" => hub.notify::<Lobby>(key, &body, Exclude::Nobody).await,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "topic must be group, user, each or lobby".into(),
            )
        }
    };
    match result {
        Ok(count) => (StatusCode::OK, count.to_string()),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()),
    }
}

/// Serves until SIGTERM or Ctrl-C, then shuts down gracefully (drains, with a backplane).
pub async fn serve(addr: SocketAddr, redis: Option<String>) -> Result<(), String> {
    let config = notif::Config::from_env().map_err(|e| e.to_string())?;
    let backplane = match redis {
        Some(url) => Some(
            Arc::new(notif::backplane::RedisBackplane::new(&url).map_err(|e| e.to_string())?)
                as Arc<dyn notif::backplane::Backplane>,
        ),
        None => None,
    };
    let listener = notif::bind(addr).map_err(|e| format!("{addr}: {e}"))?;
    println!(
        "bench serve: notif on http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    let (hub, router) = app(config, backplane);
    // As the demo server: hyper's HTTP/1 server, idle connections closed after 30 s.
    notif::serve(listener, router)
        .with_graceful_shutdown(&hub, shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    println!("bench serve: shut down");
    Ok(())
}

/// SIGTERM (what `kill` and orchestrators send) or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let terminate = async {
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    println!("bench serve: shutting down");
}
