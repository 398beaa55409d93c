//! The app's notification topics.
use crate::model::{ChatMessage, RoomMessage, Viewer};

/// New messages of a room. Key: the room id. Each viewer gets the message with their own
/// highlight; a viewer who muted the room gets nothing. Its listeners see who else is in the
/// room (presence).
pub struct RoomTopic;

impl notif::Topic for RoomTopic {
    const NAME: &'static str = "room";
    type Key = i64;
    type Event = ChatMessage;
    type Message = RoomMessage;
    type Identity = Viewer;

    #[cfg(feature = "ssr")]
    async fn prepare(viewer: &Viewer, message: &ChatMessage) -> Option<RoomMessage> {
        crate::server::prepare_room_message(viewer, message).await
    }

    #[cfg(feature = "ssr")]
    async fn authorize(viewer: &Viewer, room: &i64) -> bool {
        // Signed-in users only (a signed-out tab hears nothing more), and only existing rooms.
        viewer.is_some() && crate::server::room_exists(*room).await
    }
}

/// Who is in a room, as the others see them: by user name.
impl notif::Presence for RoomTopic {
    type Public = String;

    #[cfg(feature = "ssr")]
    async fn public(viewer: &Viewer) -> Option<String> {
        // Signed-out visitors cannot listen anyway (see `authorize`); they would stay hidden.
        viewer.clone()
    }
}

/// Who is typing in a room. Key: the room id; message: the typist's name, for viewers who did
/// not mute the room (a muted room is silent, typing included). Never stored: a typist's tab
/// sends it at most every 2 s while typing, and the room page shows the name for 3 s after the
/// last one. Whoever may listen to the room may listen to its typing.
pub struct TypingTopic;

/// Someone typing in a room, as the server notifies it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Typist {
    pub room: i64,
    pub name: String,
}

impl notif::Topic for TypingTopic {
    const NAME: &'static str = "typing";
    type Key = i64;
    type Event = Typist;
    type Message = String;
    type Identity = Viewer;

    #[cfg(feature = "ssr")]
    async fn prepare(viewer: &Viewer, typing: &Typist) -> Option<String> {
        match viewer {
            Some(name) if crate::server::is_muted(name, typing.room).await => None,
            _ => Some(typing.name.clone()),
        }
    }

    #[cfg(feature = "ssr")]
    async fn authorize(viewer: &Viewer, room: &i64) -> bool {
        <RoomTopic as notif::Topic>::authorize(viewer, room).await
    }
}
