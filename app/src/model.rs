//! Data shared by server and browser, and the input rules both sides check.
use serde::{Deserialize, Serialize};

/// Who is signed in: a user name, or nobody.
pub type Viewer = Option<String>;

/// Longest accepted message body, in characters.
pub const MAX_BODY_CHARS: usize = 500;
/// Longest accepted user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// A room as listed on the home page, seen by one viewer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSummary {
    pub id: i64,
    pub name: String,
    pub followed: bool,
    pub muted: bool,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: i64,
    pub room: i64,
    pub author: String,
    pub body: String,
}

/// A chat message as one viewer sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomMessage {
    pub message: ChatMessage,
    /// The body mentions the viewer (`@name`): shown highlighted.
    pub mentions_me: bool,
}

/// Whether `body` mentions `@name` as a whole word.
pub fn mentions(body: &str, name: &str) -> bool {
    body.match_indices('@').any(|(at, _)| {
        let rest = &body[at + 1..];
        rest.starts_with(name) && !rest[name.len()..].chars().next().is_some_and(is_name_char)
    })
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// A display name: 1 to 32 letters, digits, `_` or `-` (so never markup, a line break or a
/// control character), surrounding spaces trimmed.
pub fn check_name(name: &str) -> Result<String, String> {
    if name.chars().any(char::is_control) {
        return Err("A name cannot contain line breaks or control characters.".into());
    }
    let name = name.trim();
    if name.is_empty() {
        return Err("Enter a name to sign in.".into());
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(format!("A name has at most {MAX_NAME_CHARS} characters."));
    }
    if !name.chars().all(is_name_char) {
        return Err("A name uses only letters, digits, '_' and '-'.".into());
    }
    Ok(name.to_owned())
}

/// A message body: not blank, at most 500 characters, no control character but line feed and
/// tab (a carriage return or an escape sequence would reach other users' screens and logs).
/// Markup is kept as typed: pages show it as text.
pub fn check_body(body: &str) -> Result<String, String> {
    if body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("A message cannot contain control characters other than line feed and tab.".into());
    }
    let body = body.trim();
    if body.is_empty() {
        return Err("A message cannot be empty.".into());
    }
    if body.chars().count() > MAX_BODY_CHARS {
        return Err(format!("A message has at most {MAX_BODY_CHARS} characters."));
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_match_whole_names_only() {
        assert!(mentions("hi @bob!", "bob"));
        assert!(mentions("@bob", "bob"));
        assert!(!mentions("hi @bobby", "bob"));
        assert!(!mentions("hi bob", "bob"));
        assert!(!mentions("mail bob@x", "bob") || mentions("mail bob@x", "x"));
        assert!(mentions("@al and @bob", "bob"));
    }

    #[test]
    fn input_rules() {
        assert!(check_name("  ").is_err());
        assert!(check_name("a b").is_err());
        assert_eq!(check_name(" ann ").unwrap(), "ann");
        assert!(check_name(&"x".repeat(33)).is_err());
        assert!(check_body(" \n ").is_err());
        assert!(check_body(&"é".repeat(501)).is_err());
        assert_eq!(check_body(&"é".repeat(500)).unwrap().chars().count(), 500);
    }

    #[test]
    fn names_refuse_markup_line_breaks_and_control_characters() {
        for name in [
            "ann\r\nSet-Cookie: x=y",
            "ann\n",
            "\tann",
            "a\u{0}b",
            "a\u{1b}[31m",
            "a\u{85}",
            "<b>ann</b>",
            "a\"b",
            "a;b",
        ] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn bodies_keep_markup_line_feeds_and_tabs_but_refuse_other_controls() {
        assert_eq!(
            check_body("<script>alert(1)</script>").unwrap(),
            "<script>alert(1)</script>"
        );
        assert_eq!(check_body("a\n\tb").unwrap(), "a\n\tb");
        for body in ["a\r\nb", "a\u{0}", "a\u{7}", "\u{1b}[2Jhi", "a\u{7f}", "a\u{9b}"] {
            assert!(check_body(body).is_err(), "{body:?}");
        }
    }
}
