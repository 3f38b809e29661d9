//! Every name and id parser on one input: none may panic, and whatever one accepts it keeps
//! as given (or, for a message body, trimmed) and accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast::domain::{
    ConnectionId, EventName, MessageBody, Password, RESERVED_EVENTS, RoomName, Username,
};

/// The contract's default message cap (`limits.message_chars`).
const MESSAGE_CHARS: usize = 4000;

fuzz_target!(|data: &[u8]| {
    // Every one of these reads text that actix has already decoded as UTF-8.
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(room) = RoomName::parse(s) {
        assert_eq!(room.as_str(), s, "room name changed");
        assert!((1..=64).contains(&s.len()), "room of {} bytes", s.len());
    }
    if let Ok(name) = Username::parse(s) {
        assert_eq!(name.as_str(), s, "username changed");
    }
    match EventName::parse_custom(s) {
        Ok(name) => {
            assert_eq!(name.as_str(), s, "event name changed");
            assert!(!RESERVED_EVENTS.contains(&s), "reserved {s:?} accepted");
        }
        Err(_) => {
            if let Ok(name) = EventName::parse(s) {
                assert!(RESERVED_EVENTS.contains(&name.as_str()), "{s:?} refused");
            }
        }
    }
    if let Ok(id) = ConnectionId::parse(s) {
        let text = id.to_string();
        assert_eq!(
            ConnectionId::parse(&text).ok(),
            Some(id),
            "{text} does not reparse"
        );
    }
    if let Ok(body) = MessageBody::parse(s, MESSAGE_CHARS) {
        assert_eq!(body.as_str(), s.trim(), "body is not the trimmed text");
        let again = MessageBody::parse(body.as_str(), MESSAGE_CHARS).map(|b| b.as_str().len());
        assert_eq!(
            again.ok(),
            Some(body.as_str().len()),
            "body does not reparse"
        );
    }
    if Password::parse(s.to_owned()).is_ok() {
        let chars = s.chars().count();
        assert!((8..=128).contains(&chars), "password of {chars} chars");
    }
});
