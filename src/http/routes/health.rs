//! Liveness, readiness and metrics.

use actix_web::{HttpRequest, HttpResponse, http::header, web};
use metrics_exporter_prometheus::PrometheusHandle;
use subtle::ConstantTimeEq;

use crate::{http::error::ApiError, http::state::AppState, http::transport::MetricsListener};

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

/// `GET /metrics`: Prometheus text, for those [`metrics_access`] lets in. Gauges are read
/// from the hub at scrape time.
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, body = String, content_type = "text/plain", description = "Prometheus text format"),
        (status = 401, description = "`unauthorized`: `metrics.token` is set and was not presented or did not match"),
        (status = 403, description = "`forbidden`: no `metrics.token` and not a loopback peer"),
    )
)]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
    handle: web::Data<PrometheusHandle>,
) -> Result<HttpResponse, ApiError> {
    let dedicated = req
        .app_data::<MetricsListener>()
        .is_some_and(|l| l.serves(req.app_config().local_addr()));
    let loopback_peer = req.peer_addr().is_some_and(|a| a.ip().is_loopback());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    metrics_access(
        state.settings.metrics.token.as_deref(),
        presented,
        dedicated,
        loopback_peer,
    )?;
    let s = state.hub.stats();
    metrics::gauge!("roomcast_connections").set(s.connections as f64);
    metrics::gauge!("roomcast_users_online").set(s.users_online as f64);
    metrics::gauge!("roomcast_rooms").set(s.rooms as f64);
    metrics::gauge!("roomcast_subscriptions").set(s.subscriptions as f64);
    metrics::gauge!("roomcast_password_memory_bytes").set(state.passwords.memory_held() as f64);
    metrics::counter!("roomcast_events_delivered_total").absolute(s.events_delivered);
    metrics::counter!("roomcast_slow_disconnects_total").absolute(s.slow_disconnects);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(handle.render()))
}

/// Who may scrape. With `metrics.token` set: exactly its bearers (`401` otherwise), on any
/// listener. Without: anyone on the dedicated `metrics.listen` listener (the operator chose
/// who can reach it), and only loopback peers on the main one (`403` otherwise), so a
/// public bind does not publish the figures.
pub fn metrics_access(
    token: Option<&str>,
    presented: Option<&str>,
    dedicated_listener: bool,
    loopback_peer: bool,
) -> Result<(), ApiError> {
    match token {
        Some(token) => match presented {
            Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => Ok(()),
            _ => Err(ApiError::Unauthorized),
        },
        None if dedicated_listener || loopback_peer => Ok(()),
        None => Err(ApiError::Forbidden(
            "metrics are served to loopback peers only; set metrics.token or metrics.listen",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    #[test]
    fn without_a_token_only_loopback_peers_scrape_the_main_listener() {
        assert!(
            metrics_access(None, None, false, true).is_ok(),
            "loopback refused"
        );
        let remote = metrics_access(None, None, false, false);
        assert!(
            matches!(remote, Err(ApiError::Forbidden(_))),
            "remote peer got {remote:?}"
        );
    }

    #[test]
    fn without_a_token_the_dedicated_listener_is_open() {
        assert!(
            metrics_access(None, None, true, false).is_ok(),
            "remote scraper refused on the metrics listener"
        );
    }

    #[test]
    fn a_token_is_required_even_from_loopback() {
        let none = metrics_access(Some(TOKEN), None, false, true);
        assert!(matches!(none, Err(ApiError::Unauthorized)), "got {none:?}");
        let wrong = metrics_access(Some(TOKEN), Some("0123456789abcdeX"), true, true);
        assert!(
            matches!(wrong, Err(ApiError::Unauthorized)),
            "got {wrong:?}"
        );
        assert!(
            metrics_access(Some(TOKEN), Some(TOKEN), false, false).is_ok(),
            "the right token was refused"
        );
    }
}
