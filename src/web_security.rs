//! Browser-facing safety for every response and every state-changing request:
//!
//! - response headers: a Content-Security-Policy that forbids inline script (and anything
//!   not served by us), `X-Content-Type-Options: nosniff`, a strict `Referrer-Policy` and
//!   `X-Frame-Options` for browsers that predate `frame-ancestors`;
//! - a cross-site check: a `POST`/`PUT`/`PATCH`/`DELETE` whose `Origin` (or, without one, its
//!   `Referer`) names another host than the request's own is refused with `403 forbidden`.
//!   Requests with neither header (curl, scripts) pass: the session cookie is
//!   `SameSite=Lax`, so a cross-site browser request carries no session anyway; this check
//!   is the second layer the UI issue asks for.

use actix_web::{
    Error, HttpResponse, ResponseError,
    body::{EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderName, HeaderValue},
    },
    middleware::Next,
};

use crate::error::ApiError;

/// The policy sent with every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Middleware: refuses cross-site state-changing requests, adds the security headers.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    if is_state_changing(req.method()) && is_cross_site(&req) {
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

/// True when the request says it comes from a page on another host than this one.
fn is_cross_site(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    let claimed = match headers.get(header::ORIGIN) {
        Some(origin) => origin,
        None => match headers.get(header::REFERER) {
            Some(referer) => referer,
            None => return false,
        },
    };
    let Ok(claimed) = claimed.to_str() else {
        return true;
    };
    let own = req.connection_info().host().to_owned();
    match authority(claimed) {
        Some(host) => !host.eq_ignore_ascii_case(&own),
        // `Origin: null` (sandboxed frames, some redirects) or garbage: not us.
        None => true,
    }
}

/// The `host[:port]` of an absolute http(s) URL or origin, e.g. `http://a.b:8080/x` →
/// `a.b:8080`. Default ports are dropped, as the `Host` header drops them.
fn authority(url: &str) -> Option<&str> {
    let (rest, default_port) = if let Some(r) = url.strip_prefix("https://") {
        (r, ":443")
    } else if let Some(r) = url.strip_prefix("http://") {
        (r, ":80")
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    // Userinfo has no place in an Origin; in a Referer it is never sent by browsers.
    if auth.is_empty() || auth.contains('@') {
        return None;
    }
    Some(auth.strip_suffix(default_port).unwrap_or(auth))
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

#[cfg(test)]
mod tests {
    use super::authority;

    #[test]
    fn authority_of_origins_and_referers() {
        assert_eq!(authority("http://127.0.0.1:8080"), Some("127.0.0.1:8080"));
        assert_eq!(authority("http://example.com/a?b"), Some("example.com"));
        assert_eq!(authority("http://example.com:80/"), Some("example.com"));
        assert_eq!(authority("https://example.com:443"), Some("example.com"));
        assert_eq!(
            authority("https://example.com:8443#x"),
            Some("example.com:8443")
        );
        assert_eq!(authority("null"), None);
        assert_eq!(authority("ftp://example.com"), None);
        assert_eq!(authority("http://user@evil.com"), None);
        assert_eq!(authority("http://"), None);
    }
}
