//! Where data over time meets read state and search: a retention sweep and an account
//! deletion reach the search index and the room list as they reach history.

use serde_json::Value;

use crate::{
    helpers::{eventually, spawn_app, spawn_app_with},
    leaving::delete_me,
    readstate::{follow, mark_read, room_list},
    search::{found, search},
};

#[tokio::test]
async fn a_swept_message_is_no_longer_found_by_search() {
    let app = spawn_app_with(|s| {
        s.history.retain_per_room = 2;
        s.history.sweep_secs = 1;
    })
    .await;
    let alice = app.user("alice").await;
    let old = alice.say_id("log", "the walrus plan").await;
    let kept: Vec<i64> = [
        alice.say_id("log", "the walrus update").await,
        alice.say_id("log", "the walrus result").await,
    ]
    .into_iter()
    .rev()
    .collect();
    assert_eq!(
        found(&alice, "q=walrus").await,
        [kept[0], kept[1], old],
        "all three before the sweep"
    );
    eventually("the sweep takes the oldest out of search", || async {
        found(&alice, "q=walrus").await == kept
    })
    .await;
}

#[tokio::test]
async fn a_deleted_accounts_messages_are_still_found_with_a_null_username() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let id = bob.say_id("lobby", "the narwhal report").await;
    delete_me(&bob).await;
    let results = search(&alice, "q=narwhal").await;
    assert_eq!(
        results.len(),
        1,
        "the message stays searchable: {results:?}"
    );
    let message = &results[0]["message"];
    assert_eq!(message["id"], id);
    assert_eq!(
        message["user"]["username"],
        Value::Null,
        "the author shows as deleted: {message}"
    );
}

#[tokio::test]
async fn a_deleted_accounts_room_list_goes_with_it_and_its_name_starts_afresh() {
    let app = spawn_app().await;
    let bob = app.user("bob").await;
    let alice = app.user("alice").await;
    follow(&bob, "lobby").await;
    let id = alice.say_id("lobby", "hello bob").await;
    mark_read(&bob, "lobby", id).await;
    assert_eq!(room_list(&bob).await.len(), 1, "bob follows lobby");
    delete_me(&bob).await;
    let again = app.user("bob").await;
    assert_eq!(
        room_list(&again).await,
        Vec::<Value>::new(),
        "a new account of the same name inherits no follows or markers"
    );
}
