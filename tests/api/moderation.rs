//! Moderation: deleting messages (who may, `message_deleted` live and on resume, history
//! without the deleted message), bans and unbans, and the newly reserved event names.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, assert_error, eventually, spawn_app, spawn_app_with_admin},
    private::{add, admin_user, assert_forbidden, create, delete_message, send, until_sentinel},
    process::operator,
};

/// Ids of `GET /api/rooms/{room}/messages`, as `c` reads them.
async fn history_ids(c: &crate::helpers::Client, room: &str) -> Vec<i64> {
    let res = c.get(&format!("/api/rooms/{room}/messages")).await;
    assert_eq!(res.status(), 200, "history of {room}");
    let body: Value = res.json().await.expect("history answer");
    body["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("messages array in {body}"))
        .iter()
        .map(|m| m["id"].as_i64().expect("numeric message id"))
        .collect()
}

/// `path` with the admin bearer token, the raw response.
async fn as_admin_token(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    app.admin(method.clone(), path)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// Asserts a `204` from a deletion, saying who was refused.
async fn assert_deleted(res: reqwest::Response, who: &str) {
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 204, "{who} may delete this message (body: {text})");
}

// ---- who may delete ----

#[tokio::test]
async fn the_author_deletes_its_message_in_an_implicit_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let keep = alice.say_id("r", "keep").await;
    let gone = alice.say_id("r", "oops").await;
    assert_deleted(delete_message(&alice, "r", gone).await, "the author").await;
    assert_eq!(
        history_ids(&alice, "r").await,
        [keep],
        "history still shows the deleted message"
    );
}

#[tokio::test]
async fn another_user_cannot_delete_in_an_implicit_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = alice.say_id("r", "mine").await;
    assert_forbidden(delete_message(&bob, "r", id).await).await;
    assert_eq!(
        history_ids(&alice, "r").await,
        [id],
        "a refused delete removed it"
    );
}

#[tokio::test]
async fn the_owner_deletes_any_message_in_its_created_room() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "square", "public").await;
    let id = bob.say_id("square", "spam").await;
    assert_deleted(delete_message(&owner, "square", id).await, "the owner").await;
}

#[tokio::test]
async fn a_moderator_deletes_any_message_in_a_created_room() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    create(&owner, "square", "public").await;
    add(&owner, "square", "carol", "moderator").await;
    let id = bob.say_id("square", "spam").await;
    assert_deleted(delete_message(&carol, "square", id).await, "a moderator").await;
}

#[tokio::test]
async fn a_plain_member_cannot_delete_others_messages_in_a_created_room() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "club", "private").await;
    add(&owner, "club", "bob", "member").await;
    let id = owner.say_id("club", "owner's").await;
    assert_forbidden(delete_message(&bob, "club", id).await).await;
}

#[tokio::test]
async fn a_moderator_of_another_room_cannot_delete_here() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    create(&owner, "square", "public").await;
    create(&owner, "plaza", "public").await;
    add(&owner, "plaza", "carol", "moderator").await;
    let id = bob.say_id("square", "not yours").await;
    assert_forbidden(delete_message(&carol, "square", id).await).await;
}

#[tokio::test]
async fn an_admin_user_deletes_anywhere() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let id = bob.say_id("r", "whatever").await;
    let admin = admin_user(&app, "root").await;
    assert_deleted(delete_message(&admin, "r", id).await, "an admin user").await;
}

#[tokio::test]
async fn the_admin_token_deletes_anywhere() {
    let app = spawn_app_with_admin().await;
    let bob = app.user("bob").await;
    let id = bob.say_id("r", "whatever").await;
    let res = as_admin_token(&app, Method::DELETE, &format!("/api/rooms/r/messages/{id}")).await;
    assert_deleted(res, "the admin bearer token").await;
}

// ---- 404 unknown_message ----

#[tokio::test]
async fn deleting_an_id_that_never_existed_is_404_unknown_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "one").await;
    let res = delete_message(&alice, "r", id + 1000).await;
    assert_error(res, 404, "unknown_message").await;
}

#[tokio::test]
async fn deleting_a_message_twice_is_404_unknown_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("r", "once").await;
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;
    assert_error(
        delete_message(&alice, "r", id).await,
        404,
        "unknown_message",
    )
    .await;
}

#[tokio::test]
async fn deleting_a_message_through_another_room_is_404_unknown_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let id = alice.say_id("a", "in a").await;
    assert_error(
        delete_message(&alice, "b", id).await,
        404,
        "unknown_message",
    )
    .await;
    assert_eq!(
        history_ids(&alice, "a").await,
        [id],
        "the message was deleted anyway"
    );
}

#[tokio::test]
async fn deleting_a_broadcast_id_is_404_unknown_message() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    alice.say("r", "so the room exists").await;
    let b = app.broadcast("not a message").await["id"]
        .as_i64()
        .expect("broadcast id");
    let res = as_admin_token(&app, Method::DELETE, &format!("/api/rooms/r/messages/{b}")).await;
    assert_error(res, 404, "unknown_message").await;
}

#[tokio::test]
async fn deleting_the_id_of_a_message_deleted_event_is_404_unknown_message() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "x").await;
    sse.expect_next("message").await;
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;
    let event_id = sse.expect_next("message_deleted").await.id_num();
    let res = delete_message(&alice, "r", event_id).await;
    assert_error(res, 404, "unknown_message").await;
}

// ---- message_deleted live ----

#[tokio::test]
async fn a_deletion_goes_live_as_message_deleted_to_message_subscribers() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut sse = bob.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "oops").await;
    assert_eq!(
        sse.expect_next("message").await.id_num(),
        id,
        "the message before its deletion"
    );
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;

    let e = sse.expect_next("message_deleted").await;
    let new_id = e.id_num();
    assert!(
        new_id > id,
        "the event's id {new_id} comes after the message's {id}"
    );
    assert_eq!(
        e.json(),
        json!({ "id": new_id, "room": "r", "message_id": id, "by": alice.user_ref().await }),
        "message_deleted data"
    );
}

#[tokio::test]
async fn message_deleted_shares_the_message_id_sequence() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut sse = alice.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "oops").await;
    sse.expect_next("message").await;
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;
    let deleted = sse.expect_next("message_deleted").await.id_num();
    let next = alice.say_id("other", "after").await;
    assert!(
        next > deleted,
        "the next message id {next} must come after the message_deleted id {deleted}"
    );
}

#[tokio::test]
async fn message_deleted_skips_connections_that_do_not_receive_messages() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut typing = bob.listen(&["r"], Some(&["typing"])).await;
    let mut elsewhere = bob.listen(&["other"], Some(&["message"])).await;
    let id = alice.say_id("r", "oops").await;
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;
    for (what, sse) in [
        ("typing only", &mut typing),
        ("another room", &mut elsewhere),
    ] {
        let seen = until_sentinel(&app, sse).await;
        assert!(seen.is_empty(), "the {what} connection got: {seen:?}");
    }
}

#[tokio::test]
async fn a_deletion_by_the_admin_token_has_by_null() {
    let app = spawn_app_with_admin().await;
    let bob = app.user("bob").await;
    let mut sse = bob.listen(&["r"], Some(&["message"])).await;
    let id = bob.say_id("r", "x").await;
    sse.expect_next("message").await;
    let res = as_admin_token(&app, Method::DELETE, &format!("/api/rooms/r/messages/{id}")).await;
    assert_deleted(res, "the admin bearer token").await;
    let data = sse.expect_next("message_deleted").await.json();
    assert_eq!(data["by"], Value::Null, "`by` for the bearer token: {data}");
    assert_eq!(data["message_id"], id, "message_deleted data: {data}");
}

#[tokio::test]
async fn a_deletion_by_a_moderator_names_the_moderator() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    create(&owner, "square", "public").await;
    add(&owner, "square", "carol", "moderator").await;
    let mut sse = owner.listen(&["square"], Some(&["message"])).await;
    let id = bob.say_id("square", "spam").await;
    sse.expect_next("message").await;
    assert_deleted(delete_message(&carol, "square", id).await, "a moderator").await;
    let data = sse.expect_next("message_deleted").await.json();
    assert_eq!(
        data["by"],
        carol.user_ref().await,
        "message_deleted data: {data}"
    );
}

// ---- message_deleted on resume, history without the message ----

#[tokio::test]
async fn message_deleted_is_replayed_on_resume() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let sse = bob.listen(&["r"], Some(&["message"])).await;
    let id = alice.say_id("r", "seen, then deleted").await;
    drop(sse);
    assert_deleted(delete_message(&alice, "r", id).await, "the author").await;

    let mut sse = bob.events().await;
    let ans = bob
        .subscribe_with(&sse, json!({ "rooms": ["r"], "last_event_id": id }))
        .await;
    assert_eq!(
        ans["replay"],
        json!({ "count": 1, "complete": true }),
        "the resume replays the deletion only"
    );
    let e = sse.expect("message_deleted").await;
    assert_eq!(
        e.json(),
        json!({ "id": e.id_num(), "room": "r", "message_id": id, "by": alice.user_ref().await }),
        "replayed message_deleted"
    );
}

#[tokio::test]
async fn a_resume_leaves_the_deleted_message_out() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let before = alice.say_id("r", "before").await;
    let gone = alice.say_id("r", "deleted").await;
    let kept = alice.say_id("r", "kept").await;
    assert_deleted(delete_message(&alice, "r", gone).await, "the author").await;

    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "events": ["message"], "last_event_id": before }),
        )
        .await;
    assert_eq!(ans["replay"]["count"], 2, "kept message + deletion: {ans}");
    let first = sse.expect_next("message").await;
    assert_eq!(
        first.id_num(),
        kept,
        "the deleted message was replayed: {first:?}"
    );
    let second = sse.expect_next("message_deleted").await;
    assert_eq!(
        second.json()["message_id"],
        gone,
        "replayed deletion: {second:?}"
    );
}

#[tokio::test]
async fn message_deleted_is_not_replayed_without_message_in_the_filter() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let before = alice.say_id("r", "before").await;
    let gone = alice.say_id("r", "deleted").await;
    assert_deleted(delete_message(&alice, "r", gone).await, "the author").await;
    let sse = alice.events().await;
    let ans = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "events": ["typing"], "last_event_id": before }),
        )
        .await;
    assert_eq!(
        ans["replay"]["count"], 0,
        "a connection without `message` got a replayed deletion: {ans}"
    );
}

#[tokio::test]
async fn history_n_leaves_deleted_messages_out() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let a = alice.say_id("r", "a").await;
    let b = alice.say_id("r", "b").await;
    let c = alice.say_id("r", "c").await;
    assert_deleted(delete_message(&alice, "r", c).await, "the author").await;

    let mut sse = alice.events().await;
    let ans = alice
        .subscribe_with(
            &sse,
            json!({ "rooms": ["r"], "events": ["message"], "history": 2 }),
        )
        .await;
    assert_eq!(
        ans["replay"]["count"], 2,
        "history: 2 replays two messages: {ans}"
    );
    let got = [
        sse.expect_next("message").await.id_num(),
        sse.expect_next("message").await.id_num(),
    ];
    assert_eq!(got, [a, b], "the last two messages still stored");
}

#[tokio::test]
async fn paged_history_leaves_deleted_messages_out() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let a = alice.say_id("r", "a").await;
    let b = alice.say_id("r", "b").await;
    let c = alice.say_id("r", "c").await;
    assert_deleted(delete_message(&alice, "r", b).await, "the author").await;
    let res = alice.get(&format!("/api/rooms/r/messages?after={a}")).await;
    let body: Value = res.json().await.expect("history answer");
    let ids: Vec<i64> = body["messages"]
        .as_array()
        .expect("messages array")
        .iter()
        .map(|m| m["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(ids, [c], "paging after {a}: no tombstone for {b}");
}

// ---- bans ----

/// `POST` or `DELETE /api/admin/users/{user}/ban` with the admin token.
async fn ban(app: &TestApp, method: Method, user: &str) -> reqwest::Response {
    as_admin_token(app, method, &format!("/api/admin/users/{user}/ban")).await
}

/// Bans `user` with the admin token, which must answer `200`.
async fn ban_ok(app: &TestApp, user: &str) {
    let res = ban(app, Method::POST, user).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "banning {user} (body: {text})");
}

#[tokio::test]
async fn a_ban_closes_every_stream_of_that_user_and_counts_them() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut a1 = alice.events().await;
    let mut a2 = alice.listen(&["r"], None).await;
    let mut b = bob.events().await;
    let res = ban(&app, Method::POST, "alice").await;
    assert_eq!(res.status(), 200, "banning alice");
    assert_eq!(
        res.json::<Value>().await.expect("ban answer"),
        json!({ "closed": 2 })
    );
    for (what, sse) in [("first", &mut a1), ("second", &mut a2)] {
        assert!(
            sse.ends_within(Duration::from_secs(3)).await,
            "the banned user's {what} stream is still open"
        );
    }
    assert!(
        !b.ends_within(Duration::from_millis(300)).await,
        "another user's stream was closed too"
    );
}

#[tokio::test]
async fn a_banned_users_streams_leave_their_rooms() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut watcher = bob.listen(&["r"], Some(&["presence"])).await;
    let alice_ref = alice.user_ref().await;
    let _a = alice.listen(&["r"], None).await;
    assert_eq!(
        watcher.expect_next("presence").await.json()["action"],
        "join",
        "alice's join before the ban"
    );
    ban_ok(&app, "alice").await;
    let leave = watcher.expect_next("presence").await.json();
    assert_eq!(
        leave,
        json!({ "room": "r", "user": alice_ref, "action": "leave" }),
        "others see the banned user leave"
    );
}

#[tokio::test]
async fn a_ban_ends_the_users_sessions() {
    let app = spawn_app_with_admin().await;
    let alice = app.user("alice").await;
    let other_login = app.client();
    assert_eq!(
        other_login.login("alice", "password123").await.status(),
        200
    );
    ban_ok(&app, "alice").await;
    assert_error(alice.get("/api/me").await, 401, "unauthorized").await;
    assert_error(other_login.get("/api/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_banned_user_logging_in_gets_403_account_banned() {
    let app = spawn_app_with_admin().await;
    app.user("alice").await;
    ban_ok(&app, "alice").await;
    let c = app.client();
    assert_error(c.login("alice", "password123").await, 403, "account_banned").await;
    assert_error(c.get("/api/me").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn an_unban_answers_204_and_the_user_logs_in_again() {
    let app = spawn_app_with_admin().await;
    app.user("alice").await;
    ban_ok(&app, "alice").await;
    let res = ban(&app, Method::DELETE, "alice").await;
    assert_eq!(res.status(), 204, "unbanning alice");
    let c = app.client();
    assert_eq!(
        c.login("alice", "password123").await.status(),
        200,
        "logging in after the unban"
    );
    assert_eq!(c.me().await["username"], "alice");
}

#[tokio::test]
async fn banning_or_unbanning_an_unknown_user_is_404_unknown_user() {
    let app = spawn_app_with_admin().await;
    assert_error(ban(&app, Method::POST, "nobody").await, 404, "unknown_user").await;
    assert_error(
        ban(&app, Method::DELETE, "nobody").await,
        404,
        "unknown_user",
    )
    .await;
}

#[tokio::test]
async fn ban_routes_are_401_without_credentials_and_403_for_users() {
    let app = spawn_app_with_admin().await;
    let bob = app.user("bob").await;
    app.user("alice").await;
    let anon = app.client();
    assert_error(
        send(
            &anon,
            Method::POST,
            "/api/admin/users/alice/ban",
            Value::Null,
        )
        .await,
        401,
        "unauthorized",
    )
    .await;
    assert_error(
        send(
            &bob,
            Method::POST,
            "/api/admin/users/alice/ban",
            Value::Null,
        )
        .await,
        403,
        "forbidden",
    )
    .await;
    let c = app.client();
    assert_eq!(
        c.login("alice", "password123").await.status(),
        200,
        "a refused ban banned alice anyway"
    );
}

#[tokio::test]
async fn an_admin_user_may_ban() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let admin = admin_user(&app, "root").await;
    let res = send(
        &admin,
        Method::POST,
        "/api/admin/users/alice/ban",
        Value::Null,
    )
    .await;
    assert_eq!(res.status(), 200, "an admin session bans");
    assert_error(alice.get("/api/me").await, 401, "unauthorized").await;
}

// ---- reserved names ----

#[tokio::test]
async fn removed_message_deleted_and_member_are_reserved_custom_event_names() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for name in ["removed", "message_deleted", "member"] {
        let res = alice.custom("r", name, json!(null)).await;
        let status = res.status();
        assert_eq!(status, 400, "custom event `{name}` was accepted");
        assert_error(res, 400, "reserved_event").await;
    }
}

// ---- the command line beside a running server ----

/// Within what a ban or role change made with `roomcast user …` reaches open streams.
const CLI_WITHIN: Duration = Duration::from_secs(2);

/// Runs `roomcast ARGS` against `app`'s database.
async fn cli_beside(app: &TestApp, args: &[&str]) {
    operator(app.dir.path(), &app.settings.database.url, args).await;
}

#[tokio::test]
async fn a_cli_ban_closes_the_users_open_streams_within_2_s() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut first = alice.listen(&["r"], Some(&["message"])).await;
    let mut second = alice.listen(&["s"], Some(&["message"])).await;
    let bob = app.user("bob").await;
    let mut b = bob.listen(&["r"], Some(&["message"])).await;
    cli_beside(&app, &["user", "ban", "alice"]).await;
    let banned = Instant::now();
    for (which, sse) in [("first", &mut first), ("second", &mut second)] {
        assert!(
            sse.ends_within(CLI_WITHIN.saturating_sub(banned.elapsed()))
                .await,
            "alice's {which} stream was still open {:?} after the command-line ban",
            banned.elapsed()
        );
    }
    eprintln!(
        "a command-line ban closed both streams within {:?}",
        banned.elapsed()
    );
    assert_error(alice.get("/api/me").await, 401, "unauthorized").await;
    // Others' streams go on.
    bob.say("r", "still here").await;
    assert_eq!(b.expect("message").await.json()["body"], "still here");
}

#[tokio::test]
async fn a_cli_demotion_stops_a_private_rooms_messages_on_an_open_stream_within_2_s() {
    let app = spawn_app_with_admin().await;
    let owner = app.user("owner").await;
    create(&owner, "club", "private").await;
    let alice = admin_user(&app, "alice").await;
    eventually("alice is an admin", || async {
        alice.me().await["role"] == "admin"
    })
    .await;
    // As an admin alice sees the private room, though she is not a member.
    let mut a = alice.listen(&["club", "lobby"], Some(&["message"])).await;
    owner.say("club", "before").await;
    assert_eq!(a.expect("message").await.json()["body"], "before");

    cli_beside(&app, &["user", "set-role", "alice", "user"]).await;
    let demoted = Instant::now();
    let removed = tokio::time::timeout(CLI_WITHIN, a.expect("removed"))
        .await
        .unwrap_or_else(|_| {
            panic!("no `removed` within {CLI_WITHIN:?} of the command-line demotion")
        });
    eprintln!(
        "a command-line demotion took effect within {:?}",
        demoted.elapsed()
    );
    assert_eq!(removed.json(), json!({ "room": "club", "by": null }));
    owner.say("club", "after").await;
    owner.say("lobby", "sentinel").await;
    assert_eq!(
        a.expect("message").await.json()["body"],
        "sentinel",
        "a private room's message reached a demoted admin's stream"
    );
    let res = alice.try_subscribe(&a, json!({ "rooms": ["club"] })).await;
    assert_error(res, 404, "unknown_room").await;
}
