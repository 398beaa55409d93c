//! The app's notification topics.
use crate::model::{ChatMessage, RoomMessage, Viewer};

/// New messages of a room. Key: the room id. Each viewer gets the message with their own
/// highlight; a viewer who muted the room gets nothing.
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
