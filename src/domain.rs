//! Validated names and ids. Each is parsed once at the edge (JSON, path, CLI); past that, an
//! invalid value cannot exist, so the rest of the code never re-checks.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// Reserved event names that a client may not use for custom events.
pub const RESERVED_EVENTS: [&str; 5] = ["connected", "message", "presence", "broadcast", "error"];

fn is_lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A room name: `^[a-z0-9][a-z0-9_-]{0,63}$`. Cheap to clone (shared string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Parses a room name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, ApiError> {
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
            Err(ApiError::validation(
                "invalid_room",
                "room names are 1-64 chars of a-z 0-9 _ - and start with a letter or digit",
            ))
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
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        let ok = (3..=32).contains(&s.len())
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(ApiError::validation(
                "invalid_username",
                "usernames are 3-32 chars of A-Z a-z 0-9 _",
            ))
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
    pub fn parse(s: String) -> Result<Self, ApiError> {
        if (8..=128).contains(&s.chars().count()) {
            Ok(Self(s))
        } else {
            Err(ApiError::validation(
                "invalid_password",
                "passwords are 8-128 characters",
            ))
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
    pub fn parse(s: &str) -> Result<Self, ApiError> {
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
            Err(ApiError::validation(
                "invalid_event",
                "event names are 1-32 chars of a-z 0-9 _ . - and start with a letter",
            ))
        }
    }

    /// Parses a name a client may send as a custom event: not a reserved one.
    pub fn parse_custom(s: &str) -> Result<Self, ApiError> {
        let name = Self::parse(s)?;
        if RESERVED_EVENTS.contains(&s) {
            return Err(ApiError::validation(
                "reserved_event",
                format!("`{s}` is reserved; custom events need another name"),
            ));
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
    pub fn parse(s: &str) -> Result<Self, ApiError> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| ApiError::unknown_connection())
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
    pub fn parse(s: &str, max_chars: usize) -> Result<Self, ApiError> {
        let t = s.trim();
        let n = t.chars().count();
        if n == 0 || n > max_chars {
            return Err(ApiError::validation(
                "invalid_body",
                format!("message bodies are 1-{max_chars} characters after trimming"),
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The body as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anyone who registered.
    User,
    /// May broadcast, see stats and disconnect users.
    Admin,
}

impl Role {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored or typed form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The public face of a user, as the contract's `User` object.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Display name, as registered.
    pub username: String,
    /// `user` or `admin`.
    pub role: Role,
}

/// The part of a user shown to others: `{"id","username"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct UserRef {
    /// Stable id.
    pub id: Uuid,
    /// Display name.
    pub username: Arc<str>,
}

impl From<&User> for UserRef {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: Arc::from(u.username.as_str()),
        }
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
