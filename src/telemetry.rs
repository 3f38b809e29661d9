//! Logs and metrics: the tracing subscriber, one middleware that gives every request an id,
//! a span, a log line and its Prometheus figures, and the catch-all that renders actix's own
//! bare error responses (404, 405, …) in the contract's JSON shape.

use std::{sync::OnceLock, time::Instant};

use actix_web::{
    Error,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::header::{self, HeaderValue},
    middleware::{ErrorHandlerResponse, Next},
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::error::{ErrorCode, error_json};

/// Installs the global tracing subscriber; `RUST_LOG` overrides `default_filter`.
pub fn init_tracing(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The process-wide Prometheus recorder (installed on first use).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ])
                .expect("static bucket list is non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed (embedding); then we render ours
            // empty rather than crash.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Request id, span, access log line and HTTP metrics for every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = Uuid::new_v4();
    let method = req.method().clone();
    let path = req.path().to_owned();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!("request", id = %request_id, %method, %path);
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status();
    let elapsed = started.elapsed();
    res.headers_mut().insert(
        header::HeaderName::from_static("x-request-id"),
        HeaderValue::from_str(&request_id.to_string()).expect("a uuid is a valid header value"),
    );
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        )
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!("roomcast_http_requests_total", &labels).increment(1);
    metrics::histogram!("roomcast_http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    Ok(res)
}

/// For `ErrorHandlers`: an error response that is not already JSON (actix's 404, 405, …)
/// gets the contract's body, with the code its status implies.
pub fn render_plain_errors<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let message = status.canonical_reason().unwrap_or("error").to_lowercase();
    let (req, old) = res.into_parts();
    let mut new = error_json(ErrorCode::for_status(status), &message);
    // The status actix chose stands, even where its code's usual status differs.
    *new.status_mut() = status;
    // Keep headers such as Allow (405) and Retry-After.
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> =
        ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}
