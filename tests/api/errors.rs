//! Every error class of the contract, with its exact status, code and shape.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let app = spawn_app().await;
    let res = app
        .client()
        .http
        .post(format!("{}/api/login", app.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_error(res, 400, "invalid_json").await;
}

#[tokio::test]
async fn json_of_the_wrong_shape_is_400_invalid_request() {
    let app = spawn_app().await;
    let res = app
        .client()
        .post("/api/login", json!({ "username": 5 }))
        .await;
    assert_error(res, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_missing_session_is_401() {
    let app = spawn_app().await;
    assert_error(app.client().get("/api/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let res = app
        .client()
        .http
        .post(format!("{}/api/login", app.base))
        .header("content-type", "text/plain")
        .body(r#"{"username":"a","password":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_error(res, 415, "unsupported_media_type").await;
}

#[tokio::test]
async fn a_body_over_the_cap_is_413() {
    let app = spawn_app_with(|s| s.limits.body_bytes = 2048).await;
    let res = app
        .client()
        .post(
            "/api/register",
            json!({ "username": "x".repeat(3000), "password": "p" }),
        )
        .await;
    assert_error(res, 413, "payload_too_large").await;
}

#[tokio::test]
async fn an_unknown_route_is_404_not_found() {
    let app = spawn_app().await;
    assert_error(app.client().get("/api/nope").await, 404, "not_found").await;
    assert_error(app.client().get("/nope/at/all").await, 404, "not_found").await;
}

#[tokio::test]
async fn a_wrong_method_is_405() {
    let app = spawn_app().await;
    let res = app
        .client()
        .http
        .put(format!("{}/api/me", app.base))
        .send()
        .await
        .unwrap();
    assert_error(res, 405, "method_not_allowed").await;
    let res = app.client().get("/api/login").await;
    assert_error(res, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let res = app.client().get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let res = app.client().get("/api/me").await;
    let id = res.headers().get("x-request-id").expect("x-request-id");
    assert!(uuid::Uuid::parse_str(id.to_str().unwrap()).is_ok());
}

#[tokio::test]
async fn a_500_carries_no_internals() {
    let app = spawn_app().await;
    let c = app.user("alice").await;
    app.drop_messages_table().await;

    // A failed read is a bug (500); a failed write is the store refusing (503, retry).
    for (res, status, code) in [
        (c.get("/api/rooms/x/messages").await, 500, "internal"),
        (
            c.post("/api/rooms/x/messages", json!({ "body": "hi" }))
                .await,
            503,
            "unavailable",
        ),
    ] {
        let message = assert_error(res, status, code).await.to_lowercase();
        for leak in [
            "sqlite",
            "postgres",
            "relation",
            "sqlx",
            "table",
            "messages",
            "select",
            "insert",
            "no such",
            "error returned",
            ".rs",
            "database",
        ] {
            assert!(
                !message.contains(leak),
                "a 500 message leaks internals ({leak:?}): {message:?}"
            );
        }
    }
}
