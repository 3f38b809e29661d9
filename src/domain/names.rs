//! Validated names and ids. Each is parsed once at the edge (JSON, path, CLI); past that, an
//! invalid value cannot exist, so the rest of the code never re-checks.

use std::{fmt, sync::Arc};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ParseError;

/// Reserved event names that a client may not use for custom events.
pub const RESERVED_EVENTS: [&str; 11] = [
    "connected",
    "message",
    "presence",
    "broadcast",
    "error",
    "removed",
    "read",
    "message_deleted",
    "member",
    "message_edited",
    "reaction",
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

/// Parsed like any room name: a name that crosses nodes is checked again on arrival.
impl<'de> Deserialize<'de> for RoomName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
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

/// The id of one open event stream: a random UUID v4, so it cannot be guessed. On a node
/// of a cluster its first [`NODE_TAG_BYTES`] bytes name the node holding the stream (the
/// other 74 bits stay random), so any node can tell where to relay a request for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(Uuid);

/// How many leading bytes of a clustered node's connection ids name the node.
pub const NODE_TAG_BYTES: usize = 6;

impl ConnectionId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// A fresh random id whose leading bytes are `tag` (the node holding the stream).
    pub fn tagged(tag: [u8; NODE_TAG_BYTES]) -> Self {
        let mut bytes = *Uuid::new_v4().as_bytes();
        bytes[..NODE_TAG_BYTES].copy_from_slice(&tag);
        Self(Uuid::from_bytes(bytes))
    }

    /// The node tag this id carries (meaningful only for ids made by [`Self::tagged`]).
    pub fn node_tag(&self) -> [u8; NODE_TAG_BYTES] {
        let mut tag = [0; NODE_TAG_BYTES];
        tag.copy_from_slice(&self.0.as_bytes()[..NODE_TAG_BYTES]);
        tag
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

/// Reads a `Last-Event-ID` header value: the decimal id of the last event the client saw,
/// surrounding whitespace allowed. Anything else (a sign, a fraction, an id past `i64`) is
/// `None`: the server only ever sends `id:` as plain digits, so nothing else is one of ours.
pub fn parse_last_event_id(s: &str) -> Option<i64> {
    let digits = s.trim();
    // `i64::from_str` alone would also take "+5" and "-0", which we never send.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Parsed like any event name (built-in ones included, as [`EventName::parse`]): a name that
/// crosses nodes is checked again on arrival.
impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
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

    /// Generated input: every property below runs on strings that match the contract,
    /// near misses (the names' alphabet plus a few characters just outside it, lengths
    /// across each bound) and arbitrary unicode.
    mod generated {
        use std::sync::LazyLock;

        use proptest::prelude::*;
        use regex::Regex;

        use super::super::*;

        /// The contract's patterns (API.md, "Names"), as the oracle.
        fn contract(pattern: &str) -> Regex {
            Regex::new(&format!("^(?:{pattern})$")).expect("a contract pattern compiles")
        }
        static ROOM: LazyLock<Regex> = LazyLock::new(|| contract("[a-z0-9][a-z0-9_-]{0,63}"));
        static USER: LazyLock<Regex> = LazyLock::new(|| contract("[A-Za-z0-9_]{3,32}"));
        static EVENT: LazyLock<Regex> = LazyLock::new(|| contract("[a-z][a-z0-9_.-]{0,31}"));
        static UUID_TEXT: LazyLock<Regex> = LazyLock::new(|| {
            contract("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        });

        /// Near misses and arbitrary text, for the "anything else is refused" side.
        fn any_text() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-zA-Z0-9_.\\- \t\né\u{0}]{0,70}",
                any::<String>(),
                ".{0,140}",
            ]
        }

        proptest! {
            #[test]
            fn valid_room_names_parse_and_round_trip(s in "[a-z0-9][a-z0-9_-]{0,63}") {
                let room = RoomName::parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?} refused: {e}")))?;
                prop_assert_eq!(room.as_str(), s.as_str(), "as_str changed the name");
                prop_assert_eq!(room.to_string(), s.clone(), "Display changed the name");
                prop_assert_eq!(
                    serde_json::to_string(&room).ok(),
                    serde_json::to_string(&s).ok(),
                    "JSON is not the plain string"
                );
                prop_assert_eq!(RoomName::parse(room.as_str()).ok(), Some(room.clone()), "reparse differs");
            }

            #[test]
            fn room_names_are_exactly_the_contracts(s in any_text()) {
                prop_assert_eq!(RoomName::parse(&s).is_ok(), ROOM.is_match(&s), "room {:?}", s);
            }

            #[test]
            fn valid_usernames_parse_and_round_trip(s in "[A-Za-z0-9_]{3,32}") {
                let name = Username::parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?} refused: {e}")))?;
                prop_assert_eq!(name.as_str(), s.as_str(), "as_str changed the name");
                prop_assert_eq!(
                    serde_json::to_string(&name).ok(),
                    serde_json::to_string(&s).ok(),
                    "JSON is not the plain string"
                );
            }

            #[test]
            fn usernames_are_exactly_the_contracts(s in any_text()) {
                prop_assert_eq!(Username::parse(&s).is_ok(), USER.is_match(&s), "username {:?}", s);
            }

            #[test]
            fn valid_event_names_parse_and_round_trip(s in "[a-z][a-z0-9_.-]{0,31}") {
                let name = EventName::parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?} refused: {e}")))?;
                prop_assert_eq!(name.as_str(), s.as_str(), "as_str changed the name");
                prop_assert_eq!(
                    serde_json::to_string(&name).ok(),
                    serde_json::to_string(&s).ok(),
                    "JSON is not the plain string"
                );
            }

            #[test]
            fn event_names_are_exactly_the_contracts(
                s in prop_oneof![any_text(), prop::sample::select(RESERVED_EVENTS.to_vec()).prop_map(String::from)]
            ) {
                let valid = EVENT.is_match(&s);
                let reserved = RESERVED_EVENTS.contains(&s.as_str());
                prop_assert_eq!(EventName::parse(&s).is_ok(), valid, "event {:?}", s);
                match EventName::parse_custom(&s) {
                    Ok(_) => prop_assert!(valid && !reserved, "custom event {:?} accepted", s),
                    Err(ParseError::ReservedEvent(name)) => {
                        prop_assert!(reserved, "{:?} called reserved", s);
                        prop_assert_eq!(name.as_str(), s.as_str(), "the error names another event");
                    }
                    Err(_) => prop_assert!(!valid, "custom event {:?} refused", s),
                }
            }

            #[test]
            fn passwords_are_8_to_128_characters(s in prop_oneof![any_text(), ".{6,10}", ".{126,130}"]) {
                let chars = s.chars().count();
                match Password::parse(s.clone()) {
                    Ok(p) => {
                        prop_assert!((8..=128).contains(&chars), "{} characters accepted", chars);
                        prop_assert_eq!(p.expose(), s.as_str(), "the secret changed");
                    }
                    Err(_) => prop_assert!(!(8..=128).contains(&chars), "{} characters refused", chars),
                }
            }

            #[test]
            fn a_passwords_debug_form_does_not_depend_on_it(a in ".{8,40}", b in ".{8,40}") {
                let (a, b) = (Password::parse(a), Password::parse(b));
                prop_assert_eq!(format!("{a:?}"), format!("{b:?}"), "Debug shows something of the secret");
            }

            #[test]
            fn bodies_are_trimmed_and_bounded_in_characters(
                s in prop_oneof![any_text(), "[ \t\n]{0,3}[a-zé ]{0,12}[ \t\n\u{3000}]{0,3}"],
                max in 1usize..12,
            ) {
                let trimmed = s.trim();
                let chars = trimmed.chars().count();
                match MessageBody::parse(&s, max) {
                    Ok(body) => {
                        prop_assert!((1..=max).contains(&chars), "{} characters accepted under {}", chars, max);
                        prop_assert_eq!(body.as_str(), trimmed, "the body is not the trimmed text");
                        let again = MessageBody::parse(body.as_str(), max)
                            .map(|b| b.as_str().to_owned())
                            .ok();
                        prop_assert_eq!(again.as_deref(), Some(trimmed), "parsing is not idempotent");
                    }
                    Err(e) => {
                        prop_assert!(!(1..=max).contains(&chars), "{} characters refused under {}", chars, max);
                        prop_assert_eq!(e, ParseError::MessageBody { max_chars: max }, "wrong error");
                    }
                }
            }

            #[test]
            fn connection_ids_round_trip_in_any_case(bits in any::<u128>()) {
                let id = ConnectionId(Uuid::from_u128(bits));
                let text = id.to_string();
                prop_assert!(UUID_TEXT.is_match(&text), "{} is not the hyphenated lowercase form", text);
                prop_assert_eq!(ConnectionId::parse(&text).ok(), Some(id), "lowercase form");
                prop_assert_eq!(ConnectionId::parse(&text.to_uppercase()).ok(), Some(id), "uppercase form");
            }

            #[test]
            fn a_connection_id_one_edit_off_is_refused(
                bits in any::<u128>(),
                at in any::<prop::sample::Index>(),
                junk in "[^0-9a-fA-F]",
            ) {
                let text = ConnectionId(Uuid::from_u128(bits)).to_string();
                let at = at.index(text.len());
                let mut cut = text.clone();
                cut.remove(at);
                prop_assert!(ConnectionId::parse(&cut).is_err(), "{:?} (a character short) parsed", cut);
                let mut replaced = text.clone();
                replaced.replace_range(at..=at, &junk);
                if junk != "-" || text.as_bytes()[at] != b'-' {
                    prop_assert!(ConnectionId::parse(&replaced).is_err(), "{:?} parsed", replaced);
                }
            }

            #[test]
            fn a_parsed_connection_id_is_the_one_the_text_spells(s in any_text()) {
                if let Ok(id) = ConnectionId::parse(&s) {
                    let hex: String = s
                        .strip_prefix("urn:uuid:")
                        .unwrap_or(&s)
                        .chars()
                        .filter(char::is_ascii_hexdigit)
                        .collect();
                    prop_assert_eq!(hex.to_lowercase(), id.0.simple().to_string(), "{:?} parsed as {}", s, id);
                }
            }

            #[test]
            fn last_event_ids_are_plain_decimal_ids(
                n in 0..=i64::MAX,
                pad in "[ \t]{0,2}",
                zeros in "0{0,3}",
            ) {
                let text = format!("{pad}{zeros}{n}{pad}");
                prop_assert_eq!(parse_last_event_id(&text), Some(n), "{:?}", text);
            }

            #[test]
            fn last_event_id_takes_exactly_decimal_digits_within_i64(
                s in prop_oneof![any_text(), "[ +-]?[0-9]{0,21}", "-?[0-9]{1,5}"]
            ) {
                let digits = s.trim();
                // Wider than i64, so "past i64" is a value here, not a parse failure.
                let expected = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                    digits.parse::<i128>().ok().filter(|v| *v <= i128::from(i64::MAX))
                } else {
                    None
                };
                let got = parse_last_event_id(&s).map(i128::from);
                prop_assert_eq!(got, expected, "{:?}", s);
            }
        }
    }
}
