//! Browser-facing safety for every response and every state-changing request:
//!
//! - response headers: a Content-Security-Policy that forbids inline script (and anything
//!   not served by us), `X-Content-Type-Options: nosniff`, a strict `Referrer-Policy` and
//!   `X-Frame-Options` for browsers that predate `frame-ancestors`;
//! - a cross-site check: a `POST`/`PUT`/`PATCH`/`DELETE` whose `Origin` (or, without one, its
//!   `Referer`) names another origin than ours is refused with `403 forbidden`. "Ours" is
//!   `server.public_origin` when configured (scheme included), else the `Host` header's
//!   host[:port]. Never `X-Forwarded-Host` or `Forwarded`: any client can send those.
//!   Requests with neither header (curl, scripts) pass: the session cookie is
//!   `SameSite=Lax`, so a cross-site browser request carries no session anyway; this check
//!   is a second layer behind it. Requests with an access token (`Authorization: Bearer
//!   rc_…`) skip the check: a browser does not add that header to a cross-site request on its
//!   own (it would need a CORS preflight we never grant), so such a request is a script's,
//!   and a bad token fails on its own (every route reads a token before any cookie).

use actix_web::{
    Error, HttpResponse, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
    web,
};

use crate::{
    domain::{Origin, looks_like_token},
    http::error::ApiError,
    http::state::AppState,
};

/// The policy sent with every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Middleware: refuses cross-site state-changing requests, adds the security headers.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if is_state_changing(req.method()) && !carries_token(&req) && is_cross_site(&req) {
        tracing::warn!(
            origin = ?req.headers().get(header::ORIGIN),
            referer = ?req.headers().get(header::REFERER),
            "refused a cross-site request"
        );
        let mut res = ApiError::Forbidden("cross-site request refused").error_response();
        add_headers(&mut res);
        return Ok(req.into_response(res).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    add_headers(res.response_mut());
    Ok(res.map_into_left_body())
}

fn is_state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Whether the request authenticates with an access token.
fn carries_token(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(looks_like_token)
}

/// True when the request says it comes from a page on another origin than ours.
fn is_cross_site(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    let claimed = match headers.get(header::ORIGIN) {
        Some(origin) => origin,
        None => match headers.get(header::REFERER) {
            Some(referer) => referer,
            None => return false,
        },
    };
    // `Origin: null` (sandboxed frames, some redirects), non-ASCII or garbage: not us.
    let Some(claimed) = claimed.to_str().ok().and_then(Origin::parse) else {
        return true;
    };
    let public_origin = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.settings.server.public_origin.as_deref())
        .and_then(Origin::parse);
    if let Some(ours) = public_origin {
        return claimed != ours;
    }
    // HTTP/1.1 sends `Host`; HTTP/2 carries the same in the URI's authority.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(host) => !claimed.same_host(host),
        None => true,
    }
}

fn add_headers(res: &mut HttpResponse<impl MessageBody>) {
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
}
