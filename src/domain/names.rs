//! Validated names and ids. Each is parsed once at the edge (JSON, path, CLI); past that, an
//! invalid value cannot exist, so the rest of the code never re-checks.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ParseError;

/// Reserved event names that a client may not use for custom events.
pub const RESERVED_EVENTS: [&str; 7] = [
    "connected",
    "message",
    "presence",
    "broadcast",
    "error",
    "removed",
    "message_deleted",
];

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A room name: `^[a-z0-9][a-z0-9_-]{0,63}$`. Cheap to clone (shared string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Parses a room name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 64
            && is_lower_alnum(b[0])
            && b[1..]
                .iter()
                .all(|&c| is_lower_alnum(c) || c == b'_' || c == b'-');
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ParseError::Room)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A username: `^[A-Za-z0-9_]{3,32}$`, unique without regard to case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Parses a username, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok = (3..=32).contains(&s.len())
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::Username)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password of 8..=128 characters. Never printed.
pub struct Password(String);

impl Password {
    /// Checks the length rule.
    pub fn parse(s: String) -> Result<Self, ParseError> {
        if (8..=128).contains(&s.chars().count()) {
            Ok(Self(s))
        } else {
            Err(ParseError::Password)
        }
    }

    /// The secret itself, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// The name of an event a connection can filter on: a custom name
/// (`^[a-z][a-z0-9_.-]{0,31}$`) or one of the built-in names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EventName(Arc<str>);

impl EventName {
    /// Parses any event name a subscriber may ask for, built-in ones included.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 32
            && b[0].is_ascii_lowercase()
            && b[1..]
                .iter()
                .all(|&c| is_lower_alnum(c) || matches!(c, b'_' | b'.' | b'-'));
        if ok {
            Ok(Self(Arc::from(s)))
        } else {
            Err(ParseError::EventName)
        }
    }

    /// Parses a name a client may send as a custom event: not a reserved one.
    pub fn parse_custom(s: &str) -> Result<Self, ParseError> {
        let name = Self::parse(s)?;
        if RESERVED_EVENTS.contains(&s) {
            return Err(ParseError::ReservedEvent(name));
        }
        Ok(name)
    }

    /// A built-in name, known valid.
    pub fn builtin(s: &'static str) -> Self {
        Self(Arc::from(s))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of one open event stream: a random UUID v4, so it cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(Uuid);

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Parses the text form; any malformed id is simply unknown.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ParseError::ConnectionId)
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A message body: trimmed, 1..=`max_chars` characters.
#[derive(Debug, Clone)]
pub struct MessageBody(String);

impl MessageBody {
    /// Trims and checks the length.
    pub fn parse(s: &str, max_chars: usize) -> Result<Self, ParseError> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 || n > max_chars {
            return Err(ParseError::MessageBody { max_chars });
        }
        Ok(Self(t.to_owned()))
    }

    /// The body as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_contract() {
        for ok in ["general", "a", "0-x_y", &"r".repeat(64)] {
            assert!(RoomName::parse(ok).is_ok(), "{ok} should be a valid room");
        }
        for bad in ["", "-a", "_a", "Upper", "sp ace", "é", &"r".repeat(65)] {
            assert!(RoomName::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn custom_event_names_exclude_reserved_ones() {
        assert!(EventName::parse_custom("typing").is_ok());
        assert!(EventName::parse_custom("a.b-c_1").is_ok());
        for bad in [
            "message",
            "presence",
            "connected",
            "broadcast",
            "error",
            "1a",
            "A",
            "",
        ] {
            assert!(
                EventName::parse_custom(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(
            EventName::parse("message").is_ok(),
            "built-ins can be subscribed to"
        );
    }

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi \n", 10).unwrap().as_str(), "hi");
        assert!(MessageBody::parse("   ", 10).is_err());
        assert!(
            MessageBody::parse(&"é".repeat(10), 10).is_ok(),
            "counts chars, not bytes"
        );
        assert!(MessageBody::parse(&"é".repeat(11), 10).is_err());
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(Username::parse("al_1").is_ok());
        assert!(Username::parse("al").is_err());
        assert!(Username::parse("al-1").is_err());
        assert!(Password::parse("1234567".into()).is_err());
        assert!(Password::parse("12345678".into()).is_ok());
    }
}
