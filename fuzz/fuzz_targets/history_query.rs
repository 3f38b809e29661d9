//! The query of `GET /api/rooms/{room}/messages`, read the way actix's `web::Query`
//! extractor reads it. Never a panic, whatever the percent-encoding or the numbers.
#![no_main]

use actix_web::web::Query;
use libfuzzer_sys::fuzz_target;
use roomcast::domain::HistoryQuery;

fuzz_target!(|data: &[u8]| {
    // actix hands the extractor the request's query string, which is always text.
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    // Only "never panics" to check: what parses is plain numbers, and the route checks
    // their range itself.
    let _ = Query::<HistoryQuery>::from_query(query);
});
