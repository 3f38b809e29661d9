//! What a webhook is told of: its URL, the events it takes, the rooms it is about, and which
//! stored events match it.

use serde::{Deserialize, Serialize};

use super::{MAX_ROOMS_PER_CONNECTION, ParseError, RoomName, StoredMessage};

/// Longest webhook URL, in bytes.
pub const MAX_WEBHOOK_URL: usize = 2048;

/// Where a webhook's deliveries go: an `http` or `https` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// Parses a URL, or says why it cannot be a webhook's.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > MAX_WEBHOOK_URL {
            return Err(ParseError::WebhookUrl);
        }
        let url = url::Url::parse(s).map_err(|_| ParseError::WebhookUrl)?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|h| !h.is_empty())
            && url.username().is_empty()
            && url.password().is_none();
        if !ok {
            return Err(ParseError::WebhookUrl);
        }
        Ok(Self(s.to_owned()))
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An event a webhook may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    /// `message`.
    Message,
    /// `message_edited`.
    MessageEdited,
    /// `message_deleted`.
    MessageDeleted,
    /// `reaction`.
    Reaction,
    /// `broadcast`.
    Broadcast,
}

impl HookEvent {
    /// Its name, as on the stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MessageEdited => "message_edited",
            Self::MessageDeleted => "message_deleted",
            Self::Reaction => "reaction",
            Self::Broadcast => "broadcast",
        }
    }

    /// The event named exactly `s`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Message,
            Self::MessageEdited,
            Self::MessageDeleted,
            Self::Reaction,
            Self::Broadcast,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
    }

    /// What a stored event is, as a webhook names it.
    pub fn of(event: &StoredMessage) -> Self {
        match event.event_name() {
            "message" => Self::Message,
            "message_edited" => Self::MessageEdited,
            "message_deleted" => Self::MessageDeleted,
            "reaction" => Self::Reaction,
            _ => Self::Broadcast,
        }
    }
}

/// What a webhook is told of: some events, of some rooms or all. Broadcasts belong to no
/// room: a webhook taking `broadcast` gets every one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookFilter {
    events: Vec<HookEvent>,
    rooms: Option<Vec<RoomName>>,
}

impl HookFilter {
    /// Checks a request's `events` (a non-empty list of the names above, each exact) and
    /// `rooms` (`None` for every room, else 1..=100 room names).
    pub fn parse(events: &[String], rooms: Option<&[String]>) -> Result<Self, ParseError> {
        let mut parsed = events
            .iter()
            .map(|e| HookEvent::parse(e).ok_or(ParseError::WebhookEvents))
            .collect::<Result<Vec<_>, _>>()?;
        if parsed.is_empty() {
            return Err(ParseError::WebhookEvents);
        }
        parsed.sort_unstable();
        parsed.dedup();
        let rooms = match rooms {
            None => None,
            Some(names) => {
                if names.is_empty() || names.len() > MAX_ROOMS_PER_CONNECTION {
                    return Err(ParseError::WebhookRooms);
                }
                let mut rooms = names
                    .iter()
                    .map(|n| RoomName::parse(n).map_err(|_| ParseError::WebhookRooms))
                    .collect::<Result<Vec<_>, _>>()?;
                rooms.sort_unstable();
                rooms.dedup();
                Some(rooms)
            }
        };
        Ok(Self {
            events: parsed,
            rooms,
        })
    }

    /// A filter as stored (already checked once).
    pub fn stored(events: Vec<HookEvent>, rooms: Option<Vec<RoomName>>) -> Self {
        Self { events, rooms }
    }

    /// The events taken.
    pub fn events(&self) -> &[HookEvent] {
        &self.events
    }

    /// The rooms, or `None` for all.
    pub fn rooms(&self) -> Option<&[RoomName]> {
        self.rooms.as_deref()
    }

    /// Whether `event` is one to deliver.
    pub fn matches(&self, event: &StoredMessage) -> bool {
        let kind = HookEvent::of(event);
        if !self.events.contains(&kind) {
            return false;
        }
        match (&event.room, &self.rooms) {
            (None, _) | (Some(_), None) => true,
            (Some(room), Some(rooms)) => rooms.binary_search(room).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host_and_not_too_long() {
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/hook").is_ok());
        assert!(WebhookUrl::parse("https://example.com/a?b=c").is_ok());
        for bad in [
            "ftp://example.com/",
            "example.com/hook",
            "http://",
            "javascript:alert(1)",
            "http://user:pw@example.com/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
        let long = format!("http://example.com/{}", "a".repeat(MAX_WEBHOOK_URL));
        assert!(WebhookUrl::parse(&long).is_err());
    }

    #[test]
    fn filters_take_known_events_exactly_and_one_to_a_hundred_rooms() {
        let ev = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(HookFilter::parse(&ev(&[]), None).is_err());
        assert!(HookFilter::parse(&ev(&["Message"]), None).is_err());
        assert!(HookFilter::parse(&ev(&["presence"]), None).is_err());
        let f = HookFilter::parse(&ev(&["reaction", "message", "message"]), None).expect("ok");
        assert_eq!(f.events(), [HookEvent::Message, HookEvent::Reaction]);
        assert!(HookFilter::parse(&ev(&["message"]), Some(&[])).is_err());
        assert!(HookFilter::parse(&ev(&["message"]), Some(&ev(&["Bad Room"]))).is_err());
        let many: Vec<String> = (0..101).map(|i| format!("r{i}")).collect();
        assert!(HookFilter::parse(&ev(&["message"]), Some(&many)).is_err());
        assert!(HookFilter::parse(&ev(&["message"]), Some(&many[..100])).is_ok());
    }
}
