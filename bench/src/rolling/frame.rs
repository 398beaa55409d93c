//! The frames a tab reads from a notif WebSocket, and how they are parsed.
use crate::client::notif_message;

/// A text frame from a notif WebSocket, as the tabs here need it.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Hello {
        tab_id: String,
        seq: u64,
        recovered: bool,
        node: String,
    },
    /// A notification whose message is a number.
    Notif {
        tab_id: String,
        seq: u64,
        number: u64,
    },
    Bye(String),
    Other,
}

/// `<tab>.<seq>`.
fn split_id(id: &str) -> Option<(&str, u64)> {
    let (tab_id, seq) = id.rsplit_once('.')?;
    Some((tab_id, seq.parse().ok()?))
}

/// Reads a frame; notifications without a full JSON parse (one arrives per tab per key's
/// notification: the generator must stay cheap).
pub fn parse(text: &str) -> Frame {
    if text.starts_with("{\"event\":\"notif\"") {
        let id = text
            .find("\"id\":\"")
            .map(|at| &text[at + 6..])
            .and_then(|rest| rest.split('"').next())
            .and_then(split_id);
        let number = notif_message(text).and_then(|range| text[range].parse().ok());
        return match (id, number) {
            (Some((tab_id, seq)), Some(number)) => Frame::Notif {
                tab_id: tab_id.to_owned(),
                seq,
                number,
            },
            _ => Frame::Other,
        };
    }
    let Ok(value) = serde_json::from_str::<serde_json::Value>(text) else {
        return Frame::Other;
    };
    let data = &value["data"];
    match value["event"].as_str() {
        Some("hello") => {
            let seq = value["id"].as_str().and_then(split_id).map_or(0, |(_, s)| s);
            Frame::Hello {
                tab_id: data["client"].as_str().unwrap_or_default().to_owned(),
                seq,
                recovered: data["recovered"].as_bool().unwrap_or(false),
                node: data["node"].as_str().unwrap_or_default().to_owned(),
            }
        }
        Some("bye") => Frame::Bye(data["reason"].as_str().unwrap_or("?").to_owned()),
        _ => Frame::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_frames_a_tab_gets() {
        let tab_id = "5f0c2a9e8d7b4c1e9a3f6b2d1c0e8f7a";
        let hello = format!(
            r#"{{"event":"hello","id":"{tab_id}.17","data":{{"client":"{tab_id}","recovered":true,"node":"9c41d07be2a35f18"}}}}"#
        );
        assert_eq!(
            parse(&hello),
            Frame::Hello {
                tab_id: tab_id.into(),
                seq: 17,
                recovered: true,
                node: "9c41d07be2a35f18".into()
            }
        );
        let notif = format!(
            r#"{{"event":"notif","id":"{tab_id}.18","data":{{"topic":"group","key":"k1","message":"1234"}}}}"#
        );
        assert_eq!(
            parse(&notif),
            Frame::Notif {
                tab_id: tab_id.into(),
                seq: 18,
                number: 1234
            }
        );
        assert_eq!(
            parse(r#"{"event":"bye","data":{"reason":"shutdown"}}"#),
            Frame::Bye("shutdown".into())
        );
        assert_eq!(parse("not json"), Frame::Other);
    }
}
