//! Logs and metrics: the tracing subscriber, one middleware that gives every request an id,
//! a span, a log line and its Prometheus figures, and the catch-all that renders actix's own
//! bare error responses (404, 405, …) in the contract's JSON shape.

use std::{cell::RefCell, collections::HashMap, rc::Rc, sync::OnceLock, time::Instant};

use actix_web::{
    Error,
    body::{BoxBody, EitherBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method,
        header::{self, HeaderValue},
    },
    middleware::{ErrorHandlerResponse, Next},
};
use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::{
    Event, Instrument, Level, Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    layer::{self, Layer, SubscriberExt},
    util::SubscriberInitExt,
};
use uuid::Uuid;

use crate::http::error::{ErrorCode, error_json};

/// Installs the global tracing subscriber; `RUST_LOG` overrides `default_filter`.
/// Client-caused connection errors from actix-http are kept out of the log: see
/// [`QuietClientFaults`].
pub fn init_tracing(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(QuietClientFaults)
        .try_init();
}

/// Where actix-http logs a connection's final error.
const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";

/// actix-http's h1 dispatcher logs `stream error: …` at ERROR when a connection ends in an
/// error, including every malformed request line or header, head or shutdown timeout and
/// client I/O failure (reset, our write timeout). Any client could flood the log with them.
/// The level is fixed at actix's call site and a subscriber cannot lower it, so this layer
/// drops those client-caused events instead; server-side ones (service, body, internal
/// errors) still log at ERROR. The same requests stay visible at TRACE through actix's own
/// `parse error …` and `I/O error …` lines (`RUST_LOG=actix_http::h1=trace`).
pub struct QuietClientFaults;

impl<S: Subscriber> Layer<S> for QuietClientFaults {
    fn event_enabled(&self, event: &Event<'_>, _ctx: layer::Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target() != DISPATCHER_TARGET {
            return true;
        }
        let mut message = MessageText(String::new());
        event.record(&mut message);
        !is_client_fault(&message.0)
    }
}

/// Whether a dispatcher `stream error: …` names a failure of the client or the network
/// (actix-http's `DispatchError` display texts).
fn is_client_fault(message: &str) -> bool {
    const CLIENT_FAULTS: [&str; 5] = [
        "request parse error",
        "I/O error",
        "request did not complete within the specified timeout",
        "connection shutdown timeout",
        "handler dropped payload before reading EOF",
    ];
    message
        .strip_prefix("stream error: ")
        .is_some_and(|rest| CLIENT_FAULTS.iter().any(|p| rest.starts_with(p)))
}

/// Collects an event's `message` field.
struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
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
    let method = method_label(req.method());
    let route = route_of(&req);
    let span = tracing::info_span!("request", id = %request_id, method = %req.method(), path = %req.path());
    let mut res = next.call(req).instrument(span.clone()).await?;
    let status = res.status();
    let elapsed = started.elapsed();
    let mut id = Uuid::encode_buffer();
    res.headers_mut().insert(
        header::HeaderName::from_static("x-request-id"),
        HeaderValue::from_str(request_id.hyphenated().encode_lower(&mut id))
            .expect("a uuid is a valid header value"),
    );
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "served"
        )
    });
    let (requests, duration) = request_metrics(method, route, status.as_u16());
    requests.increment(1);
    duration.record(elapsed.as_secs_f64());
    Ok(res)
}

/// A request method as a metric label: the standard ones by name, any other as `other`,
/// so a client inventing methods cannot add time series without bound.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::PATCH,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

/// Label sets whose metric handles a worker thread keeps; past this it starts over.
const METRIC_HANDLES_REMEMBERED: usize = 1024;

/// The request counter and duration histogram for one method, route and status. The
/// recorder finds a handle by hashing its labels; each worker thread keeps the handles it
/// used, so a request costs one lookup, not three label strings and two registry lookups.
fn request_metrics(method: &'static str, route: Rc<str>, status: u16) -> (Counter, Histogram) {
    type Key = (&'static str, Rc<str>, u16);
    thread_local! {
        static HANDLES: RefCell<HashMap<Key, (Counter, Histogram)>> = RefCell::new(HashMap::new());
    }
    let key = (method, route, status);
    HANDLES.with_borrow_mut(|handles| {
        if let Some(found) = handles.get(&key) {
            return found.clone();
        }
        if handles.len() >= METRIC_HANDLES_REMEMBERED {
            handles.clear();
        }
        let labels = [
            ("method", method.to_owned()),
            ("route", key.1.to_string()),
            ("status", status.to_string()),
        ];
        let found = (
            metrics::counter!("roomcast_http_requests_total", &labels),
            metrics::histogram!("roomcast_http_request_duration_seconds", &labels[..2]),
        );
        handles.insert(key, found.clone());
        found
    })
}

/// Paths remembered per worker thread by [`route_of`]; past this the memo starts over.
const ROUTES_REMEMBERED: usize = 1024;

/// Longer paths are matched each time, not remembered (the memo stays under 256 KiB).
const ROUTE_PATH_REMEMBERED: usize = 256;

/// The route pattern a request matched (`/api/rooms/{room}/messages`), for metric labels.
/// actix finds it by matching the path against every route again (regular expressions
/// for the dynamic ones, a few percent of a post's CPU), so each worker thread remembers
/// the answers for the paths it saw last.
fn route_of(req: &ServiceRequest) -> Rc<str> {
    thread_local! {
        static ROUTES: RefCell<HashMap<Box<str>, Rc<str>>> = RefCell::new(HashMap::new());
    }
    ROUTES.with_borrow_mut(|routes| {
        if let Some(route) = routes.get(req.path()) {
            return route.clone();
        }
        if routes.len() >= ROUTES_REMEMBERED {
            routes.clear();
        }
        let route: Rc<str> = req.match_pattern().as_deref().unwrap_or("unmatched").into();
        if req.path().len() <= ROUTE_PATH_REMEMBERED {
            routes.insert(req.path().into(), route.clone());
        }
        route
    })
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records the messages of the events that reach it.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &Event<'_>, _ctx: layer::Context<'_, S>) {
            let mut message = MessageText(String::new());
            event.record(&mut message);
            self.0.lock().expect("lock").push(message.0);
        }
    }

    fn logged(emit: impl FnOnce()) -> Vec<String> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry()
            .with(Seen(seen.clone()))
            .with(QuietClientFaults);
        tracing::subscriber::with_default(subscriber, emit);
        seen.lock().expect("lock").clone()
    }

    #[test]
    fn a_malformed_request_is_not_logged_at_error() {
        let seen = logged(|| {
            tracing::error!(
                target: "actix_http::h1::dispatcher",
                "stream error: {}",
                "request parse error: invalid Header provided"
            )
        });
        assert!(seen.is_empty(), "client fault reached the log: {seen:?}");
    }

    #[test]
    fn a_server_side_stream_error_is_still_logged() {
        let seen = logged(
            || tracing::error!(target: "actix_http::h1::dispatcher", "stream error: internal error"),
        );
        assert_eq!(
            seen,
            ["stream error: internal error"],
            "server fault dropped"
        );
    }

    #[test]
    fn an_invented_method_is_labelled_other() {
        let invented = Method::from_bytes(b"FOO1").expect("a valid token");
        assert_eq!(
            method_label(&invented),
            "other",
            "one series per invented method"
        );
        assert_eq!(method_label(&Method::POST), "POST");
    }

    #[test]
    fn the_same_text_from_another_target_is_kept() {
        let seen = logged(|| tracing::error!("stream error: request parse error: x"));
        assert_eq!(seen.len(), 1, "an unrelated event was dropped: {seen:?}");
    }
}

#[cfg(test)]
mod route_tests {
    use actix_web::{App, HttpResponse, middleware::from_fn, test, web};

    use super::*;

    /// Answers with the route label the request got, in a header.
    async fn label(
        req: ServiceRequest,
        next: Next<impl MessageBody + 'static>,
    ) -> Result<ServiceResponse<impl MessageBody>, Error> {
        let route = route_of(&req);
        let mut res = next.call(req).await?;
        res.headers_mut().insert(
            header::HeaderName::from_static("x-route"),
            HeaderValue::from_str(&route).expect("a route is a valid header value"),
        );
        Ok(res)
    }

    #[actix_web::test]
    async fn a_path_is_labelled_with_its_route_pattern_also_when_remembered() {
        let app = test::init_service(
            App::new()
                .wrap(from_fn(label))
                .service(web::resource("/rooms/{room}").to(HttpResponse::Ok)),
        )
        .await;
        for (path, expected) in [
            ("/rooms/a", "/rooms/{room}"),
            ("/rooms/a", "/rooms/{room}"),
            ("/rooms/b", "/rooms/{room}"),
            ("/elsewhere", "unmatched"),
            ("/elsewhere", "unmatched"),
        ] {
            let res =
                test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(
                res.headers().get("x-route").and_then(|v| v.to_str().ok()),
                Some(expected),
                "the route label of {path}"
            );
        }
    }
}
