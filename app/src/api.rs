//! The app's server functions. Endpoints are fixed (`/api/<name>`) so tests, benchmarks and
//! other clients can call them.
use leptos::prelude::*;

use crate::model::{RoomMessage, RoomSummary, Viewer};
#[cfg(feature = "ssr")]
use crate::topics::{RoomTopic, TypingTopic, Typist};

/// The signed-in user's name, if any.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Viewer, ServerFnError> {
    Ok(ssr::viewer().await)
}

/// Signs in as `name` (creating the user on first use) and sets the session cookie.
#[server(endpoint = "sign_in")]
pub async fn sign_in(name: String) -> Result<String, ServerFnError> {
    let name = crate::model::check_name(&name).map_err(|m| ssr::fail(400, m))?;
    let cookie = crate::server::sessions::start(&name).await?;
    ssr::set_cookie(&cookie);
    Ok(name)
}

/// Signs out: ends the session and every tab of this user at once.
#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ServerFnError> {
    let parts = use_context::<http::request::Parts>();
    if let Some(token) = parts.as_ref().and_then(crate::server::sessions::session_token) {
        let user = ssr::viewer().await;
        crate::server::sessions::end(&token).await?;
        if user.is_some() {
            ssr::hub()?.disconnect_identity(&user);
        }
    }
    ssr::set_cookie(&crate::server::sessions::removal_cookie());
    Ok(())
}

/// Every room, with whether the viewer follows or muted it.
#[server(endpoint = "rooms")]
pub async fn list_rooms() -> Result<Vec<RoomSummary>, ServerFnError> {
    let viewer = ssr::viewer().await.unwrap_or_default();
    let rows = sqlx::query_as::<_, (i64, String, bool, bool)>(
        "SELECT r.id, r.name,
                EXISTS (SELECT 1 FROM follows f WHERE f.room_id = r.id AND f.user_name = ?1),
                EXISTS (SELECT 1 FROM mutes m WHERE m.room_id = r.id AND m.user_name = ?1)
         FROM rooms r ORDER BY r.id",
    )
    .bind(viewer)
    .fetch_all(crate::server::db())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, followed, muted)| RoomSummary {
            id,
            name,
            followed,
            muted,
        })
        .collect())
}

/// A room's name and its last 100 messages, oldest first, as the viewer sees them.
#[server(endpoint = "room_history")]
pub async fn room_history(room: i64) -> Result<(String, Vec<RoomMessage>), ServerFnError> {
    let viewer = ssr::viewer().await;
    if viewer.is_none() {
        return Err(ssr::fail(401, "Sign in to read rooms."));
    }
    let name = ssr::room_name(room).await?;
    let rows = sqlx::query_as::<_, (i64, i64, String, String)>(
        "SELECT id, room_id, author, body FROM
           (SELECT * FROM messages WHERE room_id = ? ORDER BY id DESC LIMIT 100)
         ORDER BY id",
    )
    .bind(room)
    .fetch_all(crate::server::db())
    .await?;
    let messages = rows
        .into_iter()
        .map(|(id, room, author, body)| {
            crate::server::view_message(
                &viewer,
                crate::model::ChatMessage {
                    id,
                    room,
                    author,
                    body,
                },
            )
        })
        .collect();
    Ok((name, messages))
}

/// Posts a message and notifies the room's listeners, except the posting tab (which shows the
/// returned message itself).
#[server(endpoint = "post", client = notif::TabClient)]
pub async fn post_message(room: i64, body: String) -> Result<RoomMessage, ServerFnError> {
    let viewer = ssr::viewer().await;
    let Some(author) = viewer.clone() else {
        return Err(ssr::fail(401, "Sign in to post."));
    };
    let body = crate::model::check_body(&body).map_err(|m| ssr::fail(400, m))?;
    ssr::room_name(room).await?;
    let id = sqlx::query_scalar::<_, i64>(
        "INSERT INTO messages (room_id, author, body) VALUES (?, ?, ?) RETURNING id",
    )
    .bind(room)
    .bind(&author)
    .bind(&body)
    .fetch_one(crate::server::db())
    .await?;
    let message = crate::model::ChatMessage {
        id,
        room,
        author,
        body,
    };
    let exclude = notif::caller::<Viewer>()
        .await
        .map_or(notif::Exclude::Nobody, notif::Exclude::Tab);
    let hub = ssr::hub()?;
    hub.notify::<RoomTopic>(&room, &message, exclude).await?;
    Ok(crate::server::view_message(&viewer, message))
}

/// Listens the calling tab on a room's new messages.
#[server(endpoint = "listen_room", client = notif::TabClient)]
pub async fn listen_room(room: i64) -> Result<(), ServerFnError> {
    notif::listen::<RoomTopic>(&room).await?;
    Ok(())
}

/// Stops the calling tab listening on a room.
#[server(endpoint = "unlisten_room", client = notif::TabClient)]
pub async fn unlisten_room(room: i64) -> Result<(), ServerFnError> {
    notif::unlisten::<RoomTopic>(&room).await?;
    Ok(())
}

/// Tells the room's other users that the caller is typing. Nothing is stored. Every tab of the
/// caller is left out (nobody needs to see themself typing), so the calling tab need not be known.
#[server(endpoint = "typing")]
pub async fn typing(room: i64) -> Result<(), ServerFnError> {
    let Some(name) = ssr::viewer().await else {
        return Err(ssr::fail(401, "Sign in to type."));
    };
    let exclude = notif::Exclude::Identity(Some(name.clone()));
    ssr::hub()?
        .notify::<TypingTopic>(&room, &Typist { room, name }, exclude)
        .await?;
    Ok(())
}

/// Listens the calling tab on who is typing in a room (allowed to whoever may listen to the room).
#[server(endpoint = "listen_typing", client = notif::TabClient)]
pub async fn listen_typing(room: i64) -> Result<(), ServerFnError> {
    notif::listen::<TypingTopic>(&room).await?;
    Ok(())
}

/// Stops the calling tab listening on who is typing in a room.
#[server(endpoint = "unlisten_typing", client = notif::TabClient)]
pub async fn unlisten_typing(room: i64) -> Result<(), ServerFnError> {
    notif::unlisten::<TypingTopic>(&room).await?;
    Ok(())
}

/// Follows (or stops following) a room: the bell counts its new messages.
#[server(endpoint = "follow")]
pub async fn set_follow(room: i64, on: bool) -> Result<(), ServerFnError> {
    ssr::toggle("follows", room, on).await
}

/// Mutes (or unmutes) a room: its messages reach this user nowhere.
#[server(endpoint = "mute")]
pub async fn set_mute(room: i64, on: bool) -> Result<(), ServerFnError> {
    ssr::toggle("mutes", room, on).await
}

/// Rooms the viewer follows.
#[server(endpoint = "followed")]
pub async fn followed_rooms() -> Result<Vec<i64>, ServerFnError> {
    let Some(user) = ssr::viewer().await else {
        return Ok(Vec::new());
    };
    Ok(
        sqlx::query_scalar::<_, i64>("SELECT room_id FROM follows WHERE user_name = ? ORDER BY room_id")
            .bind(user)
            .fetch_all(crate::server::db())
            .await?,
    )
}

/// The text of a server function error, for showing on the page.
pub fn error_text(error: &ServerFnError) -> String {
    match error {
        ServerFnError::ServerError(message) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(feature = "ssr")]
mod ssr {
    //! Helpers shared by the server functions above.
    use leptos::prelude::*;

    use crate::model::Viewer;

    pub async fn viewer() -> Viewer {
        match use_context::<http::request::Parts>() {
            Some(parts) => crate::server::viewer_of(&parts).await,
            None => None,
        }
    }

    pub fn hub() -> Result<notif::Hub<Viewer>, ServerFnError> {
        use_context::<notif::Hub<Viewer>>()
            .ok_or_else(|| ServerFnError::new("the notif hub is not in context"))
    }

    /// A refusal with an HTTP status and a message for the page.
    pub fn fail(status: u16, message: impl Into<String>) -> ServerFnError {
        if let (Some(response), Ok(status)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            http::StatusCode::from_u16(status),
        ) {
            response.set_status(status);
        }
        ServerFnError::ServerError(message.into())
    }

    pub fn set_cookie(cookie: &str) {
        if let (Some(response), Ok(value)) = (
            use_context::<leptos_axum::ResponseOptions>(),
            http::HeaderValue::from_str(cookie),
        ) {
            response.append_header(http::header::SET_COOKIE, value);
        }
    }

    pub async fn room_name(room: i64) -> Result<String, ServerFnError> {
        sqlx::query_scalar::<_, String>("SELECT name FROM rooms WHERE id = ?")
            .bind(room)
            .fetch_optional(crate::server::db())
            .await?
            .ok_or_else(|| fail(404, format!("There is no room {room}.")))
    }

    pub async fn toggle(table: &str, room: i64, on: bool) -> Result<(), ServerFnError> {
        let Some(user) = viewer().await else {
            return Err(fail(401, "Sign in first."));
        };
        room_name(room).await?;
        // `table` is one of two literals from this module, never input.
        let sql = if on {
            format!("INSERT OR IGNORE INTO {table} (user_name, room_id) VALUES (?, ?)")
        } else {
            format!("DELETE FROM {table} WHERE user_name = ? AND room_id = ?")
        };
        sqlx::query(&sql)
            .bind(user)
            .bind(room)
            .execute(crate::server::db())
            .await?;
        Ok(())
    }
}
