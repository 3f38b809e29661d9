//! The OpenAPI 3.1 document of the whole HTTP contract, served at `GET /api/openapi.json`.
//!
//! Generated from the code: request and answer types derive `ToSchema`, each handler carries
//! one `#[utoipa::path]` block, and the error machine codes come from [`ErrorCode::ALL`].
//! The contract's conventions that hold for every route are applied here once, by
//! [`Conventions`], rather than repeated on each handler:
//! - every error status answers `{"error":{"code","message"}}`, its `code` one of the
//!   [`ErrorCode`]s with that status (schema `Error<status>`);
//! - a route with a JSON body may answer `400`, `413` and `415`;
//! - a route that needs a session (or the admin token) may answer `401`;
//! - anything else a route answers (`default`) is still in the error shape.

use std::{collections::BTreeMap, sync::LazyLock};

use actix_web::HttpResponse;
use utoipa::{
    Modify, OpenApi, PartialSchema, ToSchema,
    openapi::{
        self, Content, ObjectBuilder, Ref, RefOr, Response, Schema, Type,
        path::{Operation, PathItem},
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};

use crate::{
    domain::{ConnectionId, EventName, RoomName},
    http::error::{ErrorBody, ErrorCode},
};

/// The document. `paths` lists every handler registered in `routes::configure`; the test
/// `documents_every_registered_route` keeps the two lists equal.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "roomcast",
        description = "Multi-room chat streamed over Server-Sent Events. The prose contract \
                       is docs/api.md; this document is generated from the code."
    ),
    paths(
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
        document,
        super::accounts::register,
        super::accounts::login,
        super::accounts::logout,
        super::accounts::me,
        super::accounts::delete_me,
        super::events::open,
        super::events::subscribe,
        super::events::unsubscribe,
        super::rooms::list,
        super::rooms::history,
        super::rooms::post_message,
        super::rooms::post_event,
        super::rooms::presence,
        super::admin::broadcast,
        super::admin::stats,
        super::admin::disconnect,
        super::admin::delete_user,
        super::admin::ban,
        super::admin::unban,
        super::members::create,
        super::members::list,
        super::members::set,
        super::members::remove,
        super::members::delete_message,
        super::conversation::edit,
        super::conversation::react,
        super::conversation::unreact,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::get,
        super::webhooks::delete,
        super::tokens::create,
        super::tokens::list,
        super::tokens::revoke,
        super::readstate::list,
        super::readstate::follow,
        super::readstate::unfollow,
        super::readstate::read,
        super::readstate::search,
        super::pages::chat,
        super::pages::login_form,
        super::pages::login,
        super::pages::register_form,
        super::pages::register,
    ),
    components(schemas(ErrorCode, ErrorBody)),
    modifiers(&Conventions),
    tags(
        (name = "accounts", description = "Register, log in, log out; the session cookie"),
        (name = "stream", description = "The event stream and what a connection receives"),
        (name = "rooms", description = "Messages, custom events, presence"),
        (name = "read state", description = "The room list with unread and mention counts, read markers, search"),
        (name = "admin", description = "An admin's session or the admin bearer token"),
        (name = "tokens", description = "Personal access tokens (`Authorization: Bearer rc_…`), made with a session only"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
        (name = "pages", description = "The browser app's HTML pages and forms"),
    )
)]
pub struct ApiDoc;

/// The security scheme name of the session cookie.
pub const SESSION: &str = "session";
/// The security scheme name of the admin bearer token.
pub const ADMIN_TOKEN: &str = "admin_token";

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    // Serializing a document built from our own types cannot fail; a panic here is a bug
    // in this module, caught by the tests below.
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
});

/// `GET /api/openapi.json`: this document. Public, like the contract it describes.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str())
}

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        code_enum(ErrorCode::ALL.iter().copied()).into()
    }
}

impl ToSchema for ErrorCode {}

/// A string schema for the validated names, which wrap shared strings the derive cannot see.
fn string_schema(description: &str, pattern: Option<&str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .description(Some(description))
        .into()
}

impl PartialSchema for RoomName {
    fn schema() -> RefOr<Schema> {
        string_schema("A room name", Some("^[a-z0-9][a-z0-9_-]{0,63}$"))
    }
}

impl ToSchema for RoomName {}

impl PartialSchema for EventName {
    fn schema() -> RefOr<Schema> {
        string_schema(
            "An event name, built-in or custom",
            Some("^[a-z][a-z0-9_.-]{0,31}$"),
        )
    }
}

impl ToSchema for EventName {}

impl PartialSchema for ConnectionId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Uuid,
            )))
            .description(Some(
                "The id of one open stream, from its `connected` event",
            ))
            .into()
    }
}

impl ToSchema for ConnectionId {}

fn code_enum(codes: impl Iterator<Item = ErrorCode>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(codes.map(ErrorCode::as_str)))
        .description(Some("A stable machine code"))
        .build()
        .into()
}

/// Applies the contract's conventions to every operation; see the module doc.
pub struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut openapi::OpenApi) {
        let by_status = codes_by_status();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "roomcast_session",
                "The session cookie that register and login set",
            ))),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`admin.api_token`; off when not configured"))
                    .build(),
            ),
        );
        for (status, codes) in &by_status {
            components.schemas.insert(
                error_schema_name(*status),
                error_schema(codes.iter().copied()).into(),
            );
        }
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                apply(op, &by_status);
            }
        }
    }
}

fn codes_by_status() -> BTreeMap<u16, Vec<ErrorCode>> {
    let mut map: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for code in ErrorCode::ALL {
        map.entry(code.status().as_u16()).or_default().push(*code);
    }
    map
}

fn error_schema_name(status: u16) -> String {
    format!("Error{status}")
}

fn error_schema(codes: impl Iterator<Item = ErrorCode>) -> Schema {
    let detail = ObjectBuilder::new()
        .property("code", code_enum(codes))
        .property("message", ObjectBuilder::new().schema_type(Type::String))
        .required("code")
        .required("message");
    ObjectBuilder::new()
        .property("error", detail)
        .required("error")
        .build()
        .into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.post.as_mut(),
        item.put.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
    ]
    .into_iter()
    .flatten()
}

fn apply(op: &mut Operation, by_status: &BTreeMap<u16, Vec<ErrorCode>>) {
    let mut implied: Vec<u16> = vec![500];
    if op.request_body.is_some() {
        implied.extend([400, 413, 415]);
    }
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        implied.push(401);
    }
    let responses = &mut op.responses.responses;
    for status in implied {
        responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(Response::new("")));
    }
    for (key, response) in responses.iter_mut() {
        let Some(codes) = key.parse::<u16>().ok().and_then(|s| by_status.get(&s)) else {
            continue;
        };
        let RefOr::T(response) = response else {
            continue;
        };
        if response.description.is_empty() {
            response.description = codes
                .iter()
                .map(|c| format!("`{}`", c.as_str()))
                .collect::<Vec<_>>()
                .join(", ");
        }
        if response.content.is_empty() {
            let schema = Ref::from_schema_name(error_schema_name(codes[0].status().as_u16()));
            response
                .content
                .insert("application/json".into(), Content::new(Some(schema)).into());
        }
    }
    let mut fallback = Response::new("Any other answer is an error in the contract's shape");
    fallback.content.insert(
        "application/json".into(),
        Content::new(Some(Ref::from_schema_name(ErrorBody::name()))).into(),
    );
    responses.insert("default".into(), fallback.into());
}

/// The document as JSON, for the tests.
#[cfg(test)]
fn document_json() -> serde_json::Value {
    serde_json::from_str(&DOCUMENT).expect("the served document is JSON")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::json;

    use super::*;

    /// `(METHOD, path)` of every route `routes::configure` registers, read from its source,
    /// so that adding a route without documenting it fails here.
    fn registered_routes() -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        let mod_rs = include_str!("mod.rs");
        // `configure` registers the top-level routes, then the `/api` scope made of the
        // route groups that follow it in the file.
        let (top, rest) = mod_rs
            .split_once("web::scope(\"/api\")")
            .expect("routes::configure has the /api scope");
        let (scope, groups) = rest
            .split_once("fn account_routes(")
            .expect("the /api route groups follow routes::configure");
        collect_routes(scope, "/api", &mut out);
        let (api, _) = groups
            .split_once("async fn not_found(")
            .expect("not_found follows the route groups");
        collect_routes(top, "", &mut out);
        collect_routes(api, "/api", &mut out);
        collect_routes(include_str!("pages.rs"), "", &mut out);
        out
    }

    /// Finds `web::resource("p")` and `.route("p", …)`, then the methods chained on each
    /// up to the next one.
    fn collect_routes(src: &str, prefix: &str, out: &mut BTreeSet<(String, String)>) {
        let mut starts: Vec<(usize, &str)> = ["web::resource(\"", ".route(\""]
            .iter()
            .flat_map(|m| src.match_indices(m).map(move |(i, _)| (i, *m)))
            .collect();
        starts.sort_unstable();
        for (n, (at, marker)) in starts.iter().enumerate() {
            let rest = &src[at + marker.len()..];
            let path = &rest[..rest.find('"').expect("a closing quote")];
            let end = starts.get(n + 1).map_or(src.len(), |(next, _)| *next);
            let chain = &src[*at..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                if chain.contains(&format!(".{method}("))
                    || chain.contains(&format!("web::{method}()"))
                {
                    out.insert((method.to_uppercase(), format!("{prefix}{path}")));
                }
            }
        }
    }

    fn documented_routes(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths is an object") {
            for method in item.as_object().expect("a path item is an object").keys() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
        out
    }

    #[test]
    fn documents_every_registered_route() {
        let mut registered = registered_routes();
        // Between the nodes of a cluster only (their bearer token); not part of the API.
        registered.remove(&("POST".into(), "/internal/cluster".into()));
        assert!(
            registered.contains(&("POST".into(), "/api/subscribe".into())),
            "the route reader found no /api routes: {registered:?}"
        );
        let documented = documented_routes(&document_json());
        assert_eq!(
            documented, registered,
            "the OpenAPI paths must be exactly the routes registered in routes::configure"
        );
    }

    #[test]
    fn every_error_code_is_in_the_error_schema() {
        let doc = document_json();
        let listed = &doc["components"]["schemas"]["ErrorCode"]["enum"];
        let expected: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            listed,
            &json!(expected),
            "ErrorCode schema vs ErrorCode::ALL"
        );
    }

    #[test]
    fn each_error_status_allows_only_its_own_codes() {
        let doc = document_json();
        let codes = &doc["components"]["schemas"]["Error401"]["properties"]["error"]["properties"]
            ["code"]["enum"];
        assert_eq!(
            codes,
            &json!(["unauthorized", "invalid_credentials"]),
            "Error401 must list exactly the codes answered with 401"
        );
    }

    #[test]
    fn every_error_response_has_the_error_shape() {
        let doc = document_json();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for (status, response) in op["responses"].as_object().expect("responses") {
                    let is_error = status == "default" || status.starts_with(['4', '5']);
                    if !is_error {
                        continue;
                    }
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    let expected = if status == "default" {
                        "#/components/schemas/ErrorBody".to_owned()
                    } else {
                        format!("#/components/schemas/Error{status}")
                    };
                    assert_eq!(
                        schema,
                        &json!(expected),
                        "{method} {path} {status} must answer the error shape"
                    );
                }
            }
        }
    }

    #[test]
    fn a_json_body_implies_its_errors_and_a_session_implies_401() {
        let doc = document_json();
        let subscribe = &doc["paths"]["/api/subscribe"]["post"]["responses"];
        for status in ["400", "401", "413", "415"] {
            assert!(
                subscribe.get(status).is_some(),
                "POST /api/subscribe must document {status}"
            );
        }
        let healthz = &doc["paths"]["/healthz"]["get"]["responses"];
        assert!(
            healthz.get("401").is_none(),
            "a public route must not document 401"
        );
    }

    #[test]
    fn security_schemes_are_the_cookie_and_the_bearer_token() {
        let doc = document_json();
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[SESSION]["in"], "cookie");
        assert_eq!(schemes[SESSION]["name"], "roomcast_session");
        assert_eq!(schemes[ADMIN_TOKEN]["scheme"], "bearer");
    }
}
