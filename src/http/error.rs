//! The one error type of the HTTP surface. Every failure, ours or actix's, renders as the
//! contract's `{"error":{"code","message"}}` with a machine code from the closed
//! [`ErrorCode`] list. Errors of the layers below (domain parsing, the hub, the writer) are
//! mapped here, so those layers know nothing of HTTP.

use std::borrow::Cow;

use actix_web::{
    HttpRequest, HttpResponse, ResponseError,
    error::{PathError, QueryPayloadError, UrlencodedError},
    http::{StatusCode, header},
};
use serde::Serialize;

use crate::{
    conversation::ConversationError, domain::ParseError, hub::HubError, password::PasswordError,
    writer::WriteError,
};

/// Declares [`ErrorCode`] from one table: variant, wire name, HTTP status.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident = $wire:literal => $status:ident,)*) => {
        /// Every machine code the API answers with. The list in `docs/api.md` is checked
        /// against this enum by a test, so the two cannot drift apart.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &[ErrorCode] = &[$(Self::$variant,)*];

            /// The code as it appears on the wire, e.g. `invalid_room`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }

            /// The HTTP status this code is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(Self::$variant => StatusCode::$status,)*
                }
            }
        }
    };
}

error_codes! {
    /// a request line or head that could not be parsed
    BadRequest = "bad_request" => BAD_REQUEST,
    /// a JSON body that is not JSON
    InvalidJson = "invalid_json" => BAD_REQUEST,
    /// JSON of the wrong shape: not one object, a missing, unknown or mistyped field
    InvalidRequest = "invalid_request" => BAD_REQUEST,
    /// a form body of the wrong shape
    InvalidForm = "invalid_form" => BAD_REQUEST,
    /// a query string of the wrong shape, or a search `q` without a word or over 200 characters
    InvalidQuery = "invalid_query" => BAD_REQUEST,
    /// a path segment of the wrong type
    InvalidPath = "invalid_path" => BAD_REQUEST,
    /// not a room name
    InvalidRoom = "invalid_room" => BAD_REQUEST,
    /// an empty room list
    InvalidRooms = "invalid_rooms" => BAD_REQUEST,
    /// not a username
    InvalidUsername = "invalid_username" => BAD_REQUEST,
    /// a password of the wrong length
    InvalidPassword = "invalid_password" => BAD_REQUEST,
    /// not an event name
    InvalidEvent = "invalid_event" => BAD_REQUEST,
    /// a built-in event name used as a custom event
    ReservedEvent = "reserved_event" => BAD_REQUEST,
    /// a message body empty or too long after trimming
    InvalidBody = "invalid_body" => BAD_REQUEST,
    /// not a reaction: 1-8 characters, none ASCII, whitespace or control, one an emoji
    InvalidReaction = "invalid_reaction" => BAD_REQUEST,
    /// a token name that is not 1-64 characters
    InvalidName = "invalid_name" => BAD_REQUEST,
    /// a webhook URL that is not http(s) or is over 2,048 characters
    InvalidUrl = "invalid_url" => BAD_REQUEST,
    /// `history` out of range
    InvalidHistory = "invalid_history" => BAD_REQUEST,
    /// a negative `last_event_id`
    InvalidLastEventId = "invalid_last_event_id" => BAD_REQUEST,
    /// `limit` out of range
    InvalidLimit = "invalid_limit" => BAD_REQUEST,
    /// a connection would hold more rooms than allowed
    TooManyRooms = "too_many_rooms" => BAD_REQUEST,
    /// no valid session
    Unauthorized = "unauthorized" => UNAUTHORIZED,
    /// wrong username or password (the same answer for both)
    InvalidCredentials = "invalid_credentials" => UNAUTHORIZED,
    /// logged in but not allowed
    Forbidden = "forbidden" => FORBIDDEN,
    /// the account is banned; it cannot log in
    AccountBanned = "account_banned" => FORBIDDEN,
    /// no such route
    NotFound = "not_found" => NOT_FOUND,
    /// no such connection, or not the caller's
    UnknownConnection = "unknown_connection" => NOT_FOUND,
    /// no such user
    UnknownUser = "unknown_user" => NOT_FOUND,
    /// no such room, or a private room the caller is not a member of
    UnknownRoom = "unknown_room" => NOT_FOUND,
    /// no such message in that room (or it was deleted)
    UnknownMessage = "unknown_message" => NOT_FOUND,
    /// no such access token of the caller's
    UnknownToken = "unknown_token" => NOT_FOUND,
    /// no such webhook
    UnknownWebhook = "unknown_webhook" => NOT_FOUND,
    /// the path exists, the method does not
    MethodNotAllowed = "method_not_allowed" => METHOD_NOT_ALLOWED,
    /// the request took too long to arrive
    RequestTimeout = "request_timeout" => REQUEST_TIMEOUT,
    /// the username is taken
    UsernameTaken = "username_taken" => CONFLICT,
    /// the room name was created before, has history, or has subscribers now
    RoomTaken = "room_taken" => CONFLICT,
    /// a new reaction for a message that holds as many distinct ones as it may
    TooManyReactions = "too_many_reactions" => CONFLICT,
    /// the user holds as many access tokens as it may
    TooManyTokens = "too_many_tokens" => CONFLICT,
    /// as many webhooks exist as may
    TooManyWebhooks = "too_many_webhooks" => CONFLICT,
    /// the request body is over the cap
    PayloadTooLarge = "payload_too_large" => PAYLOAD_TOO_LARGE,
    /// a custom event's `data` is over its cap
    DataTooLarge = "data_too_large" => PAYLOAD_TOO_LARGE,
    /// not `application/json` where JSON is required
    UnsupportedMediaType = "unsupported_media_type" => UNSUPPORTED_MEDIA_TYPE,
    /// request headers over the server's limit
    HeadersTooLarge = "headers_too_large" => REQUEST_HEADER_FIELDS_TOO_LARGE,
    /// slow down; `Retry-After` says for how long
    RateLimited = "rate_limited" => TOO_MANY_REQUESTS,
    /// the user or its session holds as many open streams as it may
    TooManyStreams = "too_many_streams" => TOO_MANY_REQUESTS,
    /// the user has created as many rooms as it may
    TooManyRoomsCreated = "too_many_rooms_created" => TOO_MANY_REQUESTS,
    /// the stream's earlier replay is not written yet: its replay would not fit in its queue
    ReplayBacklog = "replay_backlog" => TOO_MANY_REQUESTS,
    /// a dependency is not answering, or the server is stopping
    Unavailable = "unavailable" => SERVICE_UNAVAILABLE,
    /// a bug; the server log has the details
    Internal = "internal" => INTERNAL_SERVER_ERROR,
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ErrorCode {
    /// The code for a bare status that actix (not our handlers) produced.
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::RequestTimeout,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            429 => Self::RateLimited,
            431 => Self::HeadersTooLarge,
            503 => Self::Unavailable,
            s if s >= 500 => Self::Internal,
            _ => Self::BadRequest,
        }
    }
}
/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: malformed input or a failed validation rule.
    #[error("{message}")]
    BadRequest {
        /// Which rule, e.g. [`ErrorCode::InvalidRoom`].
        code: ErrorCode,
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
    /// 403: the account is banned.
    #[error("this account is banned")]
    AccountBanned,
    /// 404: no such thing (or not yours).
    #[error("{message}")]
    NotFound {
        /// What kind of thing, e.g. [`ErrorCode::UnknownConnection`].
        code: ErrorCode,
        /// What was missing.
        message: Cow<'static, str>,
    },
    /// 405: the path exists but not with this method.
    #[error("method not allowed on this path")]
    MethodNotAllowed,
    /// 409: conflicts with existing state.
    #[error("{message}")]
    Conflict {
        /// What conflicted, e.g. [`ErrorCode::UsernameTaken`].
        code: ErrorCode,
        /// What conflicted, for a person.
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
    /// 429: a cap on what one user may hold at once (`Retry-After` is a guess).
    #[error("{message}")]
    Limited {
        /// Which cap, e.g. [`ErrorCode::TooManyStreams`].
        code: ErrorCode,
        /// The cap, for a person.
        message: Cow<'static, str>,
    },
    /// 429: not now, for a reason that passes by itself (e.g. `replay_backlog`); try again
    /// after this many whole seconds.
    #[error("{message}")]
    RetryLater {
        /// Why, e.g. [`ErrorCode::ReplayBacklog`].
        code: ErrorCode,
        /// Why, for a person.
        message: Cow<'static, str>,
        /// Seconds until a retry is likely to succeed.
        retry_after_secs: u64,
    },
    /// 429: slow down; try again after this many whole seconds.
    #[error("too many requests; retry after {retry_after_secs} s")]
    RateLimited {
        /// Seconds until a retry can succeed.
        retry_after_secs: u64,
    },
    /// 503: a dependency (database, writer) is not answering, or the server is stopping.
    #[error("{0}")]
    Unavailable(Cow<'static, str>),
    /// 503: too busy right now (e.g. every password hashing slot is taken); retry after this
    /// many whole seconds.
    #[error("the server is busy; retry after {retry_after_secs} s")]
    Busy {
        /// Seconds until a retry is likely to succeed.
        retry_after_secs: u64,
    },
    /// 500: a bug or an unexpected failure. Logged in full; the client sees no internals.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with a machine code.
    pub fn validation(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 404 with a machine code.
    pub fn not_found(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    /// The answer for a room that does not exist for the caller (a private room it is not a
    /// member of looks exactly like this).
    pub fn unknown_room() -> Self {
        Self::not_found(ErrorCode::UnknownRoom, "no such room")
    }

    /// The answer for a message id that is not a message of that room.
    pub fn unknown_message() -> Self {
        Self::not_found(ErrorCode::UnknownMessage, "no such message in this room")
    }

    /// The answer for a connection id that does not exist or is not the caller's.
    pub fn unknown_connection() -> Self {
        Self::not_found(ErrorCode::UnknownConnection, "no such connection")
    }

    /// The machine code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Limited { code, .. }
            | Self::RetryLater { code, .. } => *code,
            Self::Unauthorized => ErrorCode::Unauthorized,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::AccountBanned => ErrorCode::AccountBanned,
            Self::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            Self::RequestTimeout { .. } => ErrorCode::RequestTimeout,
            Self::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            Self::DataTooLarge { .. } => ErrorCode::DataTooLarge,
            Self::UnsupportedMediaType => ErrorCode::UnsupportedMediaType,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Unavailable(_) | Self::Busy { .. } => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy { retry_after_secs } => Self::Busy { retry_after_secs },
            PasswordError::Failed(e) => Self::Internal(e),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            // Not a bug: the database is out of reach, or every pooled connection stayed busy
            // past the pool's wait. A client that tries again (EventSource does) may succeed.
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::warn!(error = %e, "the database did not answer a request");
                Self::Unavailable("the database is not answering; try again".into())
            }
            e => Self::Internal(e.into()),
        }
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        let code = match &e {
            ParseError::Room => ErrorCode::InvalidRoom,
            ParseError::Username => ErrorCode::InvalidUsername,
            ParseError::Password => ErrorCode::InvalidPassword,
            ParseError::EventName => ErrorCode::InvalidEvent,
            ParseError::ReservedEvent(_) => ErrorCode::ReservedEvent,
            ParseError::MessageBody { .. } => ErrorCode::InvalidBody,
            // A malformed id is simply one the caller does not own.
            ParseError::ConnectionId => return Self::unknown_connection(),
            ParseError::NoRooms => ErrorCode::InvalidRooms,
            ParseError::TooManyRooms => ErrorCode::TooManyRooms,
            ParseError::History => ErrorCode::InvalidHistory,
            ParseError::LastEventId => ErrorCode::InvalidLastEventId,
            ParseError::Reaction => ErrorCode::InvalidReaction,
            ParseError::TokenName => ErrorCode::InvalidName,
            ParseError::WebhookUrl => ErrorCode::InvalidUrl,
            ParseError::WebhookEvents => ErrorCode::InvalidEvent,
            ParseError::WebhookRooms => ErrorCode::InvalidRooms,
            ParseError::SearchQuery => ErrorCode::InvalidQuery,
        };
        Self::validation(code, e.to_string())
    }
}

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        match e {
            HubError::UnknownConnection => Self::unknown_connection(),
            HubError::TooManyRooms | HubError::TooManyRoomsForUser(_) => {
                Self::validation(ErrorCode::TooManyRooms, e.to_string())
            }
            HubError::TooManyStreams { .. } => Self::Limited {
                code: ErrorCode::TooManyStreams,
                message: e.to_string().into(),
            },
            HubError::ServerFull => Self::Unavailable(e.to_string().into()),
            HubError::Revoked => Self::unknown_room(),
            HubError::ReplayBacklog => Self::RetryLater {
                code: ErrorCode::ReplayBacklog,
                message: e.to_string().into(),
                retry_after_secs: REPLAY_BACKLOG_RETRY_SECS,
            },
            HubError::History(e) => {
                tracing::warn!(error = ?e, "reading a replay failed; the stream was closed");
                Self::Unavailable("the message history is not answering; reconnect".into())
            }
        }
    }
}

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Gone => Self::unknown_message(),
            WriteError::TooManyReactions => Self::Conflict {
                code: ErrorCode::TooManyReactions,
                message: e.to_string().into(),
            },
            WriteError::Stopped | WriteError::Failed => Self::Unavailable(e.to_string().into()),
        }
    }
}

impl From<ConversationError> for ApiError {
    fn from(e: ConversationError) -> Self {
        match e {
            ConversationError::NotAuthor => Self::Forbidden("only its author may edit a message"),
            ConversationError::Write(e) => e.into(),
            ConversationError::Db(e) => e.into(),
        }
    }
}

/// `Retry-After` of a 429 for a cap (every 429 carries one, as the contract says).
const LIMITED_RETRY_SECS: u64 = 5;

/// `Retry-After` of `replay_backlog`: a stream that reads writes its replay within
/// milliseconds; one that does not is cut by the write timeout.
const REPLAY_BACKLOG_RETRY_SECS: u64 = 1;

/// Every error of every route: `{"error":{"code","message"}}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorBody`].
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// A stable machine code.
    pub code: ErrorCode,
    /// For a person; never internals.
    pub message: &'a str,
}

/// Renders the contract's error body.
pub fn error_json(code: ErrorCode, message: &str) -> HttpResponse {
    HttpResponse::build(code.status()).json(ErrorBody {
        error: ErrorDetail { code, message },
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code().status()
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
        let mut res = error_json(self.code(), &message);
        let retry_after = match self {
            Self::RateLimited { retry_after_secs }
            | Self::Busy { retry_after_secs }
            | Self::RetryLater {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            // A cap frees when one of the caller's own streams closes; a guess, not a promise.
            Self::Limited { .. } => Some(LIMITED_RETRY_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

/// Maps form extractor failures (HTML pages) into the contract.
pub fn form_error(err: UrlencodedError, _req: &HttpRequest) -> actix_web::Error {
    match err {
        UrlencodedError::ContentType => ApiError::UnsupportedMediaType,
        UrlencodedError::Overflow { limit, .. } => ApiError::PayloadTooLarge { limit },
        other => ApiError::validation(ErrorCode::InvalidForm, other.to_string()),
    }
    .into()
}

/// Maps query-string extractor failures into the contract.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation(ErrorCode::InvalidQuery, err.to_string()).into()
}

/// Maps path extractor failures into the contract.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::validation(ErrorCode::InvalidPath, err.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_out_of_reach_is_unavailable_not_a_bug() {
        for e in [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::Io(std::io::ErrorKind::AddrNotAvailable.into()),
        ] {
            let answer = ApiError::from(e).error_response();
            assert_eq!(
                answer.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "a database that does not answer should be a 503, not a 500"
            );
        }
        let bug = ApiError::from(sqlx::Error::RowNotFound).error_response();
        assert_eq!(bug.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// `docs/api.md` lists every code the API can answer, and nothing else.
    #[test]
    fn docs_list_exactly_the_error_codes() {
        let doc = include_str!("../../docs/api.md");
        let section = doc
            .split("<!-- error-codes:start -->")
            .nth(1)
            .and_then(|rest| rest.split("<!-- error-codes:end -->").next())
            .expect("docs/api.md has the error-codes markers");
        let documented: Vec<(String, u16)> = section
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let code = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
                let status = cells.get(2)?.parse().ok()?;
                Some((code.to_owned(), status))
            })
            .collect();
        let actual: Vec<(String, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str().to_owned(), c.status().as_u16()))
            .collect();
        assert_eq!(
            documented, actual,
            "docs/api.md's error-code table must list ErrorCode::ALL, in order, with statuses"
        );
    }

    #[test]
    fn a_store_that_stopped_or_failed_is_503_not_500() {
        for e in [WriteError::Stopped, WriteError::Failed] {
            let e = ApiError::from(e);
            assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE, "{e}");
            assert_eq!(e.code(), ErrorCode::Unavailable);
        }
    }

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("serializes");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::TooManyRooms.as_str(), "too_many_rooms");
    }
}
