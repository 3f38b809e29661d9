//! [`Json`]: the body extractor of every JSON route. Unlike actix's, it accepts exactly one
//! JSON object (serde's derive would take `["alice","pw"]` for a struct, by position), and
//! its errors are the contract's, worded for people rather than in Rust type names.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, error::PayloadError, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::{
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

/// A JSON object body, deserialized into `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = req.mime_type().ok().flatten().is_some_and(|m| {
            m.subtype().as_str() == "json" || m.suffix().is_some_and(|s| s.as_str() == "json")
        });
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(16 * 1024, |s| s.settings.limits.body_bytes);
        let declared = req
            .headers()
            .get(actix_web::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType);
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            let mut body = BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| payload_error(e, limit))?;
                if body.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge { limit });
                }
                body.extend_from_slice(&chunk);
            }
            parse_object(&body).map(Json)
        })
    }
}

fn payload_error(e: PayloadError, limit: usize) -> ApiError {
    match e {
        PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
        other => ApiError::validation(
            ErrorCode::InvalidJson,
            format!("the request body could not be read: {other}"),
        ),
    }
}

/// Parses `body` as one JSON object into `T`.
pub fn parse_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        // Only on the error path: is it JSON of the wrong kind, or not JSON at all?
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ApiError::validation(
                ErrorCode::InvalidRequest,
                "the request body must be one JSON object",
            ),
            Err(e) => ApiError::validation(ErrorCode::InvalidJson, humane(&e)),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        // serde reports some shape errors (e.g. `null` for an enum) as syntax errors; only
        // a body that is not JSON at all is `invalid_json`.
        let well_formed = || serde_json::from_slice::<IgnoredAny>(body).is_ok();
        let code = if e.is_data() || well_formed() {
            ErrorCode::InvalidRequest
        } else {
            ErrorCode::InvalidJson
        };
        ApiError::validation(code, humane(&e))
    })
}

/// serde's message with Rust's type names replaced by JSON's.
fn humane(e: &serde_json::Error) -> String {
    const WORDS: [(&str, &str); 9] = [
        ("expected u32", "expected a whole number of 0 or more"),
        ("expected u64", "expected a whole number of 0 or more"),
        ("expected usize", "expected a whole number of 0 or more"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected an object"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: object"),
    ];
    let mut text = e.to_string();
    for (rust, json) in WORDS {
        text = text.replace(rust, json);
    }
    text
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Creds {
        username: String,
        password: String,
    }

    fn code(body: &str) -> ErrorCode {
        parse_object::<Creds>(body.as_bytes())
            .expect_err(body)
            .code()
    }

    #[test]
    fn only_an_object_is_a_body() {
        for body in [
            r#"["alice","password123"]"#,
            r#""alice""#,
            "5",
            "null",
            " [ ] ",
        ] {
            assert_eq!(code(body), ErrorCode::InvalidRequest, "{body}");
        }
        assert!(parse_object::<Creds>(br#" {"username":"a","password":"b"}"#).is_ok());
    }

    #[test]
    fn broken_json_is_invalid_json() {
        for body in ["", "{", "nope", "[1,"] {
            assert_eq!(code(body), ErrorCode::InvalidJson, "{body:?}");
        }
    }

    #[test]
    fn messages_name_json_types_not_rust_ones() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct N {
            n: u32,
        }
        let e = parse_object::<N>(br#"{"n":-1}"#).expect_err("negative");
        assert!(!e.to_string().contains("u32"), "{e}");
        let e = parse_object::<Creds>(br#"{"username":[1],"password":"x"}"#).expect_err("array");
        assert!(e.to_string().contains("array"), "{e}");
    }
}
