//! `GET /api/search`: whole words and a prefix for the last one, over the current bodies
//! of what the caller may read now, newest first and paged, with match offsets in code
//! points. The same suite runs on SQLite (FTS5) and PostgreSQL (`tsvector`).

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{Client, assert_error, spawn_app},
    private::{add, create, delete_message, remove_ok, send},
};

/// `GET /api/search?{query}`, the raw response.
async fn try_search(c: &Client, query: &str) -> reqwest::Response {
    c.get(&format!("/api/search?{query}")).await
}

/// A search that must succeed; its results.
pub async fn search(c: &Client, query: &str) -> Vec<Value> {
    let res = try_search(c, query).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 200, "search {query}: {text}");
    let body: Value = serde_json::from_str(&text).expect("search answer is JSON");
    body["results"].as_array().expect("results array").clone()
}

/// The ids of a search's results, in order.
pub async fn found(c: &Client, query: &str) -> Vec<i64> {
    search(c, query)
        .await
        .iter()
        .map(|r| r["message"]["id"].as_i64().expect("message id"))
        .collect()
}

#[tokio::test]
async fn whole_words_match_case_insensitively_and_the_last_word_as_a_prefix() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let deploy = alice.say_id("ops", "The Deployment, finally!").await;
    let partial = alice.say_id("ops", "redeploy tomorrow").await;
    let both = alice.say_id("ops", "deploy the thing").await;
    assert_eq!(
        found(&alice, "q=deplo").await,
        [both, deploy],
        "prefix of a word"
    );
    assert_eq!(
        found(&alice, "q=DEPLOYMENT").await,
        [deploy],
        "case-insensitive whole word"
    );
    assert_eq!(
        found(&alice, "q=the%20deplo").await,
        [both, deploy],
        "every word"
    );
    assert_eq!(
        found(&alice, "q=deplo%20the").await,
        Vec::<i64>::new(),
        "`deplo` not last is a whole word only"
    );
    assert!(
        !found(&alice, "q=deploy").await.contains(&partial),
        "`redeploy` is another word"
    );
}

#[tokio::test]
async fn matches_are_code_point_offsets_of_every_matched_word() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let body = "héllo wörld — Wörld peace, worldwide";
    alice.say_id("intl", body).await;
    let results = search(&alice, "q=w%C3%B6rld").await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["message"]["body"], body);
    assert_eq!(
        results[0]["matches"],
        json!([[6, 11], [14, 19]]),
        "both wörlds, in code points"
    );
    let results = search(&alice, "q=h%C3%A9llo%20wor").await;
    assert_eq!(
        results[0]["matches"],
        json!([[0, 5], [27, 36]]),
        "a prefix match covers the whole word (`wor` is no prefix of `wörld`)"
    );
}

#[tokio::test]
async fn results_are_newest_first_and_paged_with_before_and_limit() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(alice.say_id("paging", &format!("needle {i}")).await);
    }
    ids.reverse();
    assert_eq!(found(&alice, "q=needle").await, ids, "newest first");
    assert_eq!(found(&alice, "q=needle&limit=2").await, ids[..2], "limit");
    let before = ids[1];
    assert_eq!(
        found(&alice, &format!("q=needle&limit=2&before={before}")).await,
        ids[2..4],
        "the next page"
    );
}

#[tokio::test]
async fn deleted_messages_are_never_found_and_edited_ones_by_their_new_body_only() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let gone = alice.say_id("log", "ephemeral words").await;
    let edited = alice.say_id("log", "original text").await;
    assert_eq!(delete_message(&alice, "log", gone).await.status(), 204);
    let res = send(
        &alice,
        Method::PATCH,
        &format!("/api/rooms/log/messages/{edited}"),
        json!({ "body": "replacement text" }),
    )
    .await;
    assert_eq!(res.status(), 200, "edit");
    assert!(found(&alice, "q=ephemeral").await.is_empty(), "deleted");
    assert!(found(&alice, "q=original").await.is_empty(), "old body");
    let results = search(&alice, "q=replacement").await;
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["message"]["body"], "replacement text");
    assert!(
        results[0]["message"]["edited_at"].is_string(),
        "the message as it is now: {}",
        results[0]
    );
}

#[tokio::test]
async fn private_rooms_are_searched_for_their_members_only_now() {
    let app = spawn_app().await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    create(&bob, "club", "private").await;
    add(&bob, "club", "alice", "member").await;
    let secret = bob.say_id("club", "secret plan").await;
    let open = bob.say_id("lobby", "open plan").await;
    assert_eq!(found(&alice, "q=plan").await, [open, secret], "a member");
    remove_ok(&bob, "club", "alice").await;
    assert_eq!(found(&alice, "q=plan").await, [open], "removed: no more");
    assert_error(
        try_search(&alice, "q=plan&room=club").await,
        404,
        "unknown_room",
    )
    .await;
    let carol = app.user("carol").await;
    assert_eq!(found(&carol, "q=plan").await, [open], "a stranger");
}

#[tokio::test]
async fn room_narrows_the_search_to_one_room() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let here = alice.say_id("here", "common word").await;
    alice.say_id("there", "common word").await;
    assert_eq!(found(&alice, "q=common&room=here").await, [here]);
    assert_error(
        try_search(&alice, "q=common&room=Bad!").await,
        400,
        "invalid_room",
    )
    .await;
}

#[tokio::test]
async fn a_query_without_a_word_or_too_long_is_invalid() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let long = "a".repeat(201);
    for query in ["", "q=", "q=%20...%20!", &format!("q={long}")] {
        assert_error(try_search(&alice, query).await, 400, "invalid_query").await;
    }
    let longest = "a".repeat(200);
    search(&alice, &format!("q={longest}")).await;
}

#[tokio::test]
async fn a_bad_limit_or_before_is_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for limit in ["0", "51"] {
        let res = try_search(&alice, &format!("q=x&limit={limit}")).await;
        assert_error(res, 400, "invalid_limit").await;
    }
    assert_error(
        try_search(&alice, "q=x&before=soon").await,
        400,
        "invalid_query",
    )
    .await;
    assert_error(
        try_search(&alice, "q=x&limit=many").await,
        400,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn searching_needs_a_session() {
    let app = spawn_app().await;
    let res = try_search(&app.client(), "q=x").await;
    assert_error(res, 401, "unauthorized").await;
}
