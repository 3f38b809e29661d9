//! One webhook's delivery: read the log after its cursor, post each event it takes, move
//! the cursor past it on a `2xx`, and on anything else retry the same event with a growing
//! wait while the later ones wait behind it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{StatusCode, header};
use serde::Serialize;
use uuid::Uuid;

use super::{Shared, sign};
use crate::{
    db::WebhookRecord,
    domain::{EventData, StoredMessage},
};

/// What one delivery posts.
#[derive(Serialize)]
struct Envelope<'a> {
    id: i64,
    #[serde(rename = "type")]
    kind: &'static str,
    data: EventData<'a>,
}

/// Why a webhook's task stops.
enum Stop {
    /// The webhook was deleted, or another node holds it now.
    NotOurs,
}

/// Runs webhook `id`'s delivery until it is deleted or no longer this node's.
pub(super) async fn run(shared: Arc<Shared>, id: Uuid) {
    let hook = loop {
        match shared.db.webhook(id).await {
            Ok(Some(hook)) => break hook,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "reading a webhook failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let labels = [("webhook", id.to_string())];
    let metrics = Metrics {
        deliveries: metrics::counter!("roomcast_webhook_deliveries_total", &labels),
        failures: metrics::counter!("roomcast_webhook_failures_total", &labels),
        oldest: metrics::gauge!("roomcast_webhook_oldest_pending_seconds", &labels),
    };
    let mut task = Task {
        saved_to: hook.delivered_id,
        shared,
        hook,
        metrics,
        saved_at: Instant::now(),
        unsaved: None,
    };
    let Stop::NotOurs = task.deliver_forever().await;
    task.metrics.oldest.set(0.0);
}

struct Metrics {
    deliveries: metrics::Counter,
    failures: metrics::Counter,
    oldest: metrics::Gauge,
}

struct Task {
    shared: Arc<Shared>,
    hook: WebhookRecord,
    metrics: Metrics,
    /// The cursor as stored.
    saved_to: i64,
    /// When the cursor was last stored.
    saved_at: Instant,
    /// Where the cursor is, when that is past what is stored. The cursor is stored at most
    /// every `webhooks.save_every_ms` while deliveries go well (at once after a failure,
    /// and before waiting idle): a restart resends at most that much, twice, never less.
    unsaved: Option<i64>,
}

impl Task {
    async fn deliver_forever(&mut self) -> Stop {
        let (batch, poll) = (
            self.shared.settings.batch,
            Duration::from_millis(self.shared.settings.poll_ms),
        );
        let filter = self.hook.filter.clone();
        let mut cursor = self.hook.delivered_id;
        loop {
            // Registered before the read, so a commit right after it still wakes this wait.
            let wake = self.shared.wake.clone();
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let (events, next) = match self.shared.db.tail(cursor, batch).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::warn!(webhook = %self.hook.id, error = %e, "reading the log failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for event in events.iter().filter(|e| filter.matches(e)) {
                if let Err(stop) = self.deliver(event).await {
                    return stop;
                }
            }
            cursor = next;
            if cursor > self.saved_to {
                self.unsaved = Some(cursor);
            }
            if !self.save(false).await {
                return Stop::NotOurs;
            }
            if events.len() < batch as usize {
                self.metrics.oldest.set(0.0);
                let save_in = self.save_every().saturating_sub(self.saved_at.elapsed());
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(poll) => {}
                    () = tokio::time::sleep(save_in), if self.unsaved.is_some() => {
                        if !self.save(true).await {
                            return Stop::NotOurs;
                        }
                    }
                }
            }
        }
    }

    fn save_every(&self) -> Duration {
        Duration::from_millis(self.shared.settings.save_every_ms)
    }

    /// Posts `event` until it is answered `2xx`, then moves the cursor past it.
    async fn deliver(&mut self, event: &StoredMessage) -> Result<(), Stop> {
        let body = serde_json::to_vec(&Envelope {
            id: event.id,
            kind: event.event_name(),
            data: event.data(),
        })
        .unwrap_or_default();
        let mut wait = Duration::from_millis(self.shared.settings.backoff_first_ms);
        let most = Duration::from_secs(self.shared.settings.backoff_max_secs);
        let mut failed = false;
        loop {
            self.metrics.oldest.set(age_secs(&event.sent_at));
            match self.post(event.id, &body).await {
                Ok(()) => {
                    self.metrics.deliveries.increment(1);
                    self.unsaved = Some(event.id);
                    // After failures, at once: `failures` and `last_error` are cleared.
                    return match self.save(failed).await {
                        true => Ok(()),
                        false => Err(Stop::NotOurs),
                    };
                }
                Err(error) => {
                    failed = true;
                    self.metrics.failures.increment(1);
                    tracing::info!(webhook = %self.hook.id, event = event.id, %error, retry_in = ?wait, "webhook delivery failed");
                    // What was delivered before this is stored first.
                    if !self.save(true).await {
                        return Err(Stop::NotOurs);
                    }
                    match self
                        .shared
                        .db
                        .webhook_failed(self.hook.id, &error, self.shared.holder)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => return Err(Stop::NotOurs),
                        Err(e) => {
                            tracing::warn!(webhook = %self.hook.id, error = %e, "recording a failed delivery failed")
                        }
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(most);
                }
            }
        }
    }

    /// One `POST` of `body`; `Err` says why it failed.
    async fn post(&self, id: i64, body: &[u8]) -> Result<(), String> {
        let t = chrono::Utc::now().timestamp();
        let res = self
            .shared
            .client
            .post(&self.hook.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("Roomcast-Event-Id", id.to_string())
            .header(
                "Roomcast-Signature",
                sign::header(&self.hook.secret, t, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| describe(&e, self.shared.settings.timeout_secs))?;
        let status = res.status();
        drain(res, self.shared.settings.response_bytes).await;
        if status.is_success() {
            Ok(())
        } else if status.is_redirection() {
            Err(format!("answered {status}; redirects are not followed"))
        } else {
            Err(format!("answered {}", status_text(status)))
        }
    }

    /// Stores the cursor when it moved and `now` is set or the last store is
    /// `webhooks.save_every_ms` old; false when the webhook is gone or another node's now.
    async fn save(&mut self, now: bool) -> bool {
        let Some(to) = self.unsaved else {
            return true;
        };
        if !now && self.saved_at.elapsed() < self.save_every() {
            return true;
        }
        loop {
            match self
                .shared
                .db
                .advance_webhook(self.hook.id, to, self.shared.holder)
                .await
            {
                Ok(ours) => {
                    self.saved_to = to;
                    self.saved_at = Instant::now();
                    self.unsaved = None;
                    return ours;
                }
                Err(e) => {
                    // Not storing it only means the events may be sent again after a restart.
                    tracing::warn!(webhook = %self.hook.id, error = %e, "storing a webhook's cursor failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Reads at most `cap` bytes of the answer's body and drops them: the connection can be
/// reused, and a receiver cannot make us hold a large body.
async fn drain(mut res: reqwest::Response, cap: usize) {
    let mut read = 0;
    while read < cap {
        match res.chunk().await {
            Ok(Some(chunk)) => read += chunk.len(),
            _ => return,
        }
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// A failed request, in words for `last_error`.
fn describe(e: &reqwest::Error, timeout_secs: u64) -> String {
    if e.is_timeout() {
        format!("no answer within {timeout_secs} s")
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

/// Seconds since `sent_at` (RFC 3339); 0 when it does not parse.
fn age_secs(sent_at: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(sent_at).map_or(0.0, |at| {
        (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
            .num_milliseconds()
            .max(0) as f64
            / 1000.0
    })
}
