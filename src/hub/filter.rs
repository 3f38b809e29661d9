//! Which events a connection asked for.

use std::collections::BTreeSet;

use crate::domain::EventName;

/// Which named events a connection wants; `connected` and `broadcast` always pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter {
    names: BTreeSet<EventName>,
    message: bool,
    presence: bool,
}

impl EventFilter {
    /// A filter that passes exactly these names.
    pub fn new(names: impl IntoIterator<Item = EventName>) -> Self {
        let names: BTreeSet<EventName> = names.into_iter().collect();
        let has = |n: &str| names.iter().any(|e| e.as_str() == n);
        Self {
            message: has("message"),
            presence: has("presence"),
            names,
        }
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &EventName> {
        self.names.iter()
    }

    /// Whether `message` events pass, and with them the stored changes to messages
    /// (`message_deleted`, `message_edited`, `reaction`): replays consist of these, plus
    /// broadcasts.
    pub fn passes_messages(&self) -> bool {
        self.message
    }

    pub(super) fn accepts(&self, kind: Kind<'_>) -> bool {
        match kind {
            Kind::Message => self.message,
            Kind::Presence => self.presence,
            Kind::Custom(name) => self.names.iter().any(|n| n.as_str() == name),
        }
    }
}

/// What kind of room event is being fanned out, for the filters.
#[derive(Clone, Copy)]
pub(super) enum Kind<'a> {
    Message,
    Presence,
    Custom(&'a str),
}
