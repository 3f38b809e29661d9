//! Webhooks as stored: their filter, secret and cursor over the message log, and on
//! PostgreSQL the lease that makes exactly one node deliver each.

use uuid::Uuid;

use super::{Db, messages::kind, now_rfc3339};
use crate::domain::{HookEvent, HookFilter, RoomName, WebhookUrl};

/// A webhook and where its delivery stands.
#[derive(Debug, Clone)]
pub struct WebhookRecord {
    /// Its id.
    pub id: Uuid,
    /// Where events are posted.
    pub url: String,
    /// Which events, of which rooms.
    pub filter: HookFilter,
    /// The signing secret.
    pub secret: String,
    /// When it was made (RFC 3339 UTC).
    pub created_at: String,
    /// Every event up to this id is delivered (or not one it takes).
    pub delivered_id: i64,
    /// Failed tries since the last success.
    pub failures: i64,
    /// What the last failure was; `None` after a success.
    pub last_error: Option<String>,
}

/// Why a webhook could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CreateWebhookError {
    /// As many webhooks exist as may.
    #[error("too many webhooks")]
    TooMany,
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    url: String,
    events: String,
    rooms: Option<String>,
    secret: String,
    created_at: String,
    delivered_id: i64,
    failures: i64,
    last_error: Option<String>,
}

impl TryFrom<Row> for WebhookRecord {
    type Error = sqlx::Error;

    fn try_from(r: Row) -> Result<Self, sqlx::Error> {
        let bad = |what: &str, e: serde_json::Error| {
            sqlx::Error::Decode(format!("webhook {}: stored {what}: {e}", r.id).into())
        };
        let events: Vec<HookEvent> =
            serde_json::from_str(&r.events).map_err(|e| bad("events", e))?;
        let rooms: Option<Vec<RoomName>> = match &r.rooms {
            Some(json) => Some(serde_json::from_str(json).map_err(|e| bad("rooms", e))?),
            None => None,
        };
        Ok(Self {
            id: r.id,
            url: r.url,
            filter: HookFilter::stored(events, rooms),
            secret: r.secret,
            created_at: r.created_at,
            delivered_id: r.delivered_id,
            failures: r.failures,
            last_error: r.last_error,
        })
    }
}

const COLUMNS: &str = "SELECT id, url, events, rooms, secret, created_at, delivered_id, failures, last_error \
     FROM webhooks";

impl Db {
    /// Stores a webhook starting at the newest event, unless `max` exist already.
    pub async fn create_webhook(
        &self,
        url: &WebhookUrl,
        filter: &HookFilter,
        secret: &str,
        max: usize,
    ) -> Result<WebhookRecord, CreateWebhookError> {
        let head = self.log_head().await?;
        let events = serde_json::to_string(filter.events()).map_err(anyhow_db)?;
        let rooms = filter
            .rooms()
            .map(serde_json::to_string)
            .transpose()
            .map_err(anyhow_db)?;
        let record = WebhookRecord {
            id: Uuid::new_v4(),
            url: url.as_str().to_owned(),
            filter: filter.clone(),
            secret: secret.to_owned(),
            created_at: now_rfc3339(),
            delivered_id: head,
            failures: 0,
            last_error: None,
        };
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "INSERT INTO webhooks (id, url, events, rooms, secret, created_at, delivered_id) \
                 SELECT $1, $2, $3, $4, $5, $6, $7 WHERE (SELECT COUNT(*) FROM webhooks) < $8",
            )
            .bind(record.id)
            .bind(&record.url)
            .bind(&events)
            .bind(&rooms)
            .bind(&record.secret)
            .bind(&record.created_at)
            .bind(head)
            .bind(max)
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        if done == 0 {
            return Err(CreateWebhookError::TooMany);
        }
        Ok(record)
    }

    /// Every webhook, oldest first.
    pub async fn webhooks(&self) -> sqlx::Result<Vec<WebhookRecord>> {
        let rows: Vec<Row> = on_backend!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "{COLUMNS} ORDER BY created_at, id"
            )))
            .fetch_all(pool)
            .await
        })?;
        rows.into_iter().map(WebhookRecord::try_from).collect()
    }

    /// Webhook `id`, if there is one.
    pub async fn webhook(&self, id: Uuid) -> sqlx::Result<Option<WebhookRecord>> {
        let row: Option<Row> = on_backend!(self, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("{COLUMNS} WHERE id = $1")))
                .bind(id)
                .fetch_optional(pool)
                .await
        })?;
        row.map(WebhookRecord::try_from).transpose()
    }

    /// Deletes webhook `id`; false when there is none.
    pub async fn delete_webhook(&self, id: Uuid) -> sqlx::Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query("DELETE FROM webhooks WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await
                .map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// How many stored events after its cursor `hook` takes.
    pub async fn webhook_pending(&self, hook: &WebhookRecord) -> sqlx::Result<i64> {
        let (n,): (i64,) = on_backend!(self, |pool, DB| {
            let mut q =
                sqlx::QueryBuilder::<DB>::new("SELECT COUNT(*) FROM messages m WHERE m.id > ");
            q.push_bind(hook.delivered_id).push(" AND (");
            let mut first = true;
            for event in hook.filter.events() {
                if !first {
                    q.push(" OR ");
                }
                first = false;
                let (kinds, in_room) = match event {
                    HookEvent::Message => (
                        format!("m.kind = {} AND m.room IS NOT NULL", kind::MESSAGE),
                        true,
                    ),
                    HookEvent::Broadcast => (
                        format!("m.kind = {} AND m.room IS NULL", kind::MESSAGE),
                        false,
                    ),
                    HookEvent::MessageDeleted => (format!("m.kind = {}", kind::DELETED), true),
                    HookEvent::MessageEdited => (format!("m.kind = {}", kind::EDITED), true),
                    HookEvent::Reaction => (
                        format!(
                            "m.kind IN ({}, {})",
                            kind::REACTION_ADDED,
                            kind::REACTION_REMOVED
                        ),
                        true,
                    ),
                };
                q.push("(").push(kinds);
                if let (true, Some(rooms)) = (in_room, hook.filter.rooms()) {
                    q.push(" AND m.room IN (");
                    let mut list = q.separated(", ");
                    for room in rooms {
                        list.push_bind(room.as_str().to_owned());
                    }
                    q.push(")");
                }
                q.push(")");
            }
            q.push(")");
            q.build_query_as().fetch_one(pool).await
        })?;
        Ok(n)
    }

    /// Moves webhook `id`'s cursor up to `to` (never back) after deliveries that
    /// succeeded, as `holder` (on PostgreSQL, the node whose lease it must be; `None` on
    /// SQLite): its failures are forgotten. False when the webhook is gone or no longer
    /// this holder's: its delivery must stop.
    pub async fn advance_webhook(
        &self,
        id: Uuid,
        to: i64,
        holder: Option<Uuid>,
    ) -> sqlx::Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE webhooks SET delivered_id = CASE WHEN delivered_id < $2 THEN $2 \
                 ELSE delivered_id END, failures = 0, last_error = NULL \
                 WHERE id = $1 AND ($3 IS NULL OR lease_holder = $3)",
            )
            .bind(id)
            .bind(to)
            .bind(holder)
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// Records a failed try of webhook `id`. False as for [`Db::advance_webhook`].
    pub async fn webhook_failed(
        &self,
        id: Uuid,
        error: &str,
        holder: Option<Uuid>,
    ) -> sqlx::Result<bool> {
        let done = on_backend!(self, |pool| {
            sqlx::query(
                "UPDATE webhooks SET failures = failures + 1, last_error = $2 \
                 WHERE id = $1 AND ($3 IS NULL OR lease_holder = $3)",
            )
            .bind(id)
            .bind(error)
            .bind(holder)
            .execute(pool)
            .await
            .map(|d| d.rows_affected())
        })?;
        Ok(done > 0)
    }

    /// The webhooks `holder` is to deliver now. On PostgreSQL: those whose lease it holds
    /// or that are free (never taken, let go, or unrenewed for `lease_secs`), all leased to
    /// it for `lease_secs` more by the database's clock. On SQLite (one server): all.
    pub async fn lease_webhooks(&self, holder: Uuid, lease_secs: u64) -> sqlx::Result<Vec<Uuid>> {
        let rows: Vec<(Uuid,)> = match self.pg_pool() {
            Some(pool) => {
                sqlx::query_as(
                    "UPDATE webhooks SET lease_holder = $1, \
                     lease_until = now() + make_interval(secs => $2) \
                     WHERE lease_holder = $1 OR lease_holder IS NULL OR lease_until < now() \
                     RETURNING id",
                )
                .bind(holder)
                .bind(lease_secs as f64)
                .fetch_all(pool)
                .await?
            }
            None => on_backend!(self, |pool| {
                sqlx::query_as("SELECT id FROM webhooks")
                    .fetch_all(pool)
                    .await?
            }),
        };
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }

    /// Lets go of `holder`'s leases (a clean stop), so another node takes over at once.
    pub async fn release_webhooks(&self, holder: Uuid) -> sqlx::Result<()> {
        on_backend!(self, |pool| {
            sqlx::query("UPDATE webhooks SET lease_holder = NULL WHERE lease_holder = $1")
                .bind(holder)
                .execute(pool)
                .await
                .map(drop)
        })
    }
}

/// A value we made that would not encode: a bug, reported as a database error.
fn anyhow_db(e: serde_json::Error) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testing;

    async fn hook(db: &Db) -> WebhookRecord {
        let url = WebhookUrl::parse("http://127.0.0.1:9/").expect("url");
        let filter = HookFilter::parse(&["message".to_owned()], None).expect("filter");
        db.create_webhook(&url, &filter, "whsec_x", 10)
            .await
            .expect("webhook")
    }

    /// One holder at a time: a second node gets nothing while the first renews, and takes
    /// the webhook once the lease has run out unrenewed.
    #[tokio::test]
    async fn a_lease_has_one_holder_until_it_runs_out() {
        let Some(t) = testing::postgres().await else {
            return;
        };
        let h = hook(&t.db).await;
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(t.db.lease_webhooks(a, 1).await.expect("lease"), [h.id]);
        assert!(
            t.db.lease_webhooks(b, 1).await.expect("lease").is_empty(),
            "held by a"
        );
        assert!(
            !t.db
                .advance_webhook(h.id, 5, Some(b))
                .await
                .expect("advance"),
            "b may not move a's cursor"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert_eq!(
            t.db.lease_webhooks(b, 1).await.expect("lease"),
            [h.id],
            "taken over"
        );
        assert!(
            !t.db
                .advance_webhook(h.id, 5, Some(a))
                .await
                .expect("advance"),
            "a lost it"
        );
        t.db.release_webhooks(b).await.expect("release");
        assert_eq!(
            t.db.lease_webhooks(a, 1).await.expect("lease"),
            [h.id],
            "let go"
        );
    }

    /// The cursor only moves forward; a success clears failures.
    #[tokio::test]
    async fn the_cursor_moves_forward_only_and_a_success_clears_failures() {
        for t in testing::all().await {
            let h = hook(&t.db).await;
            assert!(
                t.db.webhook_failed(h.id, "answered 500", None)
                    .await
                    .expect("failed")
            );
            let failing = t.db.webhook(h.id).await.expect("read").expect("there");
            assert_eq!(failing.failures, 1, "{}", t.backend);
            assert!(t.db.advance_webhook(h.id, 7, None).await.expect("advance"));
            assert!(t.db.advance_webhook(h.id, 3, None).await.expect("advance"));
            let now = t.db.webhook(h.id).await.expect("read").expect("there");
            assert_eq!(
                (now.delivered_id, now.failures, now.last_error),
                (7, 0, None),
                "{}",
                t.backend
            );
        }
    }
}
