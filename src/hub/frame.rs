//! SSE wire format. Every event is encoded here exactly once; the resulting `Bytes` is shared
//! by every subscriber it goes to.
//!
//! `data` is always one line of JSON: serde_json escapes `\n`, `\r` and every other control
//! character, so no body can end a frame early or smuggle in an `event:`/`id:` line.

use std::io::Write;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::domain::StoredMessage;

/// The comment written after `sse.heartbeat_secs` of silence.
pub const PING: Bytes = Bytes::from_static(b": ping\n\n");

/// Encodes one event. `id` is set for persisted events only.
pub fn encode(event: &str, id: Option<i64>, data: &impl Serialize) -> Bytes {
    let mut buf = BytesMut::with_capacity(128).writer();
    if let Some(id) = id {
        let _ = writeln!(buf, "id: {id}");
    }
    let _ = write!(buf, "event: {event}\ndata: ");
    // Serializing plain structs of strings and numbers cannot fail.
    let _ = serde_json::to_writer(&mut buf, data);
    let mut buf = buf.into_inner();
    buf.put_slice(b"\n\n");
    buf.freeze()
}

/// A committed event as sent live and replayed, with its `id:`: `message`, `broadcast`, or
/// the change to a message (`message_deleted`, `message_edited`, `reaction`).
pub fn stored(event: &StoredMessage) -> Bytes {
    encode(event.event_name(), Some(event.id), &event.data())
}

/// The ephemeral `removed` event: `by` took the connection's user out of `room`.
pub fn removed(room: &crate::domain::RoomName, by: Option<&crate::domain::UserRef>) -> Bytes {
    #[derive(Serialize)]
    struct Removed<'a> {
        room: &'a crate::domain::RoomName,
        by: Option<&'a crate::domain::UserRef>,
    }
    encode("removed", None, &Removed { room, by })
}

/// The first frame of every stream: the reconnect delay and the connection id, and for a
/// stream subscribed as it opened (the one-step form), what that subscribe did.
pub fn connected(
    connection_id: &impl Serialize,
    heartbeat_secs: u64,
    subscribed: Option<&super::Subscription>,
) -> Bytes {
    /// The subscribe answer's fields, but the connection id said beside them.
    #[derive(Serialize)]
    struct Subscribed<'a> {
        rooms: &'a [crate::domain::RoomName],
        events: &'a Option<Vec<crate::domain::EventName>>,
        replay: &'a super::ReplayOutcome,
    }
    #[derive(Serialize)]
    struct Connected<'a, T> {
        connection_id: &'a T,
        heartbeat_secs: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        subscribed: Option<Subscribed<'a>>,
    }
    let subscribed = subscribed.map(|s| Subscribed {
        rooms: &s.rooms,
        events: &s.events,
        replay: &s.replay,
    });
    let event = encode(
        "connected",
        None,
        &Connected {
            connection_id,
            heartbeat_secs,
            subscribed,
        },
    );
    let mut buf = BytesMut::with_capacity(event.len() + 12);
    buf.put_slice(RETRY_LINE);
    buf.put_slice(&event);
    buf.freeze()
}

/// The reconnection delay every stream opens with (`retry:`), ms.
pub(super) const RETRY_MS: u64 = 3000;

/// The `retry:` line of every `connected` frame: [`RETRY_MS`], written out once.
const RETRY_LINE: &[u8] = b"retry: 3000\n";

/// A frame with a `retry:` field alone: the client's next reconnection waits `ms`. It
/// dispatches no event.
pub(super) fn retry(ms: u64) -> Bytes {
    Bytes::from(format!("retry: {ms}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_stays_on_one_line_whatever_the_body() {
        let body = "line1\nevent: evil\r\nid: 99\r\rdata: x\u{2028}é";
        let frame = encode("message", Some(7), &serde_json::json!({ "body": body }));
        let text = std::str::from_utf8(&frame).unwrap();
        assert!(text.starts_with("id: 7\nevent: message\ndata: {"));
        assert!(text.ends_with("}\n\n"));
        let lines: Vec<&str> = text.trim_end_matches("\n\n").split(['\n', '\r']).collect();
        assert_eq!(lines.len(), 3, "exactly id, event and data lines: {text:?}");
        let data: serde_json::Value = serde_json::from_str(&lines[2]["data: ".len()..]).unwrap();
        assert_eq!(data["body"], body, "the body round-trips verbatim");
    }

    #[test]
    fn the_opening_retry_line_says_retry_ms() {
        assert_eq!(RETRY_LINE, format!("retry: {RETRY_MS}\n").as_bytes());
    }

    #[test]
    fn connected_frame_matches_the_contract() {
        let frame = connected(&"abc", 15, None);
        assert_eq!(
            &frame[..],
            b"retry: 3000\nevent: connected\ndata: {\"connection_id\":\"abc\",\"heartbeat_secs\":15}\n\n"
        );
    }
}
