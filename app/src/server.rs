//! Server-only parts of the app: the database, sessions, and what `prepare` looks up.
use std::{str::FromStr, sync::OnceLock};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    SqlitePool,
};

use crate::{
    model::{mentions, ChatMessage, RoomMessage, Viewer},
    topics::{RoomTopic, TypingTopic},
};

pub mod csp;
pub mod sessions;

use sessions::{session_token, viewer_with};

static POOL: OnceLock<SqlitePool> = OnceLock::new();

/// Opens (creating if needed) the SQLite database at `path`, runs the migrations and makes it the
/// app's database. `path` is `:memory:` for a throwaway one.
pub async fn open_database(path: &str) -> Result<SqlitePool, sqlx::Error> {
    if let Some(parent) = std::path::Path::new(path).parent() {
        if !parent.as_os_str().is_empty() && path != ":memory:" {
            let _ = std::fs::create_dir_all(parent);
        }
    }
    let options = SqliteConnectOptions::from_str(&format!("sqlite:{path}"))?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(std::time::Duration::from_secs(5));
    // An in-memory database lives in one connection.
    let max = if path == ":memory:" { 1 } else { 8 };
    // Nodes opening a fresh file together race to create it and switch it to WAL, which takes
    // the database's lock for a moment whatever the busy timeout: the losers try again.
    let mut attempt = 0;
    let pool = loop {
        match SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options.clone())
            .await
        {
            Ok(pool) => break pool,
            Err(error) if attempt < 5 => {
                attempt += 1;
                tracing::info!(%error, attempt, "the database is busy (another node is creating it); trying again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    };
    migrate(&pool).await?;
    let _ = POOL.set(pool.clone());
    Ok(pool)
}

/// Applies the migrations not applied yet. Nodes started together on a fresh database race to
/// apply the same ones, and the losers' inserts into `_sqlx_migrations` fail; each migration is
/// a transaction, so a loser changed nothing, and once the winner has committed, running again
/// finds nothing left to do.
async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        match sqlx::migrate!("./migrations").run(pool).await {
            Ok(()) => return Ok(()),
            Err(error) if attempt < 5 => {
                attempt += 1;
                tracing::info!(%error, attempt, "migrations raced another node's; running them again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// The app's database. Panics if [`open_database`] was never called: the server calls it first.
pub fn db() -> &'static SqlitePool {
    POOL.get()
        .expect("open_database must run before the app serves requests")
}

/// The signed-in user of a request, from its session cookie.
pub async fn viewer_of(parts: &http::request::Parts) -> Viewer {
    viewer_with(session_token(parts)).await
}

/// The hub the app runs with: identity is the signed-in user. With a `backplane`, it is one
/// node of several sharing notifications.
pub fn hub(
    config: notif::Config,
    backplane: Option<std::sync::Arc<dyn notif::backplane::Backplane>>,
) -> notif::Hub<Viewer> {
    // Only the token crosses into the future, not a copy of the whole request head.
    let identify = |parts: &http::request::Parts| viewer_with(session_token(parts));
    let hub = match backplane {
        Some(backplane) => notif::Hub::with_backplane(config, backplane, identify),
        None => notif::Hub::new(config, identify),
    };
    // Every node must know every topic (a tab held here may listen through another node), and
    // rooms track who is in them: the room page lists them (and who is typing, a plain topic).
    let hub = hub.with_presence::<RoomTopic>().with_topic::<TypingTopic>();
    // Every signed-out visitor is the same identity (`None`): their tabs could not be told
    // apart, so they get no stream at all (and so can neither listen nor resume).
    hub.admit_streams(|viewer: &Viewer| match viewer {
        Some(_) => Ok(()),
        None => Err(notif::StreamDenied::unauthenticated(
            "sign in to receive notifications",
        )),
    })
}

/// Whether `query` (a `SELECT 1 ...`) finds a row; a database error counts as no.
async fn found<'q>(
    query: sqlx::query::QueryScalar<'q, sqlx::Sqlite, i64, sqlx::sqlite::SqliteArguments<'q>>,
) -> bool {
    matches!(query.fetch_optional(db()).await, Ok(Some(_)))
}

pub(crate) async fn room_exists(room: i64) -> bool {
    found(sqlx::query_scalar("SELECT 1 FROM rooms WHERE id = ?").bind(room)).await
}

pub(crate) async fn is_muted(user: &str, room: i64) -> bool {
    found(
        sqlx::query_scalar("SELECT 1 FROM mutes WHERE user_name = ? AND room_id = ?")
            .bind(user)
            .bind(room),
    )
    .await
}

/// `RoomTopic::prepare`: nothing for a viewer who muted the room, a highlight for a mention.
pub(crate) async fn prepare_room_message(viewer: &Viewer, message: &ChatMessage) -> Option<RoomMessage> {
    if let Some(name) = viewer {
        if is_muted(name, message.room).await {
            return None;
        }
    }
    Some(view_message(viewer, message.clone()))
}

pub(crate) fn view_message(viewer: &Viewer, message: ChatMessage) -> RoomMessage {
    let mentions_me = viewer
        .as_deref()
        .is_some_and(|name| mentions(&message.body, name));
    RoomMessage { message, mentions_me }
}
