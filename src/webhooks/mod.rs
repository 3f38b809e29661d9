//! Webhooks: each one a cursor over the stored message log, delivered at least once, in id
//! order, across restarts and node deaths.
//!
//! Beside the writer and the cluster in the layering: it reads the log and its own rows
//! through [`crate::db`] and posts with `reqwest`; nothing below knows of it. A commit
//! wakes the delivery tasks through [`Webhooks::wake`] (handed to the writer's broker), and
//! every `webhooks.poll_ms` they look anyway (events committed on other nodes).
//!
//! * [`deliver`]: one task per webhook this node delivers.
//! * [`sign`]: the `Roomcast-Signature` header.
//! * The keeper (here): every third of `webhooks.lease_secs` it takes the leases of the
//!   webhooks this node is to deliver (on SQLite: all of them) and starts or stops their
//!   tasks to match. On a cluster a lease is a row's holder and expiry by the database's
//!   clock, renewed by the keeper: when a node dies its leases run out and another node's
//!   keeper takes them within `lease_secs` and a third. A keeper that cannot renew stops its
//!   tasks before its leases could run out, so two nodes never deliver one webhook.

mod deliver;
pub mod sign;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;
use tokio::{sync::Notify, task::JoinHandle};
use uuid::Uuid;

use crate::{
    config::WebhookSettings,
    db::{CreateWebhookError, Db, WebhookRecord},
    domain::{HookFilter, Secret, WebhookUrl},
};

/// What the keeper and the delivery tasks share.
struct Shared {
    db: Db,
    settings: WebhookSettings,
    client: reqwest::Client,
    /// Woken on every commit of this node's writer.
    wake: Arc<Notify>,
    /// The lease holder id, on PostgreSQL; `None` on SQLite (one server delivers all).
    holder: Option<Uuid>,
}

/// This node's webhook deliveries.
pub struct Webhooks {
    shared: Arc<Shared>,
    /// This node's id as a lease holder.
    node: Uuid,
    /// Wakes the keeper (a webhook was made or deleted here).
    changed: Notify,
    tasks: Mutex<HashMap<Uuid, JoinHandle<()>>>,
    keeper: Mutex<Option<JoinHandle<()>>>,
}

impl Webhooks {
    /// Deliveries from `db`, none running until [`Webhooks::start`].
    pub fn new(db: Db, settings: &WebhookSettings) -> anyhow::Result<Arc<Self>> {
        crate::tls::install_provider();
        let client = reqwest::Client::builder()
            // A redirect is a failure: following one would post the signed event wherever
            // the receiver (or someone who took over its address) points.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(settings.timeout_secs))
            .user_agent(concat!("roomcast-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let node = Uuid::new_v4();
        let holder = db.is_postgres().then_some(node);
        Ok(Arc::new(Self {
            shared: Arc::new(Shared {
                db,
                settings: settings.clone(),
                client,
                wake: Arc::new(Notify::new()),
                holder,
            }),
            node,
            changed: Notify::new(),
            tasks: Mutex::new(HashMap::new()),
            keeper: Mutex::new(None),
        }))
    }

    /// What to notify when events are committed, so idle deliveries look at once.
    pub fn wake(&self) -> Arc<Notify> {
        self.shared.wake.clone()
    }

    /// Starts the keeper (and through it the deliveries).
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        *self.keeper.lock() = Some(tokio::spawn(async move { this.keep().await }));
    }

    /// Makes a webhook starting at the newest event; its secret is returned to be shown
    /// this once. Delivery starts at once here (on a cluster, on whichever node leases it).
    pub async fn create(
        &self,
        url: &WebhookUrl,
        filter: &HookFilter,
    ) -> Result<(WebhookRecord, Secret), CreateWebhookError> {
        let secret = Secret::webhook().map_err(|e| {
            CreateWebhookError::Db(sqlx::Error::Protocol(format!("no randomness: {e}")))
        })?;
        let hook = self
            .shared
            .db
            .create_webhook(url, filter, secret.expose(), self.shared.settings.max)
            .await?;
        self.changed.notify_one();
        Ok((hook, secret))
    }

    /// Deletes webhook `id` and stops its delivery here; false when there is none. On a
    /// cluster the node delivering it stops at its next lease renewal, or at once when it
    /// next records a delivery.
    pub async fn delete(&self, id: Uuid) -> sqlx::Result<bool> {
        let deleted = self.shared.db.delete_webhook(id).await?;
        if let Some(task) = self.tasks.lock().remove(&id) {
            task.abort();
        }
        Ok(deleted)
    }

    /// How many stored events `hook` takes that it has not had yet.
    pub async fn pending(&self, hook: &WebhookRecord) -> sqlx::Result<i64> {
        self.shared.db.webhook_pending(hook).await
    }

    /// Stops every delivery and lets go of this node's leases (a clean stop), so another
    /// node takes over at once.
    pub async fn stop(&self) {
        self.halt();
        if self.shared.holder.is_some()
            && let Err(e) = self.shared.db.release_webhooks(self.node).await
        {
            tracing::warn!(error = %e, "letting go of webhook leases failed");
        }
    }

    /// Ends the keeper and every delivery at once, leases kept: as a crash would (tests).
    pub fn halt(&self) {
        if let Some(keeper) = self.keeper.lock().take() {
            keeper.abort();
        }
        self.stop_tasks();
    }

    fn stop_tasks(&self) {
        for (_, task) in self.tasks.lock().drain() {
            task.abort();
        }
    }

    async fn keep(self: Arc<Self>) {
        let lease = Duration::from_secs(self.shared.settings.lease_secs);
        let every = lease / 3;
        let mut renewed = Instant::now();
        loop {
            match self
                .shared
                .db
                .lease_webhooks(self.node, self.shared.settings.lease_secs)
                .await
            {
                Ok(held) => {
                    renewed = Instant::now();
                    self.run_exactly(&held);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "renewing webhook leases failed");
                    // Stop before the leases could have run out and another node begun.
                    if renewed.elapsed() + every >= lease {
                        self.stop_tasks();
                    }
                }
            }
            tokio::select! {
                () = self.changed.notified() => {}
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// Runs a delivery task for each of `held`, and none for any other webhook.
    fn run_exactly(&self, held: &[Uuid]) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|id, task| {
            let keep = held.contains(id) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for id in held {
            tasks
                .entry(*id)
                .or_insert_with(|| tokio::spawn(deliver::run(self.shared.clone(), *id)));
        }
    }
}
