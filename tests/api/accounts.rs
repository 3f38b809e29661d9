//! Accounts and the session: register, login, me, logout, restart survival.

use serde_json::json;

use crate::helpers::{assert_error, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_answers_201_with_the_user_and_logs_in() {
    let app = spawn_app().await;
    let c = app.client();
    let res = c.register("alice_1", "password123").await;
    assert_eq!(res.status(), 201);
    let cookie = res
        .headers()
        .get("set-cookie")
        .expect("a session cookie")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "cookie not HttpOnly: {cookie}");
    assert!(
        cookie.contains("SameSite=Lax"),
        "cookie not SameSite=Lax: {cookie}"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    let user = &body["user"];
    assert_eq!(user["username"], "alice_1");
    assert_eq!(user["role"], "user");
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        user.as_object().unwrap().len(),
        3,
        "User has id, username, role: {user}"
    );

    let me: serde_json::Value = c.get("/api/me").await.json().await.unwrap();
    assert_eq!(me["user"], *user, "/api/me after register");
}

#[tokio::test]
async fn usernames_are_unique_without_regard_to_case() {
    let app = spawn_app().await;
    app.user("Alice").await;
    let res = app.client().register("aLiCe", "password123").await;
    assert_error(res, 409, "username_taken").await;
}

#[tokio::test]
async fn register_validates_username_and_password() {
    let app = spawn_app().await;
    let c = app.client();
    assert_error(
        c.register("ab", "password123").await,
        400,
        "invalid_username",
    )
    .await;
    assert_error(
        c.register("bad name", "password123").await,
        400,
        "invalid_username",
    )
    .await;
    assert_error(c.register("alice", "short").await, 400, "invalid_password").await;
    assert_error(
        c.register("alice", &"x".repeat(129)).await,
        400,
        "invalid_password",
    )
    .await;
    assert_error(c.get("/api/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn login_sets_a_session_and_is_case_insensitive() {
    let app = spawn_app().await;
    app.user("bob").await;
    let c = app.client();
    let res = c.login("BOB", "password123").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"]["username"], "bob");
    assert_eq!(c.get("/api/me").await.status(), 200);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_the_same() {
    let app = spawn_app().await;
    app.user("carol").await;
    let c = app.client();
    let wrong = assert_error(
        c.login("carol", "wrong-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_error(
        c.login("nobody", "wrong-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown, "the two failures must not be told apart");
}

#[tokio::test]
async fn logout_revokes_the_cookie() {
    let app = spawn_app().await;
    let c = app.user("dave").await;
    // Keep a copy of the cookie as it was before logout.
    let cookie = c.cookie();
    let res = c.post("/api/logout", json!(null)).await;
    assert_eq!(res.status(), 204);
    assert_error(c.get("/api/me").await, 401, "unauthorized").await;
    let replayed = c.get_with_cookie("/api/me", &cookie).await;
    assert_error(replayed, 401, "unauthorized").await;
}

#[tokio::test]
async fn logout_without_a_session_is_401() {
    let app = spawn_app().await;
    assert_error(
        app.client().post("/api/logout", json!(null)).await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn login_renews_the_session_id() {
    let app = spawn_app().await;
    let c = app.user("erin").await;
    let before = c.cookie();
    assert_eq!(c.login("erin", "password123").await.status(), 200);
    let after = c.cookie();
    assert_ne!(before, after, "login must issue a new session cookie");
    let stale = c.get_with_cookie("/api/me", &before).await;
    assert_error(stale, 401, "unauthorized").await;
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let app = spawn_app().await;
    let c = app.user("frank").await;
    let cookie = c.cookie();
    // A second server on the same data directory and database: the same cookie works.
    let again = spawn_app_with(|s| {
        s.server.data_dir = app.settings.server.data_dir.clone();
        s.database.url = app.settings.database.url.clone();
    })
    .await;
    let res = again.client().get_with_cookie("/api/me", &cookie).await;
    assert_eq!(res.status(), 200, "the cookie must survive a restart");
}

#[tokio::test]
async fn the_cookie_is_secure_when_configured() {
    let app = spawn_app_with(|s| s.session.secure = Some(true)).await;
    let res = app.client().register("gina", "password123").await;
    let cookie = res.headers().get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("Secure"), "cookie lacks Secure: {cookie}");
}
