//! Liveness, readiness and metrics.

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::{error::ApiError, state::AppState};

/// `GET /healthz`: the process serves.
#[utoipa::path(
    get, path = "/healthz", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", description = "`ok` while the process serves"))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

/// `GET /readyz`: the database answers and the message writer runs.
#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "The database and the writer answer"),
        (status = 503, description = "`unavailable`"),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.writer.is_ready() {
        return Err(ApiError::Unavailable(
            "the message writer is not storing messages".into(),
        ));
    }
    match state.db.ping().await {
        Ok(()) => Ok(HttpResponse::Ok().content_type("text/plain").body("ready")),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database not answering");
            Err(ApiError::Unavailable(
                "the database is not answering".into(),
            ))
        }
    }
}

/// `GET /metrics`: Prometheus text. Gauges are read from the hub at scrape time.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", description = "Prometheus text format"))
)]
pub async fn metrics(
    state: web::Data<AppState>,
    handle: web::Data<PrometheusHandle>,
) -> HttpResponse {
    let s = state.hub.stats();
    metrics::gauge!("roomcast_connections").set(s.connections as f64);
    metrics::gauge!("roomcast_users_online").set(s.users_online as f64);
    metrics::gauge!("roomcast_rooms").set(s.rooms as f64);
    metrics::gauge!("roomcast_subscriptions").set(s.subscriptions as f64);
    metrics::counter!("roomcast_events_delivered_total").absolute(s.events_delivered);
    metrics::counter!("roomcast_slow_disconnects_total").absolute(s.slow_disconnects);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render())
}
