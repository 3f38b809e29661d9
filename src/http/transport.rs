//! Holding up on the open internet: limits that act on connections rather than on requests.
//!
//! - **Stalled readers.** actix does not poll a response body while the socket's write buffer
//!   is full, so neither the stream nor the hub can close a peer that stopped reading: its
//!   socket would stay ESTABLISHED with megabytes queued. Every accepted socket gets
//!   `TCP_USER_TIMEOUT = sse.write_timeout_secs`; Linux then aborts the connection once sent
//!   data stays unacknowledged, or a zero receive window stays shut, for that long (the
//!   zero-window case is covered since Linux 5.11 clamps window probes to the user timeout).
//!   The aborted write fails, actix drops the connection, the stream ends and the hub forgets
//!   it. A peer that keeps reading, however slowly, or sits idle is never affected.
//! - **Slow bodies.** [`body_deadline`] gives each request `server.body_timeout_secs` to send
//!   its whole body, then answers `408 request_timeout` and closes the connection.
//! - **Connection cap.** [`per_worker_connections`] splits `server.max_connections` over the
//!   workers (actix counts per worker). An SSE stream leaves actix's count once its head is
//!   sent (it is handed to [`crate::http::stream_writer`]) and counts against `limits.max_streams`
//!   instead; [`ensure_fd_budget`] checks both together against RLIMIT_NOFILE.
//! - **Metrics listener.** [`ops_listener_only`] keeps a separate `metrics.listen` address to
//!   the operational routes.
//!
//! The 400 (bad request line or header), 408 (head timeout) and 431 (head too large) that
//! actix-http writes itself never reach a service or middleware: the h1 dispatcher builds
//! them inline, without a body, and writes them to the socket (docs/api.md lists them as
//! bodyless).

use std::{
    any::Any,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use actix_web::{
    Error, HttpMessage, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{Extensions, Payload, ServiceRequest, ServiceResponse},
    error::PayloadError,
    http::ConnectionType,
    middleware::Next,
    web,
};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

/// Descriptors kept out of `server.max_connections` for the database, logs, listeners and
/// the runtime.
pub const FD_RESERVE: usize = 128;

/// The `HttpServer::on_connect` callback: sets the write timeout on every accepted TCP socket.
pub fn on_connect(write_timeout: Duration) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync {
    move |conn, _ext| {
        if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
            && let Err(e) = set_write_timeout(stream, write_timeout)
        {
            // The connection still works, only without the stalled-reader guard.
            tracing::warn!(error = %e, "could not set TCP_USER_TIMEOUT on a connection");
        }
    }
}

#[cfg(target_os = "linux")]
fn set_write_timeout(stream: &actix_web::rt::net::TcpStream, timeout: Duration) -> io::Result<()> {
    socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout))
}

#[cfg(not(target_os = "linux"))]
fn set_write_timeout(
    _stream: &actix_web::rt::net::TcpStream,
    _timeout: Duration,
) -> io::Result<()> {
    Ok(())
}

/// The worker count actix will use: `server.workers`, else one per core (actix's own rule).
pub fn worker_count(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// actix's `max_connections` is per worker: the share that keeps the total within `total`.
/// Every worker gets at least one, so the cap is `max(total, workers)`.
pub fn per_worker_connections(total: usize, workers: usize) -> usize {
    (total / workers.max(1)).max(1)
}

/// Checks that `max_connections` plus `max_streams` (plus [`FD_RESERVE`]) fits the open-file
/// limit, raising the soft limit towards the hard one first when that is enough. Errs with a
/// message naming both keys and the numbers otherwise.
#[cfg(unix)]
pub fn ensure_fd_budget(max_connections: usize, max_streams: usize) -> anyhow::Result<()> {
    let needed = u64::try_from(
        max_connections
            .saturating_add(max_streams)
            .saturating_add(FD_RESERVE),
    )
    .unwrap_or(u64::MAX);
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if needed <= soft {
        return Ok(());
    }
    if needed <= hard && rlimit::setrlimit(rlimit::Resource::NOFILE, needed, hard).is_ok() {
        tracing::info!(from = soft, to = needed, "raised the open-file limit");
        return Ok(());
    }
    anyhow::bail!(
        "configuration: `server.max_connections` = {max_connections} plus \
         `limits.max_streams` = {max_streams} need {needed} open files ({FD_RESERVE} kept for \
         the database, logs and listeners) but the open-file limit (RLIMIT_NOFILE) is {soft} \
         (hard {hard}); lower server.max_connections or limits.max_streams, or raise the \
         limit (ulimit -n, LimitNOFILE=)"
    )
}

/// Without rlimits there is nothing to check.
#[cfg(not(unix))]
pub fn ensure_fd_budget(_max_connections: usize, _max_streams: usize) -> anyhow::Result<()> {
    Ok(())
}

/// Middleware: the request body must arrive within `server.body_timeout_secs` of the head.
/// A late body fails the extractor reading it; whatever the handler made of that, the answer
/// is `408 request_timeout` with `Connection: close`.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let secs = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.body_timeout_secs);
    let payload = req.take_payload();
    let (Some(secs), false) = (secs, matches!(payload, Payload::None)) else {
        req.set_payload(payload);
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let expired = Arc::new(AtomicBool::new(false));
    req.set_payload(Payload::Stream {
        payload: Box::pin(Deadline {
            inner: payload,
            timer: Box::pin(tokio::time::sleep(Duration::from_secs(secs))),
            expired: expired.clone(),
        }),
    });
    let res = next.call(req).await?;
    if !expired.load(Ordering::Acquire) {
        return Ok(res.map_into_left_body());
    }
    tracing::debug!(secs, "request body timed out");
    let (req, _) = res.into_parts();
    let mut answer = ApiError::RequestTimeout { secs }.error_response();
    answer.head_mut().set_connection_type(ConnectionType::Close);
    Ok(ServiceResponse::new(req, answer).map_into_right_body())
}

/// A request payload that fails once its deadline passes.
struct Deadline {
    inner: Payload,
    timer: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl Stream for Deadline {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.expired.load(Ordering::Acquire) {
            return Poll::Ready(None);
        }
        if let Poll::Ready(item) = self.inner.poll_next_unpin(cx) {
            return Poll::Ready(item);
        }
        if self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.expired.store(true, Ordering::Release);
        Poll::Ready(Some(Err(PayloadError::Io(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body did not arrive in time",
        )))))
    }
}

/// Paths the separate metrics listener serves.
const OPS_PATHS: [&str; 3] = ["/metrics", "/healthz", "/readyz"];

/// Middleware for `metrics.listen`: on that listener only the operational routes exist, and
/// on the main listener `/metrics` does not. Both answer `404 not_found` otherwise.
pub async fn ops_listener_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let listener = req.app_data::<MetricsListener>().copied();
    if let Some(listener @ MetricsListener(Some(_))) = listener {
        let on_metrics_listener = listener.serves(req.app_config().local_addr());
        let path = req.path();
        let allowed = if on_metrics_listener {
            OPS_PATHS.contains(&path)
        } else {
            path != "/metrics"
        };
        if !allowed {
            let (req, _) = req.into_parts();
            let res = ApiError::not_found(ErrorCode::NotFound, "no such route").error_response();
            return Ok(ServiceResponse::new(req, res).map_into_right_body());
        }
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// App data: the address of the separate metrics listener, when `metrics.listen` is set.
#[derive(Debug, Clone, Copy)]
pub struct MetricsListener(pub Option<SocketAddr>);

impl MetricsListener {
    /// Whether a connection with this local address came in on the metrics listener (same
    /// port and, unless that listener is bound to a wildcard, same IP).
    pub fn serves(&self, local: SocketAddr) -> bool {
        self.0.is_some_and(|l| {
            local.port() == l.port() && (l.ip().is_unspecified() || local.ip() == l.ip())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_cap_is_split_without_exceeding_the_total() {
        assert_eq!(per_worker_connections(4096, 3), 1365);
        assert!(
            per_worker_connections(4096, 3) * 3 <= 4096,
            "total over the cap"
        );
        assert_eq!(
            per_worker_connections(1, 4),
            1,
            "a worker with no share could never serve"
        );
    }

    #[test]
    fn an_impossible_connection_cap_is_refused_with_the_key_named() {
        let e = ensure_fd_budget(usize::MAX / 2, 1000)
            .expect_err("no open-file limit allows this many")
            .to_string();
        assert!(e.contains("server.max_connections"), "error was: {e}");
        assert!(e.contains("limits.max_streams"), "error was: {e}");
        assert!(e.contains("RLIMIT_NOFILE"), "error was: {e}");
    }

    #[test]
    fn a_wildcard_metrics_listener_matches_any_local_ip_on_its_port() {
        let any = MetricsListener(Some("0.0.0.0:9100".parse().expect("addr")));
        let local: SocketAddr = "10.0.0.5:9100".parse().expect("addr");
        let main: SocketAddr = "10.0.0.5:8080".parse().expect("addr");
        assert!(any.serves(local), "wildcard listener not recognised");
        assert!(!any.serves(main), "main port taken for the metrics one");
        assert!(
            !MetricsListener(None).serves(local),
            "no metrics listener configured, yet one matched"
        );
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_once_its_deadline_passes() {
        let mut payload = Deadline {
            inner: Payload::Stream {
                payload: Box::pin(futures_util::stream::pending()),
            },
            timer: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
            expired: Arc::new(AtomicBool::new(false)),
        };
        let item = tokio::time::timeout(Duration::from_secs(5), payload.next())
            .await
            .expect("the deadline ended the wait");
        assert!(
            matches!(item, Some(Err(PayloadError::Io(ref e))) if e.kind() == io::ErrorKind::TimedOut),
            "expected a timeout error, got {item:?}"
        );
        assert!(
            payload.expired.load(Ordering::Acquire),
            "expiry not flagged"
        );
    }
}
