//! A JSON request body is one object: valid JSON of another kind (an array, a string, a
//! number, `null`) is `400 invalid_request` on every JSON route, and changes nothing.
//!
//! Each array case is laid out like the route's fields, in order, since that is the shape a
//! lenient parser would take for the object.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Client, TestApp, assert_error, spawn_app, spawn_app_with_admin};

/// The non-object bodies every route is tried with: three scalars, then `array` (last, so
/// a route that takes arrays still shows whether it refuses the scalars).
fn not_objects(array: Value) -> [Value; 4] {
    [json!("a string"), json!(42), Value::Null, array]
}

/// POSTs each of `bodies` to `path` as `client` and expects `400 invalid_request`.
async fn refused(client: &Client, path: &str, bodies: [Value; 4]) {
    for body in bodies {
        let shown = body.to_string();
        let res = client.post(path, body).await;
        let status = res.status();
        assert_eq!(
            status, 400,
            "POST {path} with the body {shown} was not refused"
        );
        assert_error(res, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn register_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let c = app.client();
    refused(
        &c,
        "/api/register",
        not_objects(json!(["alice", "password123"])),
    )
    .await;
    assert_eq!(
        c.register("alice", "password123").await.status(),
        201,
        "a refused body created alice"
    );
}

#[tokio::test]
async fn login_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    app.user("alice").await;
    let c = app.client();
    refused(
        &c,
        "/api/login",
        not_objects(json!(["alice", "password123"])),
    )
    .await;
    assert_error(c.get("/api/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn subscribe_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    let array = json!([sse.connection_id, ["r"], null, null, null]);
    refused(&alice, "/api/subscribe", not_objects(array)).await;
    assert!(
        alice.rooms().await.is_empty(),
        "a refused body joined a room"
    );
}

#[tokio::test]
async fn unsubscribe_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let sse = alice.events().await;
    alice.subscribe(&sse, &["r"]).await;
    let array = json!([sse.connection_id, ["r"]]);
    refused(&alice, "/api/unsubscribe", not_objects(array)).await;
    assert_eq!(
        alice.presence_names("r").await,
        ["alice"],
        "a refused body left the room"
    );
}

#[tokio::test]
async fn posting_a_message_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    refused(&alice, "/api/rooms/r/messages", not_objects(json!(["hi"]))).await;
    let res = alice.get("/api/rooms/r/messages").await;
    assert_eq!(res.status(), 200, "reading the history");
    let page: Value = res.json().await.expect("history answer");
    assert_eq!(
        page["messages"],
        json!([]),
        "a refused body stored a message"
    );
}

#[tokio::test]
async fn a_custom_event_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["typing", "sentinel"])).await;
    refused(
        &alice,
        "/api/rooms/r/events",
        not_objects(json!(["typing", { "on": true }])),
    )
    .await;
    alice.send_custom("r", "sentinel", json!(1)).await;
    let e = sse.next_event().await.expect("the sentinel");
    assert_eq!(e.event, "sentinel", "a refused body was sent: {e:?}");
}

/// `POST /api/admin/broadcast` with the admin token and `body`.
async fn admin_broadcast(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(Method::POST, "/api/admin/broadcast")
        .json(&body)
        .send()
        .await
        .expect("POST /api/admin/broadcast")
}

#[tokio::test]
async fn admin_broadcast_refuses_a_body_that_is_not_an_object() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let mut sse = alice.events().await;
    for body in not_objects(json!(["maintenance"])) {
        let shown = body.to_string();
        let res = admin_broadcast(&app, body).await;
        let status = res.status();
        assert_eq!(status, 400, "a broadcast of {shown} was not refused");
        assert_error(res, 400, "invalid_request").await;
    }
    let sentinel = app.broadcast("sentinel").await;
    let e = sse.expect_next("broadcast").await;
    assert_eq!(e.json(), sentinel, "a refused body was broadcast first");
}
