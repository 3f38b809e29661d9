//! `POST /api/subscribe` and `POST /api/unsubscribe` bodies, as the routes read them:
//! `serde_json` into the contract's body, then validation into the hub's request. Neither
//! may panic, and whatever validates keeps the contract's bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roomcast::{
    domain::{MAX_HISTORY, MAX_ROOMS_PER_CONNECTION, RoomName, SubscribeBody, UnsubscribeBody},
    hub::{ReplayFrom, SubscribeRequest, UnsubscribeRequest},
};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<SubscribeBody>(data) {
        let rooms = body.rooms.clone();
        if let Ok(request) = SubscribeRequest::try_from(body) {
            assert!(
                (1..=MAX_ROOMS_PER_CONNECTION).contains(&rooms.len()),
                "{} rooms accepted",
                rooms.len()
            );
            for room in &rooms {
                assert!(RoomName::parse(room).is_ok(), "room {room:?} accepted");
            }
            match request.replay() {
                ReplayFrom::After(id) => assert!(id >= 0, "last_event_id {id} accepted"),
                ReplayFrom::Recent(n) => {
                    assert!((1..=MAX_HISTORY).contains(&n), "history {n} accepted")
                }
                ReplayFrom::Nothing => {}
            }
        }
    }
    if let Ok(body) = serde_json::from_slice::<UnsubscribeBody>(data) {
        let rooms = body.rooms.clone();
        if UnsubscribeRequest::try_from(body).is_ok() {
            assert!(
                (1..=MAX_ROOMS_PER_CONNECTION).contains(&rooms.len()),
                "{} rooms accepted",
                rooms.len()
            );
        }
    }
});
