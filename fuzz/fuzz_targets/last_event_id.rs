//! The `Last-Event-ID` header as `GET /api/events` reads it: raw bytes to a header value,
//! to text, to an id. Never a panic; an id only when the value is its decimal digits.
#![no_main]

use actix_web::http::header::HeaderValue;
use libfuzzer_sys::fuzz_target;
use roomcast::domain::parse_last_event_id;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let Ok(text) = value.to_str() else {
        return;
    };
    if let Some(id) = parse_last_event_id(text) {
        assert!(id >= 0, "negative id {id} from {text:?}");
        let digits = text.trim().trim_start_matches('0');
        let canonical = if digits.is_empty() { "0" } else { digits };
        assert_eq!(id.to_string(), canonical, "{text:?} read as {id}");
    }
});
