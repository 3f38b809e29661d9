//! Created rooms and their members. A member's room list entry (`read_markers`) is written
//! and removed with its membership.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Db, now_rfc3339};
use crate::domain::{MemberRole, RoomName, RoomRecord, RoomView, User, UserRef, Visibility};

/// Why a room could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateRoomError {
    /// Created before, or it already has history.
    #[error("that room name is taken")]
    Taken,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A member as listed.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The user's id.
    pub id: Uuid,
    /// The user's name.
    pub username: String,
    /// Its role in the room.
    pub role: MemberRole,
}

/// A room's row as one viewer reads it: visibility, owner id and name (none once the owner's
/// account is deleted), the viewer's role.
pub(super) type RoomViewRow = (String, Option<Uuid>, Option<String>, Option<String>);

/// Most rooms [`Db::hidden_rooms`] reads one by one through the cache; more take one read
/// of them all.
const VIEWS_READ_ONE_BY_ONE: usize = 4;

/// Forgets cached views of `room` (after a write to it commits).
fn forget_room(db: &Db, room: &RoomName) {
    if let Some(cache) = &db.cache {
        cache.rooms.forget_where(|(name, _), _| name == room);
    }
}

fn stored<T>(what: &str, parsed: Option<T>) -> sqlx::Result<T> {
    parsed.ok_or_else(|| sqlx::Error::Decode(format!("stored {what} does not parse").into()))
}

impl Db {
    /// The room as `viewer` sees it: its record (if created) and the viewer's role. `None`
    /// is the admin bearer token, which sees everything as an admin.
    pub async fn room_view(
        &self,
        room: &RoomName,
        viewer: Option<&User>,
    ) -> sqlx::Result<RoomView> {
        let row = self.view_row(room, viewer.map(|v| v.id)).await?;
        let admin = viewer.is_none_or(|v| v.role == crate::domain::Role::Admin);
        let Some((visibility, owner_id, owner_name, role)) = row else {
            return Ok(RoomView {
                name: room.clone(),
                record: None,
                role: None,
                admin,
            });
        };
        let role = match role {
            Some(r) => Some(stored("member role", MemberRole::parse(&r))?),
            None => None,
        };
        Ok(RoomView {
            name: room.clone(),
            record: Some(RoomRecord {
                name: room.clone(),
                visibility: stored("visibility", Visibility::parse(&visibility))?,
                owner: owner_id.map(|id| UserRef {
                    id,
                    username: owner_name.map(Into::into),
                }),
            }),
            // An admin counts as the owner of every created room.
            role: if admin { Some(MemberRole::Owner) } else { role },
            admin,
        })
    }

    /// The room's row as `viewer` reads it, through the read cache on SQLite.
    async fn view_row(
        &self,
        room: &RoomName,
        viewer: Option<Uuid>,
    ) -> sqlx::Result<Option<RoomViewRow>> {
        let key = (room.clone(), viewer);
        if let Some(row) = self.cache.as_ref().and_then(|c| c.rooms.get(&key)) {
            return Ok(row);
        }
        let seen = self.cache.as_ref().map(|c| c.rooms.generation());
        let row: Option<RoomViewRow> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT r.visibility, r.owner_id, u.username, m.role FROM rooms r \
                 LEFT JOIN users u ON u.id = r.owner_id \
                 LEFT JOIN room_members m ON m.room = r.name AND m.user_id = $1 \
                 WHERE r.name = $2",
            )
            .bind(viewer)
            .bind(room.as_str())
            .fetch_optional(pool)
            .await
        })?;
        if let (Some(cache), Some(seen)) = (&self.cache, seen) {
            cache.rooms.put(key, row.clone(), seen);
        }
        Ok(row)
    }

    /// Of `rooms`, the private ones `viewer` is not a member of: on SQLite, for a few rooms,
    /// from the cached views (one read per room not cached); else one indexed read of just
    /// those names.
    ///
    /// Why the cache: every subscribe asks this twice (before its join and after), and a
    /// restart's reconnect storm is thousands of subscribes to the same few rooms.
    pub async fn hidden_rooms(
        &self,
        viewer: Uuid,
        rooms: &[RoomName],
    ) -> sqlx::Result<Vec<RoomName>> {
        if rooms.is_empty() {
            // `IN ()` is SQLite only.
            return Ok(Vec::new());
        }
        if self.cache.is_some() && rooms.len() <= VIEWS_READ_ONE_BY_ONE {
            let mut hidden = Vec::new();
            for room in rooms {
                let row = self.view_row(room, Some(viewer)).await?;
                if row.is_some_and(|(visibility, _, _, role)| {
                    visibility == Visibility::Private.as_str() && role.is_none()
                }) {
                    hidden.push(room.clone());
                }
            }
            return Ok(hidden);
        }
        let names: Vec<(String,)> = on_backend!(self, |pool, DB| {
            let mut q = sqlx::QueryBuilder::<DB>::new(
                "SELECT r.name FROM rooms r WHERE r.visibility = 'private' AND NOT EXISTS \
                 (SELECT 1 FROM room_members m WHERE m.room = r.name AND m.user_id = ",
            );
            q.push_bind(viewer).push(") AND r.name IN (");
            let mut list = q.separated(", ");
            for r in rooms {
                list.push_bind(r.as_str().to_owned());
            }
            q.push(")");
            q.build_query_as().fetch_all(pool).await
        })?;
        names
            .into_iter()
            .map(|(n,)| stored("room", RoomName::parse(&n).ok()))
            .collect()
    }

    /// Every private room, and whether `viewer` is a member of it.
    pub async fn private_rooms(&self, viewer: Uuid) -> sqlx::Result<HashMap<RoomName, bool>> {
        let rows: Vec<(String, bool)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT r.name, EXISTS (SELECT 1 FROM room_members m \
                 WHERE m.room = r.name AND m.user_id = $1) \
                 FROM rooms r WHERE r.visibility = 'private'",
            )
            .bind(viewer)
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(name, member)| Ok((stored("room", RoomName::parse(&name).ok())?, member)))
            .collect()
    }

    /// How many rooms `owner` has created.
    pub async fn rooms_owned(&self, owner: Uuid) -> sqlx::Result<i64> {
        let (n,): (i64,) = on_backend!(self, |pool| {
            sqlx::query_as("SELECT COUNT(*) FROM rooms WHERE owner_id = $1")
                .bind(owner)
                .fetch_one(pool)
                .await
        })?;
        Ok(n)
    }

    /// Creates a room owned by `owner`; `Taken` when it was created before or has history.
    pub async fn create_room(
        &self,
        name: &RoomName,
        visibility: Visibility,
        owner: &User,
    ) -> Result<RoomRecord, CreateRoomError> {
        let now = now_rfc3339();
        on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            // One statement that writes first: a read followed by a write in a deferred
            // SQLite transaction cannot wait for the message writer's lock (SQLITE_BUSY at
            // once).
            let inserted = sqlx::query(
                "INSERT INTO rooms (name, visibility, owner_id, created_at) \
                 SELECT $1, $2, $3, $4 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE room = $5) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.as_str())
            .bind(visibility.as_str())
            .bind(owner.id)
            .bind(&now)
            .bind(name.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                return Err(CreateRoomError::Taken);
            }
            sqlx::query(
                "INSERT INTO room_members (room, user_id, role, added_at) \
                 VALUES ($1, $2, 'owner', $3)",
            )
            .bind(name.as_str())
            .bind(owner.id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(super::readstate::ENTER)
                .bind(owner.id)
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        });
        forget_room(self, name);
        Ok(RoomRecord {
            name: name.clone(),
            visibility,
            owner: Some(UserRef::from(owner)),
        })
    }

    /// A room's members, ordered by username.
    pub async fn members(&self, room: &RoomName) -> sqlx::Result<Vec<Member>> {
        let rows: Vec<(Uuid, String, String)> = on_backend!(self, |pool| {
            sqlx::query_as(
                "SELECT u.id, u.username, m.role FROM room_members m \
                 JOIN users u ON u.id = m.user_id \
                 WHERE m.room = $1 ORDER BY lower(u.username)",
            )
            .bind(room.as_str())
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter()
            .map(|(id, username, role)| {
                Ok(Member {
                    id,
                    username,
                    role: stored("member role", MemberRole::parse(&role))?,
                })
            })
            .collect()
    }

    /// `user`'s role in `room`, if a member.
    pub async fn member_role(
        &self,
        room: &RoomName,
        user: Uuid,
    ) -> sqlx::Result<Option<MemberRole>> {
        let role: Option<(String,)> = on_backend!(self, |pool| {
            sqlx::query_as("SELECT role FROM room_members WHERE room = $1 AND user_id = $2")
                .bind(room.as_str())
                .bind(user)
                .fetch_optional(pool)
                .await
        })?;
        match role {
            Some((r,)) => Ok(Some(stored("member role", MemberRole::parse(&r))?)),
            None => Ok(None),
        }
    }

    /// Gives `user` the role `role` in `room`, provided its role is still `was` (`None`:
    /// not a member). False when it changed meanwhile: the caller judges again.
    pub async fn set_member(
        &self,
        room: &RoomName,
        user: Uuid,
        was: Option<MemberRole>,
        role: MemberRole,
    ) -> sqlx::Result<bool> {
        let changed = match was {
            // The membership and the room's entry in the user's list, together.
            None => on_backend!(self, |pool| {
                let mut tx = pool.begin().await?;
                let added = sqlx::query(
                    "INSERT INTO room_members (room, user_id, role, added_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (room, user_id) DO NOTHING",
                )
                .bind(room.as_str())
                .bind(user)
                .bind(role.as_str())
                .bind(now_rfc3339())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query(super::readstate::ENTER)
                    .bind(user)
                    .bind(room.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                added
            }),
            Some(was) => on_backend!(self, |pool| {
                sqlx::query(
                    "UPDATE room_members SET role = $1 \
                     WHERE room = $2 AND user_id = $3 AND role = $4",
                )
                .bind(role.as_str())
                .bind(room.as_str())
                .bind(user)
                .bind(was.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })?,
        };
        forget_room(self, room);
        Ok(changed == 1)
    }

    /// Takes `user` out of `room`, with the room's entry (and read marker) in its list;
    /// false when it was not a member.
    pub async fn remove_member(&self, room: &RoomName, user: Uuid) -> sqlx::Result<bool> {
        let n = on_backend!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM room_members WHERE room = $1 AND user_id = $2")
                .bind(room.as_str())
                .bind(user)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM read_markers WHERE room = $1 AND user_id = $2")
                .bind(room.as_str())
                .bind(user)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            n
        });
        forget_room(self, room);
        Ok(n > 0)
    }

    /// The author of message `id` of `room`: `None` when there is no such message (or it
    /// was deleted); `Some(None)` when the API token sent it.
    pub async fn message_author(
        &self,
        room: &RoomName,
        id: i64,
    ) -> sqlx::Result<Option<Option<Uuid>>> {
        let row: Option<(Option<Uuid>,)> = on_backend!(self, |pool| {
            sqlx::query_as("SELECT user_id FROM messages WHERE id = $1 AND room = $2 AND kind = 0")
                .bind(id)
                .bind(room.as_str())
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|(u,)| u))
    }
}
