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
    web,
};

use crate::{error::ApiError, state::AppState};

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

/// The scheme and `host[:port]` of an absolute http(s) URL, e.g. `http://A.b:8080/x` →
/// (`http`, `a.b:8080`). The default port of the scheme is dropped, as browsers drop it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: &'static str,
    authority: String,
}

impl Origin {
    /// The origin of `url`; `None` for anything but an absolute http(s) URL with a host.
    pub(crate) fn parse(url: &str) -> Option<Self> {
        Self::split(url).map(|(origin, _)| origin)
    }

    /// Like [`Origin::parse`], but only for a bare origin: no path, query or fragment (a
    /// lone trailing `/` is allowed). For checking `server.public_origin`.
    pub(crate) fn parse_bare(url: &str) -> Option<Self> {
        Self::split(url)
            .filter(|(_, rest)| rest.is_empty() || *rest == "/")
            .map(|(origin, _)| origin)
    }

    fn split(url: &str) -> Option<(Self, &str)> {
        let (scheme, rest) = if let Some(r) = strip_prefix_ignore_case(url, "https://") {
            ("https", r)
        } else if let Some(r) = strip_prefix_ignore_case(url, "http://") {
            ("http", r)
        } else {
            return None;
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (auth, tail) = rest.split_at(end);
        // Userinfo has no place in an Origin; in a Referer it is never sent by browsers.
        if auth.is_empty() || auth.contains('@') {
            return None;
        }
        let auth = auth
            .strip_suffix(default_port(scheme))
            .unwrap_or(auth)
            .to_ascii_lowercase();
        Some((
            Origin {
                scheme,
                authority: auth,
            },
            tail,
        ))
    }

    /// Whether this origin's `host[:port]` is `host`, a `Host` header value (which may spell
    /// out the default port of this origin's scheme).
    fn same_host(&self, host: &str) -> bool {
        let host = host.strip_suffix(default_port(self.scheme)).unwrap_or(host);
        self.authority.eq_ignore_ascii_case(host)
    }
}

fn default_port(scheme: &str) -> &'static str {
    if scheme == "https" { ":443" } else { ":80" }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
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
    use super::Origin;

    fn origin(scheme: &'static str, authority: &str) -> Option<Origin> {
        Some(Origin {
            scheme,
            authority: authority.to_owned(),
        })
    }

    #[test]
    fn origins_of_origins_and_referers() {
        assert_eq!(
            Origin::parse("http://127.0.0.1:8080"),
            origin("http", "127.0.0.1:8080")
        );
        assert_eq!(
            Origin::parse("http://Example.com/a?b"),
            origin("http", "example.com")
        );
        assert_eq!(
            Origin::parse("http://example.com:80/"),
            origin("http", "example.com")
        );
        assert_eq!(
            Origin::parse("HTTPS://example.com:443"),
            origin("https", "example.com")
        );
        assert_eq!(
            Origin::parse("https://example.com:8443#x"),
            origin("https", "example.com:8443")
        );
        assert_eq!(
            Origin::parse("https://example.com:80"),
            origin("https", "example.com:80"),
            "80 is not https's default port"
        );
        assert_eq!(Origin::parse("null"), None);
        assert_eq!(Origin::parse("ftp://example.com"), None);
        assert_eq!(Origin::parse("http://user@evil.com"), None);
        assert_eq!(Origin::parse("http://"), None);
    }

    #[test]
    fn the_scheme_is_part_of_the_origin() {
        assert_ne!(
            Origin::parse("http://chat.example"),
            Origin::parse("https://chat.example")
        );
    }

    #[test]
    fn a_public_origin_is_bare() {
        assert!(Origin::parse_bare("https://chat.example").is_some());
        assert!(Origin::parse_bare("https://chat.example/").is_some());
        assert!(Origin::parse_bare("https://chat.example/app").is_none());
        assert!(Origin::parse_bare("chat.example").is_none());
    }

    #[test]
    fn a_host_header_may_spell_out_the_default_port() {
        let o = Origin::parse("https://chat.example").expect("an origin");
        assert!(o.same_host("chat.example:443"));
        assert!(o.same_host("Chat.Example"));
        assert!(!o.same_host("chat.example:8443"));
    }
}
