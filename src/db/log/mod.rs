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
    ReactionAction, ReplyTo, RoomName, StoredMessage, UserRef,
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
    async fn reactions(&mut self, room: &RoomName, id: i64)
    -> anyhow::Result<Option<Option<String>>>;
    /// Records that `user` holds `emoji` on message `id`; false when it did already.
    async fn add_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid) -> anyhow::Result<bool>;
    /// Records that `user` no longer holds `emoji` on message `id`; false when it did not.
    async fn remove_holder(&mut self, id: i64, emoji: &Emoji, user: Uuid)
    -> anyhow::Result<bool>;
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
}

/// Columns of an event's row besides id, room, user, body and time.
struct Columns<'a> {
    kind: i32,
    about: Option<i64>,
    reply_to: Option<i64>,
    mentions: Option<String>,
    emoji: Option<&'a str>,
    reaction_count: Option<i64>,
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
    };
    match &e.kind {
        EventKind::Message(state) => {
            c.reply_to = state.reply_to.as_ref().map(|r| r.id);
            c.mentions = users_json(&state.mentions)?;
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
            NewPost::Deletion {
                room,
                by,
                message_id,
            } => {
                if !tx.delete_message(room, *message_id).await? {
                    Appended::Gone
                } else {
                    tallies.remove(message_id);
                    for earlier in &mut out {
                        earlier.forget_about(*message_id);
                    }
                    Appended::Stored(change(room, by.clone(), "", sent_at, {
                        EventKind::Deleted {
                            message_id: *message_id,
                        }
                    }))
                }
            }
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
    let mut events: Vec<&mut StoredMessage> = out.iter_mut().filter_map(Appended::event_mut).collect();
    tx.insert(&mut events).await?;
    Ok(out)
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
async fn message(
    tx: &mut impl LogTx,
    post: &NewPost,
    sent_at: &str,
) -> anyhow::Result<Appended> {
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
