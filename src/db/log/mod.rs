//! The message log as the single writer appends to it: one transaction per batch of posts,
//! deletions, edits and reactions. What each kind of change does is written once, in
//! [`apply`], over [`LogTx`]; the two backends ([`sqlite`], [`postgres`]) supply the
//! statements.
//!
//! A message's reactions are kept twice in the same transaction: one row per holder in
//! `reactions` (for idempotence and the order holders came in), and the list answers show,
//! as JSON on the message's own row (so a history page reads one row per message). Within a
//! batch that list is kept in memory and written once per message touched.

mod postgres;
mod sqlite;

use std::{
    collections::{HashMap, hash_map::Entry},
    sync::Arc,
};

use anyhow::Context;
use sqlx::{Connection, PgConnection, postgres::PgConnectOptions};
use uuid::Uuid;

use super::{Backend, Db, messages::kind, now_rfc3339};
use crate::domain::{
    Emoji, EventKind, MAX_REACTION_USERS, MAX_REACTIONS, MessageBody, MessageState, Reaction,
    ReactionAction, ReplyTo, RoomName, StoredMessage, UserRef, index_words,
};

/// A change waiting to be appended.
#[derive(Debug, Clone)]
pub enum NewPost {
    /// A room message, or a broadcast (`room` empty).
    Message {
        /// The room, or `None` for a broadcast.
        room: Option<RoomName>,
        /// The author; `None` for a broadcast sent with the API token.
        user: Option<UserRef>,
        /// The text.
        body: MessageBody,
        /// The message of the same room it answers (refused when there is none).
        reply_to: Option<i64>,
        /// Who the body mentions.
        mentions: Vec<UserRef>,
    },
    /// The deletion of message `message_id` of `room`: its row goes, with its reactions and
    /// the events about it, and a `message_deleted` event takes the next id.
    Deletion {
        /// The message's room.
        room: RoomName,
        /// Who deleted it; `None` for the API token.
        by: Option<UserRef>,
        /// The message removed.
        message_id: i64,
    },
    /// A new body for message `message_id` of `room`, by its author only; a
    /// `message_edited` event takes the next id.
    Edit {
        /// The message's room.
        room: RoomName,
        /// Its author.
        by: UserRef,
        /// The message edited.
        message_id: i64,
        /// The new text.
        body: MessageBody,
        /// Who the new text mentions.
        mentions: Vec<UserRef>,
    },
    /// `by` adds or takes back `emoji` on message `message_id` of `room`; a `reaction`
    /// event takes the next id when that changed anything.
    Reaction {
        /// The message's room.
        room: RoomName,
        /// Who reacts.
        by: UserRef,
        /// The message reacted to.
        message_id: i64,
        /// The reaction.
        emoji: Emoji,
        /// Add or remove.
        action: ReactionAction,
    },
}

impl NewPost {
    /// The stored message this change needs to lock first, if any.
    fn target(&self) -> Option<i64> {
        match self {
            NewPost::Message { .. } => None,
            NewPost::Deletion { message_id, .. }
            | NewPost::Edit { message_id, .. }
            | NewPost::Reaction { message_id, .. } => Some(*message_id),
        }
    }
}

/// What appending one change did.
#[derive(Debug, Clone)]
pub enum Appended {
    /// The event stored: the message or broadcast, `message_deleted` or `message_edited`.
    Stored(StoredMessage),
    /// A reaction request: the `reaction` event when it changed anything, and the
    /// message's reactions after it.
    Reacted {
        /// The event, if one was stored.
        event: Option<StoredMessage>,
        /// The message's reactions now.
        reactions: Arc<Vec<Reaction>>,
    },
    /// The message it names is not there (never was, another room's, a broadcast, a
    /// change event, deleted, or for an edit: not the editor's). Nothing stored.
    Gone,
    /// A new emoji for a message that has [`MAX_REACTIONS`] already. Nothing stored.
    TooManyReactions,
}

impl Appended {
    /// The event it stored, if any.
    pub fn event(&self) -> Option<&StoredMessage> {
        match self {
            Appended::Stored(e) | Appended::Reacted { event: Some(e), .. } => Some(e),
            _ => None,
        }
    }

    fn event_mut(&mut self) -> Option<&mut StoredMessage> {
        match self {
            Appended::Stored(e) | Appended::Reacted { event: Some(e), .. } => Some(e),
            _ => None,
        }
    }

    /// Forgets the event it stored when that is about `message_id` (deleted later in the
    /// same batch): nothing about a deleted message is stored or sent.
    fn forget_about(&mut self, message_id: i64) {
        if self.event().and_then(StoredMessage::about) != Some(message_id) {
            return;
        }
        match self {
            Appended::Reacted { event, .. } => *event = None,
            other => *other = Appended::Gone,
        }
    }
}

/// One batch's transaction, as [`apply`] sees either backend. Every id it is handed for a
/// message has been locked by [`LogTx::lock`].
trait LogTx {
    /// Locks the rows of these messages (ascending ids) until the commit, so writers on
    /// several nodes change one message in turn and take their locks in one order.
    async fn lock(&mut self, ids: &[i64]) -> anyhow::Result<()>;
    /// Deletes message `id` of `room` with its reactions and the events about it; false
    /// when it is not there.
    async fn delete_message(&mut self, room: &RoomName, id: i64) -> anyhow::Result<bool>;
    /// Sets the body of `by`'s message `id` of `room`; false when it is not there or not
    /// `by`'s.
    async fn edit_message(&mut self, edit: &Edit<'_>) -> anyhow::Result<bool>;
    /// Message `id` of `room` as a reply shows it; `None` when it is not there.
    async fn reply_target(&mut self, room: &RoomName, id: i64) -> anyhow::Result<Option<ReplyTo>>;
    /// The stored reactions of message `id` of `room` (`Some(None)`: none); `None` when the
    /// message is not there.
    async fn reactions(
        &mut self,
        room: &RoomName,
        id: i64,
    ) -> anyhow::Result<Option<Option<String>>>;
    /// Records that `user` holds `emoji` on message `id`; false when it did already.
    async fn add_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool>;
    /// Records that `user` no longer holds `emoji` on message `id`; false when it did not.
    async fn remove_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool>;
    /// The first [`MAX_REACTION_USERS`] holders of `emoji` on message `id`, in order.
    async fn first_holders(&mut self, id: i64, emoji: &Emoji) -> anyhow::Result<Vec<UserRef>>;
    /// Stores the reactions list of message `id` (`None`: empty).
    async fn set_reactions(&mut self, id: i64, json: Option<&str>) -> anyhow::Result<()>;
    /// Inserts the events in order, each taking the next id (written into it).
    async fn insert(&mut self, events: &mut [&mut StoredMessage]) -> anyhow::Result<()>;
}

/// An edit's statement parameters.
struct Edit<'a> {
    room: &'a RoomName,
    author: Uuid,
    message_id: i64,
    body: &'a str,
    edited_at: &'a str,
    mentions: Option<String>,
    /// The new body's words, for the search index.
    words: Vec<String>,
}

/// Columns of an event's row besides id, room, user, body and time.
struct Columns<'a> {
    kind: i32,
    about: Option<i64>,
    reply_to: Option<i64>,
    mentions: Option<String>,
    emoji: Option<&'a str>,
    reaction_count: Option<i64>,
    /// A room message's words, for the search index (`None`: not indexed).
    words: Option<Vec<String>>,
}

/// A list of users as stored (`None` for none).
fn users_json(users: &[UserRef]) -> anyhow::Result<Option<String>> {
    if users.is_empty() {
        return Ok(None);
    }
    Ok(Some(serde_json::to_string(users)?))
}

fn columns(e: &StoredMessage) -> anyhow::Result<Columns<'_>> {
    let mut c = Columns {
        kind: kind::MESSAGE,
        about: e.about(),
        reply_to: None,
        mentions: None,
        emoji: None,
        reaction_count: None,
        words: None,
    };
    match &e.kind {
        EventKind::Message(state) => {
            c.reply_to = state.reply_to.as_ref().map(|r| r.id);
            c.mentions = users_json(&state.mentions)?;
            // Room messages are searched; broadcasts are not.
            if e.room.is_some() {
                c.words = Some(index_words(&e.body));
            }
        }
        EventKind::Deleted { .. } => c.kind = kind::DELETED,
        EventKind::Edited { mentions, .. } => {
            c.kind = kind::EDITED;
            c.mentions = users_json(mentions)?;
        }
        EventKind::Reaction {
            emoji,
            action,
            count,
            ..
        } => {
            c.kind = match action {
                ReactionAction::Add => kind::REACTION_ADDED,
                ReactionAction::Remove => kind::REACTION_REMOVED,
            };
            c.emoji = Some(emoji.as_str());
            c.reaction_count = Some(*count);
        }
    }
    Ok(c)
}

/// A message's reactions while a batch changes them.
struct Tally {
    room: RoomName,
    list: Arc<Vec<Reaction>>,
    dirty: bool,
}

/// Applies `batch` in order inside `tx`: the changes to stored messages first, as each
/// comes, then the new events, inserted in batch order so their ids follow it. Answers each
/// change in the batch's order.
async fn apply(
    tx: &mut impl LogTx,
    batch: &[&NewPost],
    sent_at: &str,
) -> anyhow::Result<Vec<Appended>> {
    let mut targets: Vec<i64> = batch.iter().filter_map(|p| p.target()).collect();
    targets.sort_unstable();
    targets.dedup();
    tx.lock(&targets).await?;
    let mut tallies: HashMap<i64, Tally> = HashMap::new();
    let mut out: Vec<Appended> = Vec::with_capacity(batch.len());
    for post in batch {
        let done = match post {
            NewPost::Message { .. } => message(tx, post, sent_at).await?,
            NewPost::Deletion { .. } => delete(tx, &mut tallies, &mut out, post, sent_at).await?,
            NewPost::Edit { .. } => edit(tx, post, sent_at).await?,
            NewPost::Reaction { .. } => react(tx, &mut tallies, post, sent_at).await?,
        };
        out.push(done);
    }
    for (id, tally) in &tallies {
        if tally.dirty {
            let json = match tally.list.is_empty() {
                true => None,
                false => Some(serde_json::to_string(&*tally.list)?),
            };
            tx.set_reactions(*id, json.as_deref()).await?;
        }
    }
    let mut events: Vec<&mut StoredMessage> =
        out.iter_mut().filter_map(Appended::event_mut).collect();
    tx.insert(&mut events).await?;
    Ok(out)
}

/// A deletion: the message goes with its reactions and the change events about it, those
/// `earlier` in this batch included (not yet stored, they now never will be).
async fn delete(
    tx: &mut impl LogTx,
    tallies: &mut HashMap<i64, Tally>,
    earlier: &mut [Appended],
    post: &NewPost,
    sent_at: &str,
) -> anyhow::Result<Appended> {
    let NewPost::Deletion {
        room,
        by,
        message_id,
    } = post
    else {
        anyhow::bail!("not a deletion: {post:?}");
    };
    if !tx.delete_message(room, *message_id).await? {
        return Ok(Appended::Gone);
    }
    tallies.remove(message_id);
    for done in earlier {
        done.forget_about(*message_id);
    }
    let kind = EventKind::Deleted {
        message_id: *message_id,
    };
    Ok(Appended::Stored(change(
        room,
        by.clone(),
        "",
        sent_at,
        kind,
    )))
}

/// A change event of `room`, its id left 0.
fn change(
    room: &RoomName,
    by: Option<UserRef>,
    body: &str,
    sent_at: &str,
    kind: EventKind,
) -> StoredMessage {
    StoredMessage {
        id: 0,
        room: Some(room.clone()),
        user: by,
        body: body.to_owned(),
        sent_at: sent_at.to_owned(),
        kind,
    }
}

/// A new message or broadcast; a reply to a message that is not there is refused.
async fn message(tx: &mut impl LogTx, post: &NewPost, sent_at: &str) -> anyhow::Result<Appended> {
    let NewPost::Message {
        room,
        user,
        body,
        reply_to,
        mentions,
    } = post
    else {
        anyhow::bail!("not a message: {post:?}");
    };
    let reply_to = match (room, reply_to) {
        (_, None) => None,
        (Some(room), Some(id)) => match tx.reply_target(room, *id).await? {
            Some(target) => Some(target),
            None => return Ok(Appended::Gone),
        },
        (None, Some(_)) => return Ok(Appended::Gone),
    };
    Ok(Appended::Stored(StoredMessage {
        id: 0,
        room: room.clone(),
        user: user.clone(),
        body: body.as_str().to_owned(),
        sent_at: sent_at.to_owned(),
        kind: EventKind::Message(MessageState {
            edited_at: None,
            reply_to,
            mentions: mentions.clone(),
            reactions: Default::default(),
        }),
    }))
}

/// An edit by the message's author.
async fn edit(tx: &mut impl LogTx, post: &NewPost, sent_at: &str) -> anyhow::Result<Appended> {
    let NewPost::Edit {
        room,
        by,
        message_id,
        body,
        mentions,
    } = post
    else {
        anyhow::bail!("not an edit: {post:?}");
    };
    let edited = tx
        .edit_message(&Edit {
            room,
            author: by.id,
            message_id: *message_id,
            body: body.as_str(),
            edited_at: sent_at,
            mentions: users_json(mentions)?,
            words: index_words(body.as_str()),
        })
        .await?;
    if !edited {
        return Ok(Appended::Gone);
    }
    let kind = EventKind::Edited {
        message_id: *message_id,
        mentions: mentions.clone(),
    };
    Ok(Appended::Stored(change(
        room,
        Some(by.clone()),
        body.as_str(),
        sent_at,
        kind,
    )))
}

/// A reaction added or taken back; nothing stored when it changes nothing.
async fn react(
    tx: &mut impl LogTx,
    tallies: &mut HashMap<i64, Tally>,
    post: &NewPost,
    sent_at: &str,
) -> anyhow::Result<Appended> {
    let NewPost::Reaction {
        room,
        by,
        message_id,
        emoji,
        action,
    } = post
    else {
        anyhow::bail!("not a reaction: {post:?}");
    };
    let id = *message_id;
    let tally = match tallies.entry(id) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => match tx.reactions(room, id).await? {
            None => return Ok(Appended::Gone),
            Some(json) => e.insert(Tally {
                room: room.clone(),
                list: Arc::new(match json {
                    Some(text) => serde_json::from_str(&text)
                        .with_context(|| format!("message {id}: stored reactions"))?,
                    None => Vec::new(),
                }),
                dirty: false,
            }),
        },
    };
    if tally.room != *room {
        return Ok(Appended::Gone);
    }
    let at = tally.list.iter().position(|r| r.emoji == *emoji);
    let count = match action {
        ReactionAction::Add => {
            if at.is_none() && tally.list.len() >= MAX_REACTIONS {
                return Ok(Appended::TooManyReactions);
            }
            let added = tx.add_holder(id, emoji, by.id).await?;
            added.then(|| add(Arc::make_mut(&mut tally.list), at, emoji, by))
        }
        ReactionAction::Remove => match at {
            Some(at) if tx.remove_holder(id, emoji, by.id).await? => {
                Some(remove(tx, Arc::make_mut(&mut tally.list), at, id, by).await?)
            }
            _ => None,
        },
    };
    tally.dirty |= count.is_some();
    let event = count.map(|count| {
        let kind = EventKind::Reaction {
            message_id: id,
            emoji: emoji.clone(),
            action: *action,
            count,
        };
        change(room, Some(by.clone()), "", sent_at, kind)
    });
    Ok(Appended::Reacted {
        event,
        reactions: tally.list.clone(),
    })
}

/// Counts `by` in for `emoji` (at `at` in `list`, or new at its end); the count now.
fn add(list: &mut Vec<Reaction>, at: Option<usize>, emoji: &Emoji, by: &UserRef) -> i64 {
    match at {
        Some(at) => {
            let r = &mut list[at];
            r.count += 1;
            // The newest holder: listed only while fewer than the cap are.
            if r.users.len() < MAX_REACTION_USERS {
                r.users.push(by.clone());
            }
            r.count
        }
        None => {
            list.push(Reaction {
                emoji: emoji.clone(),
                count: 1,
                users: vec![by.clone()],
            });
            1
        }
    }
}

/// Counts `by` out of the reaction at `at` (which leaves the list at 0); the count now.
async fn remove(
    tx: &mut impl LogTx,
    list: &mut Vec<Reaction>,
    at: usize,
    id: i64,
    by: &UserRef,
) -> anyhow::Result<i64> {
    let r = &mut list[at];
    r.count -= 1;
    let count = r.count;
    if count <= 0 {
        list.remove(at);
        return Ok(0);
    }
    if let Some(listed) = r.users.iter().position(|u| u.id == by.id) {
        r.users.remove(listed);
        // A holder past the listed ones moves up.
        if i64::try_from(r.users.len()).unwrap_or(i64::MAX) < count {
            r.users = tx.first_holders(id, &r.emoji).await?;
        }
    }
    Ok(count)
}

/// The writer's own connection to the message log: appends batches, one transaction each.
pub struct MessageLog {
    pub(in crate::db) conn: LogConn,
}

pub(in crate::db) enum LogConn {
    /// rusqlite, not sqlx: the writer runs on a thread of its own, so a synchronous
    /// connection saves a batch two hand-offs to sqlx's connection thread and back.
    Sqlite(rusqlite::Connection),
    Postgres {
        conn: PgConnection,
        /// To reconnect after the server dropped the connection. Boxed: it is large, and
        /// only read then.
        options: Box<PgConnectOptions>,
        /// NOTIFYed after each commit that stored events.
        channel: String,
    },
}

/// The writer's health probe: one small committed write.
const PROBE: &str = "UPDATE writer_health SET probed_at = $1 WHERE id = 1";

impl MessageLog {
    /// Appends the batch in one transaction (one fsync) and answers each change in the
    /// batch's order. Events take ids in the batch's order. On SQLite the commit blocks the
    /// calling thread: the writer's own.
    pub async fn append(&mut self, batch: &[&NewPost]) -> anyhow::Result<Vec<Appended>> {
        let sent_at = now_rfc3339();
        match &mut self.conn {
            LogConn::Sqlite(conn) => sqlite::append(conn, batch, &sent_at).await,
            LogConn::Postgres { conn, channel, .. } => {
                postgres::append(conn, channel, batch, &sent_at).await
            }
        }
    }

    /// One small committed write, to learn whether the log takes writes again. On
    /// PostgreSQL a connection the server dropped is opened anew first.
    pub async fn probe(&mut self) -> anyhow::Result<()> {
        match &mut self.conn {
            LogConn::Sqlite(conn) => {
                conn.execute(PROBE, [now_rfc3339()])?;
            }
            LogConn::Postgres { conn, options, .. } => {
                if conn.ping().await.is_err() {
                    *conn = PgConnection::connect_with(options)
                        .await
                        .context("reopening the writer's database connection")?;
                }
                let mut tx = conn.begin().await?;
                sqlx::query(PROBE)
                    .bind(now_rfc3339())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) {
        match self.conn {
            LogConn::Sqlite(conn) => {
                let _ = conn.close();
            }
            LogConn::Postgres { conn, .. } => {
                let _ = conn.close().await;
            }
        }
    }
}

impl Db {
    /// Opens the message writer's own connection to the message log (one per process).
    pub async fn message_log(&self) -> anyhow::Result<MessageLog> {
        self.open_message_log()
            .await
            .context("opening the writer's database connection")
    }

    async fn open_message_log(&self) -> anyhow::Result<MessageLog> {
        let conn = match &self.backend {
            Backend::Sqlite {
                options,
                synchronous,
                ..
            } => LogConn::Sqlite(super::sqlite::open_writer(
                options.get_filename(),
                *synchronous,
            )?),
            Backend::Postgres {
                options, channel, ..
            } => LogConn::Postgres {
                conn: PgConnection::connect_with(options).await?,
                options: Box::new(options.clone()),
                channel: channel.clone(),
            },
        };
        Ok(MessageLog { conn })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;
    use crate::domain::{Role, Username};

    fn room() -> RoomName {
        RoomName::parse("r").expect("room")
    }

    fn body(text: &str) -> MessageBody {
        MessageBody::parse(text, 4000).expect("body")
    }

    async fn users(db: &Db, n: usize) -> Vec<UserRef> {
        let mut out = Vec::new();
        for i in 0..n {
            let name = Username::parse(&format!("user{i:02}")).expect("name");
            let user = db.create_user(&name, "x", Role::User).await.expect("user");
            out.push(UserRef::from(&user));
        }
        out
    }

    async fn one(log: &mut MessageLog, post: NewPost) -> Appended {
        log.append(&[&post]).await.expect("appended").remove(0)
    }

    async fn say(log: &mut MessageLog, by: &UserRef, text: &str) -> i64 {
        let post = NewPost::Message {
            room: Some(room()),
            user: Some(by.clone()),
            body: body(text),
            reply_to: None,
            mentions: Vec::new(),
        };
        one(log, post).await.event().expect("stored").id
    }

    fn reaction(by: &UserRef, message_id: i64, emoji: &str, action: ReactionAction) -> NewPost {
        NewPost::Reaction {
            room: room(),
            by: by.clone(),
            message_id,
            emoji: Emoji::parse(emoji).expect("emoji"),
            action,
        }
    }

    /// `(emoji, count, holders' names)` of each reaction.
    type Listed = Vec<(String, i64, Vec<String>)>;

    /// The count a reaction answer's event left (`None`: no event), and the list.
    fn reactions_of(done: &Appended) -> (Option<i64>, Listed) {
        let Appended::Reacted { event, reactions } = done else {
            panic!("not a reaction answer: {done:?}");
        };
        let count = event.as_ref().map(|e| match &e.kind {
            EventKind::Reaction { count, .. } => *count,
            other => panic!("not a reaction event: {other:?}"),
        });
        let list = reactions
            .iter()
            .map(|r| {
                let users = r
                    .users
                    .iter()
                    .map(|u| u.username.as_deref().unwrap_or_default().to_owned())
                    .collect();
                (r.emoji.as_str().to_owned(), r.count, users)
            })
            .collect();
        (count, list)
    }

    /// Counts are exact, `users` the first 20 holders in order (the 21st moves up when one
    /// of them leaves), an emoji at 0 leaves the list and comes back at its end, and a
    /// request that changes nothing stores no event.
    #[tokio::test]
    async fn reactions_keep_exact_counts_and_the_first_holders_on_both_backends() {
        for t in testing::all().await {
            let who = users(&t.db, 25).await;
            let mut log = t.db.message_log().await.expect("log");
            let m = say(&mut log, &who[0], "hello").await;
            let batch: Vec<NewPost> = who
                .iter()
                .map(|u| reaction(u, m, "👍", ReactionAction::Add))
                .collect();
            let done = log
                .append(&batch.iter().collect::<Vec<_>>())
                .await
                .expect("batch");
            let (count, list) = reactions_of(&done[24]);
            assert_eq!(count, Some(25), "{}", t.backend);
            let first: Vec<String> = (0..20).map(|i| format!("user{i:02}")).collect();
            assert_eq!(list, [("👍".to_owned(), 25, first)], "{}", t.backend);
            let again = one(&mut log, reaction(&who[3], m, "👍", ReactionAction::Add)).await;
            assert_eq!(
                reactions_of(&again).0,
                None,
                "{}: re-adding stored an event",
                t.backend
            );
            let gone = one(&mut log, reaction(&who[1], m, "👍", ReactionAction::Remove)).await;
            let (count, list) = reactions_of(&gone);
            assert_eq!(count, Some(24), "{}", t.backend);
            let mut moved: Vec<String> = (0..21).map(|i| format!("user{i:02}")).collect();
            moved.remove(1);
            assert_eq!(list[0].2, moved, "{}: the 21st holder moves up", t.backend);
            let heart = one(&mut log, reaction(&who[0], m, "❤️", ReactionAction::Add)).await;
            assert_eq!(reactions_of(&heart).1.len(), 2, "{}", t.backend);
            for u in &who[..25] {
                one(&mut log, reaction(u, m, "👍", ReactionAction::Remove)).await;
            }
            let back = one(&mut log, reaction(&who[5], m, "👍", ReactionAction::Add)).await;
            let emoji: Vec<String> = reactions_of(&back).1.into_iter().map(|r| r.0).collect();
            assert_eq!(emoji, ["❤️", "👍"], "{}: order of (last) adding", t.backend);
            let stored =
                t.db.message(&room(), m)
                    .await
                    .expect("read")
                    .expect("there");
            let EventKind::Message(state) = &stored.kind else {
                panic!("not a message: {stored:?}");
            };
            assert_eq!(
                state.reactions.list().expect("list")[1].users,
                [who[5].clone()],
                "{}: the stored list",
                t.backend
            );
            log.close().await;
        }
    }

    #[tokio::test]
    async fn a_twenty_first_distinct_reaction_is_refused() {
        for t in testing::all().await {
            let who = users(&t.db, 1).await;
            let mut log = t.db.message_log().await.expect("log");
            let m = say(&mut log, &who[0], "hello").await;
            let emoji: Vec<char> = ('😀'..).take(21).collect();
            for e in &emoji[..20] {
                let done = one(
                    &mut log,
                    reaction(&who[0], m, &e.to_string(), ReactionAction::Add),
                );
                assert!(reactions_of(&done.await).0.is_some(), "{}", t.backend);
            }
            let last = emoji[20].to_string();
            let done = one(&mut log, reaction(&who[0], m, &last, ReactionAction::Add)).await;
            assert!(
                matches!(done, Appended::TooManyReactions),
                "{}: {done:?}",
                t.backend
            );
            let held = one(&mut log, reaction(&who[0], m, "😀", ReactionAction::Add)).await;
            assert!(
                matches!(held, Appended::Reacted { .. }),
                "{}: {held:?}",
                t.backend
            );
            log.close().await;
        }
    }

    /// A deletion takes the message's reactions and change events with it, also those
    /// earlier in its own batch (which are then neither stored nor answered as stored).
    #[tokio::test]
    async fn a_deletion_takes_the_changes_to_its_message_with_it() {
        for t in testing::all().await {
            let who = users(&t.db, 2).await;
            let mut log = t.db.message_log().await.expect("log");
            let m = say(&mut log, &who[0], "first").await;
            let n = say(&mut log, &who[0], "second").await;
            one(&mut log, reaction(&who[1], m, "👍", ReactionAction::Add)).await;
            let edit = |id| NewPost::Edit {
                room: room(),
                by: who[0].clone(),
                message_id: id,
                body: body("edited"),
                mentions: Vec::new(),
            };
            one(&mut log, edit(m)).await;
            let delete = |id| NewPost::Deletion {
                room: room(),
                by: None,
                message_id: id,
            };
            one(&mut log, delete(m)).await;
            let batch = [
                reaction(&who[1], n, "👍", ReactionAction::Add),
                edit(n),
                delete(n),
            ];
            let done = log
                .append(&batch.iter().collect::<Vec<_>>())
                .await
                .expect("batch");
            assert_eq!(reactions_of(&done[0]).0, None, "{}", t.backend);
            assert!(
                matches!(done[1], Appended::Gone),
                "{}: {:?}",
                t.backend,
                done[1]
            );
            assert!(done[2].event().is_some(), "{}", t.backend);
            let (log_now, _) = t.db.tail(0, 100).await.expect("tail");
            let kinds: Vec<(&str, Option<i64>)> = log_now
                .iter()
                .map(|e| (e.event_name(), e.about()))
                .collect();
            assert_eq!(
                kinds,
                [("message_deleted", Some(m)), ("message_deleted", Some(n))],
                "{}: what the log keeps",
                t.backend
            );
            let pool_rows =
                t.db.execute_for_tests("DELETE FROM reactions")
                    .await
                    .expect("count");
            assert_eq!(pool_rows, 0, "{}: reactions left behind", t.backend);
            log.close().await;
        }
    }

    /// An edit by anyone but the author, or of a message elsewhere, stores nothing; a
    /// reply to a message of another room neither.
    #[tokio::test]
    async fn edits_by_others_and_replies_elsewhere_are_refused() {
        for t in testing::all().await {
            let who = users(&t.db, 2).await;
            let mut log = t.db.message_log().await.expect("log");
            let m = say(&mut log, &who[0], "mine").await;
            let edit = NewPost::Edit {
                room: room(),
                by: who[1].clone(),
                message_id: m,
                body: body("theirs"),
                mentions: Vec::new(),
            };
            assert!(
                matches!(one(&mut log, edit).await, Appended::Gone),
                "{}",
                t.backend
            );
            let reply = |room: &str, to| NewPost::Message {
                room: Some(RoomName::parse(room).expect("room")),
                user: Some(who[1].clone()),
                body: body("re"),
                reply_to: Some(to),
                mentions: Vec::new(),
            };
            let elsewhere = one(&mut log, reply("s", m)).await;
            assert!(matches!(elsewhere, Appended::Gone), "{}", t.backend);
            let Appended::Stored(stored) = one(&mut log, reply("r", m)).await else {
                panic!("{}: a reply in the room was refused", t.backend);
            };
            let EventKind::Message(state) = &stored.kind else {
                panic!("not a message");
            };
            let to = state.reply_to.as_ref().expect("reply_to");
            assert_eq!(
                (to.id, to.excerpt.as_deref()),
                (m, Some("mine")),
                "{}",
                t.backend
            );
            log.close().await;
        }
    }

    /// Two writers (two nodes) reacting to one message at once: every add counted once, no
    /// deadlock, and the stored list agrees with the holders.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_writers_reacting_at_once_count_exactly() {
        let Some(t) = testing::postgres().await else {
            return;
        };
        let who = users(&t.db, 40).await;
        let mut log = t.db.message_log().await.expect("log");
        let m = say(&mut log, &who[0], "popular").await;
        let m2 = say(&mut log, &who[0], "also").await;
        log.close().await;
        let writers = (0..2).map(|w| {
            let db = t.db.clone();
            let who = who.clone();
            tokio::spawn(async move {
                let mut log = db.message_log().await.expect("log");
                for chunk in who.chunks(5) {
                    // Both messages in each batch, in opposite orders on the two writers.
                    let mut batch: Vec<NewPost> = Vec::new();
                    for u in chunk {
                        let (a, b) = if w == 0 { (m, m2) } else { (m2, m) };
                        batch.push(reaction(u, a, "👍", ReactionAction::Add));
                        batch.push(reaction(u, b, "🎉", ReactionAction::Add));
                    }
                    log.append(&batch.iter().collect::<Vec<_>>())
                        .await
                        .expect("batch");
                }
                log.close().await;
            })
        });
        for w in futures_util::future::join_all(writers).await {
            w.expect("writer");
        }
        for id in [m, m2] {
            let stored =
                t.db.message(&room(), id)
                    .await
                    .expect("read")
                    .expect("there");
            let EventKind::Message(state) = &stored.kind else {
                panic!("not a message");
            };
            let counts: Vec<i64> = state
                .reactions
                .list()
                .expect("list")
                .iter()
                .map(|r| r.count)
                .collect();
            assert_eq!(counts, [40, 40], "message {id}: {:?}", state.reactions);
        }
    }
}
