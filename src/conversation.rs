//! The conversation around messages: posts with their replies and mentions, edits and
//! reactions. Each first reads what it needs (the author of the message it changes, the
//! users a body mentions), then hands one change to the [`Writer`], the only path by which
//! anything reaches the message log.

use std::sync::Arc;

use crate::{
    db::{Appended, Db, NewPost},
    domain::{
        Emoji, MessageBody, Reaction, ReactionAction, RoomView, StoredMessage, User, UserRef,
        Visibility, mentioned_names,
    },
    writer::{WriteError, Writer},
};

/// Most reactions an account deletion reads at once to take back.
const TAKE_BACK_BATCH: u32 = 500;
/// Rounds of [`TAKE_BACK_BATCH`] reads before the account's row goes regardless: a bound on
/// how long a deletion takes (what is left goes with the row by `ON DELETE CASCADE`).
const PASSES: usize = 100;

/// Why a change to the conversation was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConversationError {
    /// Only its author may edit a message.
    #[error("only its author may edit a message")]
    NotAuthor,
    /// The writer refused or failed it (a message that is not there is
    /// [`WriteError::Gone`]).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A read failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The conversation of the rooms stored in `db`, changed through `writer`.
pub struct Conversation<'a> {
    db: &'a Db,
    writer: &'a Writer,
}

impl<'a> Conversation<'a> {
    /// Reads from `db`, writes through `writer`.
    pub fn new(db: &'a Db, writer: &'a Writer) -> Self {
        Self { db, writer }
    }

    /// Posts `body` by `author` to `room` (answering message `reply_to` of that room, if
    /// given), with the users it mentions; the message as stored.
    pub async fn post(
        &self,
        room: &RoomView,
        author: &User,
        body: MessageBody,
        reply_to: Option<i64>,
    ) -> Result<StoredMessage, ConversationError> {
        let mentions = self.mentions(room, &body).await?;
        let post = NewPost::Message {
            room: Some(room.name.clone()),
            user: Some(UserRef::from(author)),
            body,
            reply_to,
            mentions,
        };
        Ok(self.writer.store(post).await?)
    }

    /// Replaces the body of message `message_id` of `room`, which `editor` wrote, and
    /// works out its mentions again; the message as it is now.
    pub async fn edit(
        &self,
        room: &RoomView,
        editor: &User,
        message_id: i64,
        body: MessageBody,
    ) -> Result<StoredMessage, ConversationError> {
        match self.db.message_author(&room.name, message_id).await? {
            None => return Err(WriteError::Gone.into()),
            Some(author) if author != Some(editor.id) => return Err(ConversationError::NotAuthor),
            Some(_) => {}
        }
        let mentions = self.mentions(room, &body).await?;
        let edit = NewPost::Edit {
            room: room.name.clone(),
            by: UserRef::from(editor),
            message_id,
            body,
            mentions,
        };
        self.writer.store(edit).await?;
        // Read back rather than rebuilt: the answer carries the message's whole state
        // (reply, reactions), as a history page would.
        self.db
            .message(&room.name, message_id)
            .await?
            .ok_or(ConversationError::Write(WriteError::Gone))
    }

    /// `user` adds or takes back `emoji` on message `message_id` of `room`; the message's
    /// reactions after that.
    pub async fn react(
        &self,
        room: &RoomView,
        user: &User,
        message_id: i64,
        emoji: Emoji,
        action: ReactionAction,
    ) -> Result<Arc<Vec<Reaction>>, ConversationError> {
        let reaction = NewPost::Reaction {
            room: room.name.clone(),
            by: UserRef::from(user),
            message_id,
            emoji,
            action,
        };
        match self.writer.submit(reaction).await? {
            Appended::Reacted { reactions, .. } => Ok(reactions),
            other => {
                tracing::error!(answer = ?other, "the writer answered a reaction as no reaction");
                Err(WriteError::Failed.into())
            }
        }
    }

    /// Deletes `user`'s account. Its reactions are taken back first, each through the
    /// writer as if it had taken them back itself: every message's list shrinks and a
    /// `reaction` event (remove) is stored and sent, so history, replay and live streams
    /// agree on the counts. Then the account's row goes (see [`Db::delete_user`]); its
    /// messages stay, their author's name `null`. False when there was no such account.
    pub async fn delete_account(&self, user: &User) -> Result<bool, ConversationError> {
        let by = UserRef::from(user);
        // A reaction added while these are taken back is taken back on the next pass; one
        // added after the last pass goes with the row (a request racing its own account's
        // deletion), leaving at worst one stale count.
        for _ in 0..PASSES {
            let held = self.db.reactions_held(user.id, TAKE_BACK_BATCH).await?;
            if held.is_empty() {
                break;
            }
            for (room, message_id, emoji) in held {
                let reaction = NewPost::Reaction {
                    room,
                    by: by.clone(),
                    message_id,
                    emoji,
                    action: ReactionAction::Remove,
                };
                match self.writer.submit(reaction).await {
                    Ok(_) | Err(WriteError::Gone) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(self.db.delete_user(user.id).await?)
    }

    /// The users `body` mentions who may read `room`.
    async fn mentions(&self, room: &RoomView, body: &MessageBody) -> sqlx::Result<Vec<UserRef>> {
        let names = mentioned_names(body.as_str());
        let private = room
            .record
            .as_ref()
            .is_some_and(|r| r.visibility == Visibility::Private);
        self.db.mentionable(&room.name, private, &names).await
    }
}
