//! Deleting an account (`DELETE /api/me`, `DELETE /api/admin/users/{username}`): the
//! account and all that hangs on it go, its streams close, its name is free again, and its
//! messages stay with `user.username: null` wherever a message shows.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Client, TestApp, WAIT, assert_error, spawn_app, spawn_app_with_admin},
    private::{add, admin_user, create, send},
    tokens::{make_token, with_token},
};

/// `DELETE /api/me` with `password`, the raw response.
pub async fn try_delete_me(c: &Client, password: &str) -> reqwest::Response {
    send(
        c,
        Method::DELETE,
        "/api/me",
        json!({ "password": password }),
    )
    .await
}

/// `DELETE /api/me` with the test password, which must succeed.
pub async fn delete_me(c: &Client) {
    let res = try_delete_me(c, "password123").await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 204, "DELETE /api/me: {text}");
}

/// `GET /api/rooms/{room}/messages`, the messages (oldest first).
async fn history(c: &Client, room: &str) -> Vec<Value> {
    let res = c.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(res.status(), 200, "history of {room}");
    let body: Value = res.json().await.expect("history JSON");
    body["messages"].as_array().expect("messages array").clone()
}

/// The message `id` of a history page.
fn find(messages: &[Value], id: i64) -> Value {
    messages
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("message {id} in {messages:?}"))
        .clone()
}

#[tokio::test]
async fn deleting_oneself_takes_the_password_and_frees_the_name() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let old_id = bob.me().await["id"].clone();
    assert_error(
        try_delete_me(&bob, "wrong-password").await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(
        bob.get("/api/me").await.status(),
        200,
        "a wrong password deletes nothing"
    );
    delete_me(&bob).await;
    assert_eq!(
        bob.get("/api/me").await.status(),
        401,
        "its session is gone"
    );
    let again = app.client();
    assert_error(
        again.login("bob", "password123").await,
        401,
        "invalid_credentials",
    )
    .await;
    let res = again.register("Bob", "another-password").await;
    assert_eq!(res.status(), 201, "the name is free again");
    assert_ne!(again.me().await["id"], old_id, "a new account, a new id");
}

#[tokio::test]
async fn deleting_oneself_needs_a_login() {
    let app = spawn_app().await;
    app.user("bob").await;
    let anon = app.client();
    assert_error(
        try_delete_me(&anon, "password123").await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn an_admin_deletes_an_account_by_name_and_an_unknown_one_is_404() {
    let app = spawn_app_with_admin().await;
    let bob = app.user("bob").await;
    let res = app
        .admin(Method::DELETE, "/api/admin/users/BOB")
        .send()
        .await
        .expect("admin delete");
    assert_eq!(res.status(), 204, "an admin deletes bob (any letter case)");
    assert_eq!(
        bob.get("/api/me").await.status(),
        401,
        "bob's session is gone"
    );
    let res = app
        .admin(Method::DELETE, "/api/admin/users/bob")
        .send()
        .await
        .expect("admin delete again");
    assert_error(res, 404, "unknown_user").await;
    let carol = app.user("carol").await;
    let res = send(
        &carol,
        Method::DELETE,
        "/api/admin/users/carol",
        Value::Null,
    )
    .await;
    assert_error(res, 403, "forbidden").await;
}

#[tokio::test]
async fn a_deleted_accounts_messages_stay_with_a_null_username_in_history_replies_and_replay() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let bob_id = bob.me().await["id"].clone();
    let before = alice.say_id("r", "before").await;
    let said = bob.say_id("r", "bob was here").await;
    let res = alice
        .post(
            "/api/rooms/r/messages",
            json!({ "body": "indeed", "reply_to": said }),
        )
        .await;
    assert_eq!(res.status(), 201, "alice replies");
    let reply = res.json::<Value>().await.expect("reply JSON")["message"]["id"].clone();
    delete_me(&bob).await;

    let page = history(&alice, "r").await;
    let kept = find(&page, said);
    assert_eq!(kept["body"], "bob was here", "the message stays: {kept}");
    assert_eq!(
        kept["user"],
        json!({ "id": bob_id, "username": null }),
        "its author is the old id with no name: {kept}"
    );
    let answer = find(&page, reply.as_i64().expect("reply id"));
    assert_eq!(
        answer["reply_to"]["user"],
        json!({ "id": bob_id, "username": null }),
        "a reply shows the deleted author without a name: {answer}"
    );

    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "last_event_id": before, "events": ["message"] }),
        )
        .await;
    assert_eq!(ans["replay"]["complete"], true, "{ans}");
    let replayed = sse.expect_next("message").await.json();
    assert_eq!(
        replayed["id"], said,
        "bob's message is replayed: {replayed}"
    );
    assert_eq!(replayed["user"]["username"], Value::Null, "{replayed}");
}

#[tokio::test]
async fn a_deleted_accounts_reactions_go_with_their_counts_live_and_in_history() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.say_id("r", "react to me").await;
    for (c, emoji) in [(&bob, "👍"), (&alice, "👍"), (&bob, "🎉")] {
        let path = format!("/api/rooms/r/messages/{id}/reactions/{emoji}");
        let res = send(c, Method::PUT, &path, Value::Null).await;
        assert_eq!(res.status(), 200, "{emoji} added");
    }
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    delete_me(&bob).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = sse.expect_next("reaction").await.json();
        assert_eq!(e["action"], "remove", "bob's reactions are taken back: {e}");
        seen.push((e["emoji"].clone(), e["count"].clone()));
    }
    seen.sort_by_key(|(emoji, _)| emoji.to_string());
    assert_eq!(
        seen,
        [(json!("🎉"), json!(0)), (json!("👍"), json!(1))],
        "each with the count it left"
    );
    let m = find(&history(&alice, "r").await, id);
    assert_eq!(
        m["reactions"],
        json!([{ "emoji": "👍", "count": 1, "users": [alice.user_ref().await] }]),
        "history counts only alice: {m}"
    );
}

#[tokio::test]
async fn a_deleted_accounts_streams_and_tokens_stop() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let (_, secret) = make_token(&bob, "script").await;
    let mut sse = bob.listen(&["r"], None).await;
    delete_me(&bob).await;
    assert!(sse.ends_within(WAIT).await, "bob's stream closes");
    let res = with_token(&app, Method::GET, "/api/me", &secret)
        .send()
        .await
        .expect("GET /api/me with a token");
    assert_eq!(res.status(), 401, "its tokens went with it");
}

/// Alice owns private room `team` with bob as a member; then alice's account is deleted.
async fn ownerless_team(app: &TestApp) -> Client {
    let alice = app.user("alice").await;
    app.user("bob").await;
    create(&alice, "team", "private").await;
    add(&alice, "team", "bob", "member").await;
    alice.say_id("team", "from the owner").await;
    delete_me(&alice).await;
    admin_user(app, "root").await
}

#[tokio::test]
async fn a_private_room_whose_owner_is_deleted_keeps_its_members_and_admins_run_it() {
    let app = spawn_app().await;
    let root = ownerless_team(&app).await;
    let bob = app.client();
    assert_eq!(bob.login("bob", "password123").await.status(), 200);
    assert_eq!(
        history(&bob, "team").await.len(),
        1,
        "bob still reads the room"
    );
    let res = root.get("/api/rooms/team/members").await;
    assert_eq!(res.status(), 200, "members listed");
    let body: Value = res.json().await.expect("members JSON");
    let names: Vec<&Value> = body["members"]
        .as_array()
        .expect("members array")
        .iter()
        .map(|m| &m["username"])
        .collect();
    assert_eq!(names, [&json!("bob")], "bob stays, alice is gone: {body}");
    app.user("carol").await;
    add(&root, "team", "carol", "moderator").await;
    let outsider = app.user("dave").await;
    let res = outsider.get("/api/rooms/team/messages").await;
    assert!(
        res.status() == 403 || res.status() == 404,
        "the room stays private: {}",
        res.status()
    );
}
