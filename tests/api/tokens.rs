//! Personal access tokens: made and revoked with a session only, `Bearer rc_…` on every user
//! route and the stream, revoked at once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Client, TestApp, WAIT, assert_error, open_stream, spawn_app, spawn_app_with_admin},
    sse::Sse,
};

/// `POST /api/me/tokens` named `name`, which must succeed: `(token, secret)`.
pub async fn make_token(c: &Client, name: &str) -> (Value, String) {
    let res = c.post("/api/me/tokens", json!({ "name": name })).await;
    assert_eq!(res.status(), 201, "making token {name}");
    let body: Value = res.json().await.expect("token answer");
    let secret = body["secret"].as_str().expect("a secret").to_owned();
    (body["token"].clone(), secret)
}

/// A request to `path` with `Authorization: Bearer <secret>` and no cookie.
pub fn with_token(
    app: &TestApp,
    method: Method,
    path: &str,
    secret: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .request(method, format!("{}{path}", app.base))
        .bearer_auth(secret)
}

/// Opens the stream with a token and reads its `connected` event.
pub async fn token_stream(app: &TestApp, secret: &str) -> Sse {
    open_stream(with_token(app, Method::GET, "/api/events", secret)).await
}

async fn tokens_of(c: &Client) -> Vec<Value> {
    let res = c.get("/api/me/tokens").await;
    assert_eq!(res.status(), 200, "GET /api/me/tokens");
    let body: Value = res.json().await.expect("tokens answer");
    body["tokens"].as_array().expect("tokens array").clone()
}

#[tokio::test]
async fn a_new_token_shows_its_secret_once_and_lists_newest_first_without_it() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (first, secret) = make_token(&alice, "laptop script").await;
    assert!(secret.starts_with("rc_"), "secret {secret}");
    assert_eq!(first["name"], "laptop script");
    assert!(first["last_used_at"].is_null(), "never used yet: {first}");
    assert_eq!(
        first.as_object().map(|o| o.len()),
        Some(4),
        "Token is id, name, created_at, last_used_at: {first}"
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (second, _) = make_token(&alice, "ci").await;
    let listed = tokens_of(&alice).await;
    let ids: Vec<&Value> = listed.iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, [&second["id"], &first["id"]], "newest first");
    let text = serde_json::to_string(&listed).expect("json");
    assert!(!text.contains(&secret), "a listing carries no secret");
    assert!(
        !text.contains("secret"),
        "a listing carries no secret field"
    );
}

#[tokio::test]
async fn a_token_acts_as_its_user_without_a_cookie() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let me = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET /api/me");
    assert_eq!(me.status(), 200, "a token is a way in");
    let me: Value = me.json().await.expect("me");
    assert_eq!(me["user"]["username"], "alice");
    let posted = with_token(&app, Method::POST, "/api/rooms/general/messages", &secret)
        .json(&json!({ "body": "from a script" }))
        .send()
        .await
        .expect("POST message");
    assert_eq!(posted.status(), 201, "posting with a token");
    let posted: Value = posted.json().await.expect("message");
    assert_eq!(posted["message"]["user"]["username"], "alice");
}

#[tokio::test]
async fn a_token_opens_a_stream_subscribes_and_receives() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let mut sse = token_stream(&app, &secret).await;
    let res = with_token(&app, Method::POST, "/api/subscribe", &secret)
        .json(&json!({ "connection_id": sse.connection_id, "rooms": ["general"], "events": ["message"] }))
        .send()
        .await
        .expect("subscribe");
    assert_eq!(
        res.status(),
        200,
        "subscribing a token's stream with the token"
    );
    bob.say("general", "hello bot").await;
    let got = sse.expect("message").await;
    assert_eq!(got.json()["body"], "hello bot");
}

#[tokio::test]
async fn token_routes_need_a_session_not_a_token() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (token, secret) = make_token(&alice, "bot").await;
    for (method, path) in [
        (Method::POST, "/api/me/tokens".to_owned()),
        (Method::GET, "/api/me/tokens".to_owned()),
        (
            Method::DELETE,
            format!("/api/me/tokens/{}", token["id"].as_str().expect("id")),
        ),
    ] {
        let mut req = with_token(&app, method.clone(), &path, &secret);
        if method == Method::POST {
            req = req.json(&json!({ "name": "minted" }));
        }
        let res = req.send().await.expect("request");
        assert_error(res, 401, "unauthorized").await;
    }
    assert_eq!(
        tokens_of(&alice).await.len(),
        1,
        "a token minted nothing and deleted nothing"
    );
    assert_error(
        app.client().get("/api/me/tokens").await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn a_revoked_token_stops_at_once_and_its_stream_closes() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (token, secret) = make_token(&alice, "bot").await;
    let mut sse = token_stream(&app, &secret).await;
    let mut own = alice.events().await;
    let id = token["id"].as_str().expect("id");
    let res = alice
        .http
        .delete(format!("{}/api/me/tokens/{id}", app.base))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(res.status(), 204, "revoking");
    assert!(
        sse.ends_within(WAIT).await,
        "the token's stream closes with it"
    );
    let me = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET /api/me");
    assert_error(me, 401, "unauthorized").await;
    own.expect_silence(Duration::from_millis(300)).await;
    assert!(own.end.is_none(), "the session's own stream stays open");
    let again = alice
        .http
        .delete(format!("{}/api/me/tokens/{id}", app.base))
        .send()
        .await
        .expect("DELETE");
    assert_error(again, 404, "unknown_token").await;
}

#[tokio::test]
async fn another_users_token_or_a_made_up_id_is_unknown() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mallory = app.user("mallory").await;
    let (token, secret) = make_token(&alice, "bot").await;
    let id = token["id"].as_str().expect("id");
    for path in [
        format!("/api/me/tokens/{id}"),
        "/api/me/tokens/00000000-0000-0000-0000-000000000000".to_owned(),
        "/api/me/tokens/not-a-uuid".to_owned(),
    ] {
        let res = mallory
            .http
            .delete(format!("{}{path}", app.base))
            .send()
            .await
            .expect("DELETE");
        assert_error(res, 404, "unknown_token").await;
    }
    let still = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET");
    assert_eq!(still.status(), 200, "alice's token still works");
}

#[tokio::test]
async fn a_bad_token_is_401_even_beside_a_valid_cookie() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = alice
        .http
        .get(format!("{}/api/me", app.base))
        .bearer_auth("rc_0000000000000000000000000000000000000000000000000000000000000000")
        .send()
        .await
        .expect("GET");
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_banned_users_token_is_403_and_its_stream_closes() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let mut sse = token_stream(&app, &secret).await;
    let ban = app
        .admin(Method::POST, "/api/admin/users/alice/ban")
        .send()
        .await
        .expect("ban");
    assert_eq!(ban.status(), 200, "ban");
    assert!(
        sse.ends_within(WAIT).await,
        "a ban closes the token's streams"
    );
    let me = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET");
    assert_error(me, 403, "account_banned").await;
}

#[tokio::test]
async fn token_names_are_one_to_sixty_four_characters() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for name in [String::new(), "   ".to_owned(), "x".repeat(65)] {
        let res = alice.post("/api/me/tokens", json!({ "name": name })).await;
        assert_error(res, 400, "invalid_name").await;
    }
    make_token(&alice, &"é".repeat(64)).await;
}

#[tokio::test]
async fn a_user_holds_at_most_the_configured_number_of_tokens() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let cap = app.settings.tokens.per_user;
    for i in 0..cap {
        make_token(&alice, &format!("t{i}")).await;
    }
    let res = alice
        .post("/api/me/tokens", json!({ "name": "one more" }))
        .await;
    assert_error(res, 409, "too_many_tokens").await;
    assert_eq!(
        tokens_of(&alice).await.len(),
        cap,
        "nothing stored past the cap"
    );
}

#[tokio::test]
async fn a_token_request_skips_the_cross_site_check_a_cookie_request_gets() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let res = with_token(&app, Method::POST, "/api/rooms/general/messages", &secret)
        .header("origin", "http://elsewhere.example")
        .json(&json!({ "body": "from a script" }))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        res.status(),
        201,
        "a token request is a script's, whatever its Origin"
    );
    let res = alice
        .http
        .post(format!("{}/api/rooms/general/messages", app.base))
        .header("origin", "http://elsewhere.example")
        .json(&json!({ "body": "from a page elsewhere" }))
        .send()
        .await
        .expect("POST");
    assert_error(res, 403, "forbidden").await;
}

#[tokio::test]
async fn last_used_at_is_set_by_a_use() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let res = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    let used = &tokens_of(&alice).await[0];
    assert!(
        used["last_used_at"].is_string(),
        "a use is recorded: {used}"
    );
}

#[tokio::test]
async fn last_used_at_is_written_at_most_once_per_interval() {
    if crate::helpers::single_node_only("each node keeps its own write throttle") {
        return;
    }
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let (_, secret) = make_token(&alice, "bot").await;
    let use_it = || async {
        let res = with_token(&app, Method::GET, "/api/me", &secret)
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status(), 200);
    };
    use_it().await;
    let first = tokens_of(&alice).await[0]["last_used_at"].clone();
    tokio::time::sleep(Duration::from_millis(20)).await;
    use_it().await;
    let second = tokens_of(&alice).await[0]["last_used_at"].clone();
    assert_eq!(
        first, second,
        "a second use within the interval writes nothing"
    );
}

#[tokio::test]
async fn an_admins_token_has_the_admins_rights() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    app.db
        .set_role(
            "root",
            roomcast::domain::Role::Admin,
            roomcast::db::AppliedBy::Servers,
        )
        .await
        .expect("making root an admin");
    let (_, secret) = make_token(&root, "ops").await;
    let res = with_token(&app, Method::GET, "/api/admin/stats", &secret)
        .send()
        .await
        .expect("GET");
    assert_eq!(
        res.status(),
        200,
        "an admin's token reaches the admin routes"
    );
    let plain = app.user("plain").await;
    let (_, plain_secret) = make_token(&plain, "x").await;
    let res = with_token(&app, Method::GET, "/api/admin/stats", &plain_secret)
        .send()
        .await
        .expect("GET");
    assert_error(res, 403, "forbidden").await;
}
