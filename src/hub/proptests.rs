//! Generated sequences of connect / subscribe / unsubscribe / publish / disconnect against a
//! model of who should get what. After every step the hub's invariants hold, its figures
//! match the model, and every stream has seen only ids it should, strictly ascending; at the
//! end every stream has seen exactly the ids the model says, replays included.
//!
//! Driven synchronously: one current-thread runtime per case, streams polled once each
//! (`now_or_never`) after every step, a replay read from an in-memory log that answers at
//! once. Replays (the stream's `Last-Event-ID`, or the request's `last_event_id` or
//! `history`) are asked only on a connection's first subscribe: a later one replays rooms
//! it joins then, below ids it already has, which the contract allows (order is per room)
//! but which would make "strictly ascending" the wrong property.

use std::{
    collections::{BTreeSet, HashSet},
    ops::RangeInclusive,
    sync::Arc,
    time::Duration,
};

use futures_util::{FutureExt, StreamExt};
use proptest::{prelude::*, sample::Index};
use uuid::Uuid;

use super::*;
use crate::domain::{EventName, StoredMessage, UserRef};

const ROOMS: [&str; 4] = ["r0", "r1", "r2", "r3"];
const USERS: usize = 3;

fn room(i: usize) -> RoomName {
    RoomName::parse(ROOMS[i]).expect("a valid room name")
}

/// The event filter a subscribe asks for.
#[derive(Debug, Clone, Copy)]
enum Filter {
    /// No filter: every event.
    All,
    /// Only `message`.
    Messages,
    /// Only `typing`: no room messages (broadcasts still pass).
    Typing,
}

impl Filter {
    fn event_filter(self) -> Option<EventFilter> {
        let name = match self {
            Filter::All => return None,
            Filter::Messages => "message",
            Filter::Typing => "typing",
        };
        Some(EventFilter::new([
            EventName::parse(name).expect("a valid event name")
        ]))
    }

    fn passes_messages(self) -> bool {
        !matches!(self, Filter::Typing)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Opens a stream for a user, with or without a `Last-Event-ID`.
    Connect {
        user: usize,
        last_event_id: Option<i64>,
    },
    /// Subscribes an open stream (as its owner, or as somebody else, which must be refused).
    Subscribe {
        conn: Index,
        rooms: BTreeSet<usize>,
        filter: Filter,
        replay: ReplayFrom,
        by_owner: bool,
    },
    Unsubscribe {
        conn: Index,
        rooms: BTreeSet<usize>,
    },
    /// Stores and fans out the next id: a room message (`Some`) or a broadcast.
    Publish {
        room: Option<usize>,
    },
    /// The client goes away: its stream is dropped.
    Disconnect {
        conn: Index,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let rooms = || prop::collection::btree_set(0..ROOMS.len(), 1..=3);
    let filter = prop_oneof![
        Just(Filter::All),
        Just(Filter::Messages),
        Just(Filter::Typing)
    ];
    let replay = prop_oneof![
        2 => Just(ReplayFrom::Nothing),
        1 => (0..40i64).prop_map(ReplayFrom::After),
        1 => (1..5u32).prop_map(ReplayFrom::Recent),
    ];
    prop_oneof![
        2 => (0..USERS, prop::option::of(0..40i64))
            .prop_map(|(user, last_event_id)| Op::Connect { user, last_event_id }),
        3 => (any::<Index>(), rooms(), filter, replay, prop::bool::weighted(0.9)).prop_map(
            |(conn, rooms, filter, replay, by_owner)| Op::Subscribe { conn, rooms, filter, replay, by_owner }
        ),
        1 => (any::<Index>(), rooms()).prop_map(|(conn, rooms)| Op::Unsubscribe { conn, rooms }),
        5 => prop::option::of(0..ROOMS.len()).prop_map(|room| Op::Publish { room }),
        1 => any::<Index>().prop_map(|conn| Op::Disconnect { conn }),
    ]
}

/// Every event stored so far, answering replays as the database would.
#[derive(Default)]
struct Log {
    events: Vec<StoredMessage>,
}

impl History for Log {
    async fn since(
        &self,
        rooms: &[RoomName],
        after: i64,
        up_to: i64,
        skip_broadcasts: RangeInclusive<i64>,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(super::tests::replay_from(
            &self.events,
            rooms,
            after,
            up_to,
            &skip_broadcasts,
            limit,
        ))
    }

    async fn recent(
        &self,
        room: &RoomName,
        up_to: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<StoredMessage>> {
        Ok(super::tests::recent_from(&self.events, room, up_to, limit))
    }
}

/// One open stream and what the model says about it.
struct Client {
    stream: ConnectionStream,
    user: usize,
    /// The watermark when it connected: broadcasts above it reach it live (or held).
    connected_at: i64,
    last_event_id: Option<i64>,
    subscribed: bool,
    rooms: BTreeSet<usize>,
    passes_messages: bool,
    /// Ids it has been sent, in the order it got them.
    seen: Vec<i64>,
    /// Ids it should get (live and replayed).
    expected: BTreeSet<i64>,
}

impl Client {
    fn id(&self) -> ConnectionId {
        self.stream.connection().id
    }

    /// Reads what the stream has ready now; checks each id is new, ascending and expected.
    fn drain(&mut self) -> Result<(), String> {
        while let Some(item) = self.stream.next().now_or_never() {
            let Some(Ok(bytes)) = item else {
                return Err(format!("stream {} ended though still open", self.id()));
            };
            let text = std::str::from_utf8(&bytes).map_err(|e| format!("frame not UTF-8: {e}"))?;
            for line in text.lines() {
                let Some(value) = line.strip_prefix("id: ") else {
                    continue;
                };
                let id: i64 = value
                    .parse()
                    .map_err(|e| format!("bad id line {line:?}: {e}"))?;
                if let Some(&last) = self.seen.last()
                    && id <= last
                {
                    return Err(format!(
                        "stream {} got id {id} after {last}: {:?}",
                        self.id(),
                        self.seen
                    ));
                }
                if !self.expected.contains(&id) {
                    return Err(format!(
                        "stream {} got id {id} it should not have (expected {:?})",
                        self.id(),
                        self.expected
                    ));
                }
                self.seen.push(id);
            }
        }
        Ok(())
    }
}

/// The hub under test and the model beside it.
struct World {
    hub: Arc<Hub>,
    log: Log,
    users: Vec<UserRef>,
    clients: Vec<Client>,
    last_id: i64,
}

impl World {
    fn new() -> Self {
        Self {
            hub: Arc::new(Hub::new(HubSettings {
                // Far above what a case can queue: no client here is slow.
                queue_capacity: 1024,
                heartbeat: Duration::from_secs(3600),
                replay_limit: 1000,
                replay_bytes: 1 << 20,
                streams_per_user: usize::MAX,
                streams_per_session: usize::MAX,
                max_streams: usize::MAX,
                rooms_per_user: usize::MAX,
                presence_coalesce: Duration::ZERO,
                reconnect_rate: 0,
                replays_at_once: 4,
            })),
            log: Log::default(),
            users: (0..USERS)
                .map(|i| UserRef {
                    id: Uuid::new_v4(),
                    username: Some(Arc::from(format!("user{i}"))),
                })
                .collect(),
            clients: Vec::new(),
            last_id: 0,
        }
    }

    async fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Connect {
                user,
                last_event_id,
            } => {
                let stream = self
                    .hub
                    .connect(self.users[*user].clone(), Uuid::new_v4(), *last_event_id)
                    .map_err(|e| format!("connect refused: {e}"))?;
                self.clients.push(Client {
                    stream,
                    user: *user,
                    connected_at: self.last_id,
                    last_event_id: *last_event_id,
                    subscribed: false,
                    rooms: BTreeSet::new(),
                    passes_messages: true,
                    seen: Vec::new(),
                    expected: BTreeSet::new(),
                });
            }
            Op::Subscribe {
                conn,
                rooms,
                filter,
                replay,
                by_owner,
            } => {
                if self.clients.is_empty() {
                    return Ok(());
                }
                let i = conn.index(self.clients.len());
                self.subscribe(i, rooms, *filter, *replay, *by_owner)
                    .await?;
            }
            Op::Unsubscribe { conn, rooms } => {
                if self.clients.is_empty() {
                    return Ok(());
                }
                let i = conn.index(self.clients.len());
                let client = &mut self.clients[i];
                let names = rooms.iter().map(|&r| room(r)).collect();
                let left = self
                    .hub
                    .unsubscribe(
                        self.users[client.user].id,
                        UnsubscribeRequest::new(client.id(), names),
                    )
                    .map_err(|e| format!("unsubscribe refused: {e}"))?;
                client.rooms.retain(|r| !rooms.contains(r));
                let held: Vec<RoomName> = client.rooms.iter().map(|&r| room(r)).collect();
                if left.rooms != held {
                    return Err(format!("unsubscribe left {:?}, model {held:?}", left.rooms));
                }
            }
            Op::Publish { room: target } => {
                self.last_id += 1;
                let event = StoredMessage {
                    id: self.last_id,
                    room: target.map(room),
                    user: None,
                    body: format!("m{}", self.last_id),
                    sent_at: "2026-01-01T00:00:00.000Z".into(),
                    kind: Default::default(),
                };
                for c in &mut self.clients {
                    let gets = match target {
                        Some(r) => c.passes_messages && c.rooms.contains(r),
                        None => true,
                    };
                    if gets {
                        c.expected.insert(self.last_id);
                    }
                }
                self.hub.publish(&event);
                self.log.events.push(event);
            }
            Op::Disconnect { conn } => {
                if self.clients.is_empty() {
                    return Ok(());
                }
                let mut client = self.clients.swap_remove(conn.index(self.clients.len()));
                client.drain()?;
                drop(client);
            }
        }
        Ok(())
    }

    async fn subscribe(
        &mut self,
        i: usize,
        rooms: &BTreeSet<usize>,
        filter: Filter,
        replay: ReplayFrom,
        by_owner: bool,
    ) -> Result<(), String> {
        let client = &self.clients[i];
        let owner = if by_owner {
            self.users[client.user].id
        } else {
            self.users[(client.user + 1) % USERS].id
        };
        let names: Vec<RoomName> = rooms.iter().map(|&r| room(r)).collect();
        // Only a first subscribe replays; see the module's doc.
        let asked = if client.subscribed {
            ReplayFrom::Nothing
        } else {
            replay
        };
        let request = SubscribeRequest::new(client.id(), names)
            .map_err(|e| format!("request refused: {e}"))?
            .with_filter(filter.event_filter())
            .with_replay(asked);
        let result = self.hub.subscribe(owner, request, &self.log).await;
        if !by_owner {
            return match result {
                Err(HubError::UnknownConnection) => Ok(()),
                other => Err(format!(
                    "another user's subscribe was not refused: {other:?}"
                )),
            };
        }
        let answer = result.map_err(|e| format!("subscribe refused: {e}"))?;
        let watermark = self.last_id;
        let client = &mut self.clients[i];
        let from = match (asked, client.last_event_id.take()) {
            (ReplayFrom::After(id), _) => ReplayFrom::After(id),
            (_, Some(id)) => ReplayFrom::After(id),
            (asked, None) => asked,
        };
        client.subscribed = true;
        client.passes_messages = filter.passes_messages();
        let joined: BTreeSet<usize> = rooms.difference(&client.rooms).copied().collect();
        client.rooms.extend(rooms);
        let replayed = replay_of(&self.log, client, &joined, from, watermark);
        if answer.replay.count != replayed.len() {
            return Err(format!(
                "replay of {from:?} sent {} events, model {replayed:?}",
                answer.replay.count
            ));
        }
        client.expected.extend(replayed);
        Ok(())
    }

    /// Checks the hub against the model and reads every stream.
    fn check(&mut self) -> Result<(), String> {
        self.hub.check_invariants()?;
        let stats = self.hub.stats();
        let held: HashSet<usize> = self
            .clients
            .iter()
            .flat_map(|c| &c.rooms)
            .copied()
            .collect();
        let subscriptions: usize = self.clients.iter().map(|c| c.rooms.len()).sum();
        let model = (self.clients.len(), held.len(), subscriptions);
        let got = (stats.connections, stats.rooms, stats.subscriptions);
        if got != model {
            return Err(format!(
                "(connections, rooms, subscriptions) = {got:?}, model {model:?}"
            ));
        }
        self.clients.iter_mut().try_for_each(Client::drain)
    }
}

/// What a subscribe replays, by the contract: after `After(x)`, every message of the rooms
/// it joined (if its filter passes messages) and every broadcast it did not get live, with
/// ids in `(x, watermark]`; with `Recent(n)`, the last n messages of each joined room.
fn replay_of(
    log: &Log,
    client: &Client,
    joined: &BTreeSet<usize>,
    from: ReplayFrom,
    watermark: i64,
) -> Vec<i64> {
    if joined.is_empty() {
        return Vec::new();
    }
    let in_joined = |m: &StoredMessage| {
        client.passes_messages
            && m.room
                .as_ref()
                .is_some_and(|r| joined.iter().any(|&j| room(j) == *r))
    };
    match from {
        ReplayFrom::Nothing => Vec::new(),
        ReplayFrom::After(x) => log
            .events
            .iter()
            .filter(|m| m.id > x && m.id <= watermark)
            .filter(|m| in_joined(m) || (m.room.is_none() && m.id <= client.connected_at))
            .map(|m| m.id)
            .collect(),
        ReplayFrom::Recent(n) => joined
            .iter()
            .filter(|_| client.passes_messages)
            .flat_map(|&j| {
                log.events
                    .iter()
                    .filter(move |m| m.room == Some(room(j)))
                    .rev()
                    .take(n as usize)
                    .map(|m| m.id)
            })
            .collect(),
    }
}

/// Runs one generated case; `Err` says which step broke what.
fn run(ops: &[Op]) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    // Unconstrained: the whole case is one task that never yields, so tokio's cooperative
    // budget would otherwise run out after ~128 queue reads and make every later read
    // answer "pending", as if the hub had sent nothing.
    rt.block_on(tokio::task::unconstrained(async {
        let mut world = World::new();
        for (step, op) in ops.iter().enumerate() {
            world
                .apply(op)
                .await
                .map_err(|e| format!("step {step} {op:?}: {e}"))?;
            world
                .check()
                .map_err(|e| format!("after step {step} {op:?}: {e}"))?;
        }
        // Streams that never subscribed still hold their broadcasts: a first subscribe
        // releases them (merged into its replay, if it has one).
        for i in 0..world.clients.len() {
            if !world.clients[i].subscribed {
                let all = (0..ROOMS.len()).collect();
                world
                    .subscribe(i, &all, Filter::All, ReplayFrom::Nothing, true)
                    .await
                    .map_err(|e| format!("final subscribe: {e}"))?;
            }
        }
        world.check().map_err(|e| format!("at the end: {e}"))?;
        for c in &world.clients {
            let expected: Vec<i64> = c.expected.iter().copied().collect();
            if c.seen != expected {
                return Err(format!(
                    "stream {} (connected after id {}, rooms {:?}, messages {}) saw {:?}, model {expected:?}",
                    c.id(),
                    c.connected_at,
                    c.rooms,
                    c.passes_messages,
                    c.seen
                ));
            }
        }
        Ok(())
    }))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_sequences_keep_the_hub_consistent_and_ordered(
        ops in prop::collection::vec(op(), 1..60)
    ) {
        run(&ops).map_err(TestCaseError::fail)?;
    }
}
