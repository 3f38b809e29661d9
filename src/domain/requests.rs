//! Request bodies as the contract spells them. Fields stay raw here; each is parsed into its
//! validated type by whoever consumes the body (e.g. `hub::SubscribeRequest::try_from`).

use serde::{Deserialize, Serialize};

/// Body of `POST /api/subscribe` (serialized again only to relay it to another node).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscribeBody {
    /// The stream's id, from its `connected` event.
    pub connection_id: String,
    /// Rooms to join (1..=100).
    #[schema(value_type = Vec<super::RoomName>, min_items = 1, max_items = 100)]
    pub rooms: Vec<String>,
    /// Event names to receive; `None` means all.
    #[schema(value_type = Option<Vec<super::EventName>>)]
    pub events: Option<Vec<String>>,
    /// Resume after this id.
    pub last_event_id: Option<i64>,
    /// Or: the last N messages of each room.
    #[schema(maximum = 200)]
    pub history: Option<u32>,
}

/// Body of `POST /api/unsubscribe`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnsubscribeBody {
    /// The stream's id.
    pub connection_id: String,
    /// Rooms to leave.
    #[schema(value_type = Vec<super::RoomName>)]
    pub rooms: Vec<String>,
}

/// Query of `GET /api/rooms/{room}/messages?before=&after=&limit=`. Fields stay raw here;
/// the route checks `limit`'s range.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only ids below this.
    pub before: Option<i64>,
    /// Only ids above this.
    pub after: Option<i64>,
    /// Most messages (1..=200, default 50).
    pub limit: Option<u32>,
}

/// The one-step subscribe: `GET /api/events?rooms=a,b&events=…&history=…&last_event_id=…`
/// asks for the subscribe `POST /api/subscribe` would make, on the stream it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamQuery {
    rooms: Vec<String>,
    events: Option<Vec<String>>,
    history: Option<u32>,
    last_event_id: Option<i64>,
}

impl StreamQuery {
    /// Reads a stream's query string: `None` when it asks for no subscribe. Parameters other
    /// than these four are ignored (a cache-buster, say). Names stay raw; the subscribe
    /// parses them as it parses a body's.
    pub fn parse(query: &str) -> Result<Option<Self>, super::ParseError> {
        use super::ParseError;
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|_| ParseError::NoRooms)?;
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let list = |v: &str| v.split(',').map(str::to_owned).collect::<Vec<_>>();
        let (rooms, events, history, last_event_id) = (
            get("rooms"),
            get("events"),
            get("history"),
            get("last_event_id"),
        );
        let Some(rooms) = rooms else {
            return match (events, history, last_event_id) {
                (None, None, None) => Ok(None),
                // The other parameters only qualify a subscribe, which names its rooms.
                _ => Err(ParseError::NoRooms),
            };
        };
        if rooms.is_empty() {
            return Err(ParseError::NoRooms);
        }
        Ok(Some(Self {
            rooms: list(rooms),
            events: events.map(|v| if v.is_empty() { Vec::new() } else { list(v) }),
            history: history
                .map(|v| v.parse().map_err(|_| ParseError::History))
                .transpose()?,
            last_event_id: last_event_id
                .map(|v| v.parse().map_err(|_| ParseError::LastEventId))
                .transpose()?,
        }))
    }

    /// The subscribe as `POST /api/subscribe` would carry it, for the stream `connection_id`.
    pub fn into_body(self, connection_id: String) -> SubscribeBody {
        SubscribeBody {
            connection_id,
            rooms: self.rooms,
            events: self.events,
            last_event_id: self.last_event_id,
            history: self.history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ParseError;

    #[test]
    fn a_stream_query_without_parameters_asks_for_no_subscribe() {
        assert_eq!(StreamQuery::parse(""), Ok(None));
        assert_eq!(
            StreamQuery::parse("_=17"),
            Ok(None),
            "unknown keys are ignored"
        );
    }

    #[test]
    fn a_stream_query_lists_rooms_and_events_with_commas() {
        let q = StreamQuery::parse("rooms=a,b%2Dc&events=message,presence&history=20")
            .expect("valid")
            .expect("a subscribe");
        let body = q.into_body("id".into());
        assert_eq!(body.rooms, ["a", "b-c"]);
        assert_eq!(
            body.events.as_deref(),
            Some(&["message".to_owned(), "presence".to_owned()][..])
        );
        assert_eq!(body.history, Some(20));
        assert_eq!(body.last_event_id, None);
    }

    #[test]
    fn a_stream_query_without_rooms_is_refused() {
        for q in ["rooms=", "events=message", "history=5", "last_event_id=3"] {
            assert_eq!(StreamQuery::parse(q), Err(ParseError::NoRooms), "{q}");
        }
    }

    #[test]
    fn a_stream_query_with_bad_numbers_names_them() {
        assert_eq!(
            StreamQuery::parse("rooms=a&history=x"),
            Err(ParseError::History)
        );
        assert_eq!(
            StreamQuery::parse("rooms=a&last_event_id=-"),
            Err(ParseError::LastEventId)
        );
    }
}

/// Query of `GET /api/search?q=&room=&before=&limit=`. Fields stay raw here; the route
/// parses `q` into a [`super::SearchQuery`] and checks `limit`'s range.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The words to find (1..=200 characters holding a word); the last one is a prefix too.
    pub q: Option<String>,
    /// Only this room.
    pub room: Option<String>,
    /// Only ids below this.
    pub before: Option<i64>,
    /// Most results (1..=50, default 20).
    pub limit: Option<u32>,
}
