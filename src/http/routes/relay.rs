//! Requests about one stream go to the node that holds it: answered here when this node
//! does, relayed over [`crate::cluster`] to the one that does otherwise (no sticky sessions).

use actix_web::{
    HttpResponse,
    http::{StatusCode, header},
};

use crate::{
    cluster::{Answer, Holder, Op, RelayError},
    domain::ConnectionId,
    http::error::ApiError,
    http::state::AppState,
    hub::HubError,
};

/// Answers with `here` when this node holds stream `id`; else relays `op()` to the node
/// that does and answers as it answered.
pub async fn at_holder(
    state: &AppState,
    id: ConnectionId,
    op: impl FnOnce() -> Op,
    here: impl Future<Output = Result<HttpResponse, ApiError>>,
) -> Result<HttpResponse, ApiError> {
    match state.cluster.holder(id).await {
        Holder::Here => here.await,
        Holder::Elsewhere(peer) => relayed(peer.relay(&op()).await),
        Holder::Nowhere => Err(HubError::UnknownConnection.into()),
    }
}

/// The answer of the node a request was relayed to, passed on as it came (with its
/// `Retry-After`, which every `429` carries).
fn relayed(answer: Result<Answer, RelayError>) -> Result<HttpResponse, ApiError> {
    let answer = answer.map_err(|e| {
        tracing::warn!(error = %e, "relaying to the node holding the stream failed");
        ApiError::Unavailable("the node holding this stream is not answering; try again".into())
    })?;
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = HttpResponse::build(status);
    res.content_type("application/json");
    if let Some(retry_after) = answer.retry_after {
        res.insert_header((header::RETRY_AFTER, retry_after));
    }
    Ok(res.body(answer.body))
}
