//! The one error type of the HTTP surface. Every failure, ours or actix's, renders as the
//! contract's `{"error":{"code","message"}}` with a stable machine code.

use std::borrow::Cow;

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{JsonPayloadError, PathError, QueryPayloadError, UrlencodedError},
    http::{StatusCode, header},
};
use serde::Serialize;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed input or a failed validation rule.
    #[error("{message}")]
    BadRequest {
        /// Stable machine code, e.g. `invalid_room`.
        code: &'static str,
        /// What was wrong, for a person.
        message: Cow<'static, str>,
    },
    /// 401: no valid session.
    #[error("log in first")]
    Unauthorized,
    /// 401: the username or password did not match (the same for both).
    #[error("invalid username or password")]
    InvalidCredentials,
    /// 403: logged in but not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such thing (or not yours).
    #[error("{message}")]
    NotFound {
        /// Stable machine code, e.g. `unknown_connection`.
        code: &'static str,
        /// What was missing.
        message: Cow<'static, str>,
    },
    /// 405: the path exists but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409: conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// Stable machine code, e.g. `username_taken`.
        code: &'static str,
        /// What conflicted.
        message: Cow<'static, str>,
    },
    /// 408: the request body did not arrive within `server.body_timeout_secs`.
    #[error("the request body did not arrive within {secs} s")]
    RequestTimeout {
        /// The deadline in seconds.
        secs: u64,
    },
    /// 413: the body is over the configured cap.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// 413: a custom event's `data` is over its cap.
    #[error("event data is larger than {limit} bytes of JSON")]
    DataTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// 415: not `application/json` where JSON is required.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// 429: slow down; try again after this many whole seconds.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 503: a dependency (database, broker) is not answering, or the server is stopping.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    /// 500: a bug or an unexpected failure. Logged in full; the client sees no internals.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with a machine code.
    pub fn validation(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with a machine code.
    pub fn not_found(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// The answer for a connection id that does not exist or is not the caller's.
    pub fn unknown_connection() -> Self {
        Self::not_found("unknown_connection", "no such connection")
    }

    /// The stable machine code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. } | Self::NotFound { code, .. } => code,
            Self::Conflict { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTimeout { .. } => "request_timeout",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::DataTooLarge { .. } => "data_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

/// Renders the contract's error body.
pub fn error_json(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(Body {
        error: Detail { code, message },
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } | Self::DataTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(e) = self {
            // Runs inside the request's span, so the log line carries the request id that the
            // client sees in `X-Request-Id`.
            tracing::error!(error = ?e, "internal error");
        }
        let message = match self {
            Self::Internal(_) => "internal error; the server log has the details".to_owned(),
            other => other.to_string(),
        };
        let mut res = error_json(self.status_code(), self.code(), &message);
        if let Self::RateLimited { retry_after_secs } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, (*retry_after_secs).into());
        }
        res
    }
}

/// Maps actix's JSON extractor failures into the contract (installed via `JsonConfig`).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Overflow { limit }
        | JsonPayloadError::OverflowKnownLength { limit, .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::validation("invalid_request", e.to_string())
        }
        JsonPayloadError::Deserialize(e) => ApiError::validation("invalid_json", e.to_string()),
        other => ApiError::validation("invalid_json", other.to_string()),
    }
    .into()
}

/// Maps form extractor failures (HTML pages) into the contract.
pub fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        UrlencodedError::ContentType => ApiError::UnsupportedMediaType,
        UrlencodedError::Overflow { limit, .. } => ApiError::PayloadTooLarge { limit },
        other => ApiError::validation("invalid_form", other.to_string()),
    }
    .into()
}

/// Maps query-string extractor failures into the contract.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation("invalid_query", err.to_string()).into()
}

/// Maps path extractor failures into the contract.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation("invalid_path", err.to_string()).into()
}

/// The code a bare status gets when actix (not our handlers) produced the error.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}
