//! The one HTTP client a node calls the others with, on a thread and runtime of its own.
//!
//! Handlers run on several single-threaded runtimes (actix's workers), and a pooled
//! connection is driven by a task on the runtime that opened it: pooled from the workers,
//! a connection would stall whenever its worker is busy, and die with it. Here every call
//! runs on this client's runtime, so its keep-alive connections are shared by every caller
//! and driven in one place: a node opens a few connections to each other node and reuses
//! them, instead of one per call (each left in `TIME_WAIT`).

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::RETRY_AFTER;
use tokio::runtime::Runtime;

/// Idle pooled connections are closed after this: before actix's keep-alive (5 s) closes
/// them on the other side, so a call never picks a connection the peer is closing.
const POOL_IDLE: Duration = Duration::from_secs(4);

/// What another node answered.
#[derive(Debug)]
pub struct Answer {
    /// Its status.
    pub status: u16,
    /// Its `Retry-After`, passed on with a relayed `429` or `503`.
    pub retry_after: Option<String>,
    /// Its body.
    pub body: Bytes,
}

/// A pooled client and the runtime its connections live on.
pub(super) struct NodeClient {
    client: reqwest::Client,
    /// `None` only while being dropped.
    runtime: Option<Runtime>,
}

impl NodeClient {
    /// A client whose calls give up after `timeout`.
    pub(super) fn new(timeout: Duration) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("roomcast-nodes")
            .enable_all()
            .build()
            .context("starting the node-to-node client's runtime")?;
        let client = reqwest::Client::builder()
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .timeout(timeout)
            .build()
            .context("building the node-to-node HTTP client")?;
        Ok(Self {
            client,
            runtime: Some(runtime),
        })
    }

    /// `POST url` with `body` (JSON) and the nodes' bearer `token`, on the client's runtime.
    pub(super) async fn post(
        &self,
        url: String,
        token: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let request = self
            .client
            .post(url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let call = async move {
            let res = request.send().await?;
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = res.bytes().await?;
            Ok::<_, reqwest::Error>(Answer {
                status,
                retry_after,
                body,
            })
        };
        let runtime = self
            .runtime
            .as_ref()
            .context("the node-to-node client is stopping")?;
        Ok(runtime.spawn(call).await.context("the call's task")??)
    }
}

impl Drop for NodeClient {
    fn drop(&mut self) {
        // Dropped from async code (a node stopping): a runtime may not block there.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
