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
