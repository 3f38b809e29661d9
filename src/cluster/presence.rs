//! Who is in which room on which node: every node keeps the same view, fed by the
//! presence changes all nodes publish on the bus, and announces to its own subscribers only
//! the changes that alter the cluster-wide answer (a user's first connection in a room on
//! any node is the `join`, its last on every node the `leave`).
//!
//! A leave that empties a user's nodes in a room is held for `cluster.presence_settle_ms`
//! before anyone is told: the bus carries each node's changes in the order it sent them, but
//! not one node's against another's. A user whose second stream opened on node B just
//! before its first closed on node A may be heard leaving A before joining B; the join that
//! arrives within the window cancels the leave, and neither is announced.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use parking_lot::Mutex;
use tokio::{sync::Notify, time::Instant};
use uuid::Uuid;

use crate::{
    domain::{RoomName, UserRef},
    hub::PresenceAction,
};

/// room → user → (the user as shown, the nodes where it has a connection in the room)
type Rooms = HashMap<RoomName, HashMap<Uuid, (UserRef, HashSet<Uuid>)>>;

/// A change everybody sees.
pub type Announcement = (RoomName, UserRef, PresenceAction);

/// The cluster-wide presence view. One mutex: presence changes are per subscribe, not per
/// message, and no caller holds it while taking another lock (but `leaving`, a leaf).
#[derive(Default)]
pub struct PresenceView {
    rooms: Mutex<Rooms>,
    /// How long a cluster-wide leave is held (zero: announced at once).
    settle: Duration,
    /// Held leaves: (room, user) → the user as shown, when it is due.
    leaving: Mutex<HashMap<(RoomName, Uuid), (UserRef, Instant)>>,
    /// Woken when a leave is held, for [`PresenceView::settled_leaves`]'s caller.
    held: Notify,
}

impl PresenceView {
    /// A view that holds cluster-wide leaves for `settle`.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            ..Self::default()
        }
    }

    /// Applies `node`'s change; answers whether it changes the cluster-wide presence.
    pub fn apply(
        &self,
        node: Uuid,
        room: &RoomName,
        user: &UserRef,
        action: PresenceAction,
    ) -> bool {
        let mut rooms = self.rooms.lock();
        match action {
            PresenceAction::Join => {
                let users = rooms.entry(room.clone()).or_default();
                let (_, nodes) = users
                    .entry(user.id)
                    .or_insert_with(|| (user.clone(), HashSet::new()));
                let first = nodes.is_empty();
                nodes.insert(node);
                // A held leave of the same user is cancelled: as far as anyone was told, it
                // never left.
                first
                    && self
                        .leaving
                        .lock()
                        .remove(&(room.clone(), user.id))
                        .is_none()
            }
            PresenceAction::Leave => {
                let Some(users) = rooms.get_mut(room) else {
                    return false;
                };
                let Some((_, nodes)) = users.get_mut(&user.id) else {
                    return false;
                };
                if !nodes.remove(&node) || !nodes.is_empty() {
                    return false;
                }
                users.remove(&user.id);
                if users.is_empty() {
                    rooms.remove(room);
                }
                if self.settle.is_zero() {
                    return true;
                }
                let due = Instant::now() + self.settle;
                self.leaving
                    .lock()
                    .insert((room.clone(), user.id), (user.clone(), due));
                self.held.notify_one();
                false
            }
        }
    }

    /// Takes the held leaves due at `now`: announce them. Also when the next one is due.
    pub fn settled_leaves(&self, now: Instant) -> (Vec<Announcement>, Option<Instant>) {
        let mut leaving = self.leaving.lock();
        let mut due = Vec::new();
        leaving.retain(|(room, _), (user, at)| {
            let keep = *at > now;
            if !keep {
                due.push((room.clone(), user.clone(), PresenceAction::Leave));
            }
            keep
        });
        (due, leaving.values().map(|(_, at)| *at).min())
    }

    /// Waits until a leave is held (one held since the last call counts).
    pub async fn leave_held(&self) {
        self.held.notified().await;
    }

    /// Forgets a node (declared dead, or this node rejoining): the leaves everybody sees.
    pub fn remove_node(&self, node: Uuid) -> Vec<Announcement> {
        let mut rooms = self.rooms.lock();
        let mut left = Vec::new();
        rooms.retain(|room, users| {
            users.retain(|_, (user, nodes)| {
                if nodes.remove(&node) && nodes.is_empty() {
                    left.push((room.clone(), user.clone(), PresenceAction::Leave));
                }
                !nodes.is_empty()
            });
            !users.is_empty()
        });
        left
    }

    /// Replaces what is known of `node` with `present` (read from the node itself, after
    /// a notification may have been lost): the joins and leaves that differ.
    pub fn reset_node(&self, node: Uuid, present: &[(RoomName, UserRef)]) -> Vec<Announcement> {
        let now: HashSet<(&RoomName, Uuid)> = present.iter().map(|(r, u)| (r, u.id)).collect();
        let mut out = Vec::new();
        let was: Vec<(RoomName, UserRef)> = {
            let rooms = self.rooms.lock();
            rooms
                .iter()
                .flat_map(|(room, users)| {
                    users
                        .values()
                        .filter(|(_, nodes)| nodes.contains(&node))
                        .map(move |(u, _)| (room.clone(), u.clone()))
                })
                .collect()
        };
        for (room, user) in was {
            if !now.contains(&(&room, user.id))
                && self.apply(node, &room, &user, PresenceAction::Leave)
            {
                out.push((room, user, PresenceAction::Leave));
            }
        }
        for (room, user) in present {
            if self.apply(node, room, user, PresenceAction::Join) {
                out.push((room.clone(), user.clone(), PresenceAction::Join));
            }
        }
        out
    }

    /// The nodes this view knows of.
    pub fn nodes(&self) -> HashSet<Uuid> {
        let rooms = self.rooms.lock();
        rooms
            .values()
            .flat_map(|users| users.values().flat_map(|(_, nodes)| nodes.iter().copied()))
            .collect()
    }

    /// Users with a connection in `room` on any node, with those nodes, sorted by name.
    pub fn users(&self, room: &RoomName) -> Vec<(UserRef, HashSet<Uuid>)> {
        let rooms = self.rooms.lock();
        let mut users: Vec<(UserRef, HashSet<Uuid>)> = rooms
            .get(room)
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default();
        users.sort_by(|a, b| a.0.username.cmp(&b.0.username));
        users
    }

    /// How many distinct users are in `room` on any node.
    pub fn user_count(&self, room: &RoomName) -> usize {
        self.rooms.lock().get(room).map_or(0, HashMap::len)
    }

    /// Whether anyone is in `room` on any node.
    pub fn has_room(&self, room: &RoomName) -> bool {
        self.rooms.lock().contains_key(room)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRef {
        UserRef {
            id: Uuid::new_v4(),
            username: Some(name.into()),
        }
    }

    fn names(view: &PresenceView, room: &RoomName) -> Vec<UserRef> {
        view.users(room).into_iter().map(|(u, _)| u).collect()
    }

    #[test]
    fn a_user_on_two_nodes_joins_once_and_leaves_once() {
        let view = PresenceView::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let room = RoomName::parse("r").unwrap();
        let ann = user("ann");
        assert!(
            view.apply(a, &room, &ann, PresenceAction::Join),
            "first join"
        );
        assert!(
            !view.apply(b, &room, &ann, PresenceAction::Join),
            "second node's join"
        );
        assert!(
            !view.apply(a, &room, &ann, PresenceAction::Leave),
            "one node left"
        );
        assert_eq!(names(&view, &room), vec![ann.clone()], "still present on b");
        assert!(
            view.apply(b, &room, &ann, PresenceAction::Leave),
            "last leave"
        );
        assert!(!view.has_room(&room), "an empty room is forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_leave_heard_before_the_same_users_join_elsewhere_is_never_announced() {
        let view = PresenceView::new(Duration::from_millis(500));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let room = RoomName::parse("r").unwrap();
        let ann = user("ann");
        assert!(
            view.apply(a, &room, &ann, PresenceAction::Join),
            "first join"
        );
        // Ann's stream on b opened before her stream on a closed, but a's leave is heard
        // first.
        assert!(
            !view.apply(a, &room, &ann, PresenceAction::Leave),
            "the leave is held, not announced"
        );
        assert!(
            !view.apply(b, &room, &ann, PresenceAction::Join),
            "the join cancels the held leave: nothing to announce"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let (due, next) = view.settled_leaves(Instant::now());
        assert!(due.is_empty(), "no leave announced later either: {due:?}");
        assert_eq!(next, None);
        assert_eq!(names(&view, &room), vec![ann], "ann is present on b");
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_leave_is_announced_once_the_window_passes() {
        let view = PresenceView::new(Duration::from_millis(500));
        let a = Uuid::new_v4();
        let room = RoomName::parse("r").unwrap();
        let ann = user("ann");
        view.apply(a, &room, &ann, PresenceAction::Join);
        assert!(!view.apply(a, &room, &ann, PresenceAction::Leave));
        let (due, next) = view.settled_leaves(Instant::now());
        assert!(due.is_empty(), "not yet due");
        assert!(next.is_some(), "due later");
        tokio::time::advance(Duration::from_millis(500)).await;
        let (due, _) = view.settled_leaves(Instant::now());
        assert_eq!(due, vec![(room.clone(), ann, PresenceAction::Leave)]);
        assert!(!view.has_room(&room));
    }

    #[test]
    fn a_dead_node_leaves_only_where_it_was_the_last() {
        let view = PresenceView::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let (r, s) = (RoomName::parse("r").unwrap(), RoomName::parse("s").unwrap());
        let (ann, bob) = (user("ann"), user("bob"));
        view.apply(a, &r, &ann, PresenceAction::Join);
        view.apply(b, &r, &ann, PresenceAction::Join);
        view.apply(a, &s, &bob, PresenceAction::Join);
        let left = view.remove_node(a);
        assert_eq!(left, vec![(s.clone(), bob, PresenceAction::Leave)]);
        assert_eq!(names(&view, &r), vec![ann], "ann is still on b");
        assert!(!view.has_room(&s));
    }

    #[test]
    fn a_reset_announces_only_the_difference() {
        let view = PresenceView::default();
        let a = Uuid::new_v4();
        let r = RoomName::parse("r").unwrap();
        let (ann, bob) = (user("ann"), user("bob"));
        view.apply(a, &r, &ann, PresenceAction::Join);
        let changes = view.reset_node(a, &[(r.clone(), bob.clone())]);
        assert_eq!(
            changes,
            vec![
                (r.clone(), ann, PresenceAction::Leave),
                (r.clone(), bob.clone(), PresenceAction::Join)
            ]
        );
        assert_eq!(names(&view, &r), vec![bob]);
    }
}
