//! Private rooms and members: creating rooms, strangers kept out of private ones on every
//! route, members and their roles, and removal taking effect at once.
//!
//! The room helpers here are shared with `moderation.rs`.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    helpers::{
        Client, TestApp, assert_error, single_node_only, spawn_app, spawn_app_with,
        spawn_app_with_admin,
    },
    sse::Sse,
};

// ---- shared helpers ----

/// Registers `name` and makes it an admin user directly in the app's database.
pub async fn admin_user(app: &TestApp, name: &str) -> Client {
    let c = app.user(name).await;
    app.db
        .set_role(
            name,
            roomcast::domain::Role::Admin,
            roomcast::db::AppliedBy::Servers,
        )
        .await
        .expect("making the user an admin");
    c
}

/// `method path` with a JSON `body` (none when `Value::Null`), the raw response.
pub async fn send(c: &Client, method: Method, path: &str, body: Value) -> reqwest::Response {
    let mut req = c.http.request(method.clone(), format!("{}{path}", c.base));
    if !body.is_null() {
        req = req.json(&body);
    }
    req.send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// `POST /api/rooms`, the raw response.
pub async fn try_create(c: &Client, name: &str, visibility: &str) -> reqwest::Response {
    c.post(
        "/api/rooms",
        json!({ "name": name, "visibility": visibility }),
    )
    .await
}

/// Creates a room that must be created; its `RoomInfo`.
pub async fn create(c: &Client, name: &str, visibility: &str) -> Value {
    let res = try_create(c, name, visibility).await;
    let status = res.status();
    let text = res.text().await.expect("create answer");
    assert_eq!(status, 201, "creating {visibility} room {name}: {text}");
    let body: Value = serde_json::from_str(&text).expect("create answer is JSON");
    body["room"].clone()
}

/// `PUT /api/rooms/{room}/members/{user}` with `role`, the raw response.
pub async fn put_member(c: &Client, room: &str, user: &str, role: &str) -> reqwest::Response {
    send(
        c,
        Method::PUT,
        &format!("/api/rooms/{room}/members/{user}"),
        json!({ "role": role }),
    )
    .await
}

/// Adds `user` to `room` with `role`, which must succeed; the `member` answered.
pub async fn add(c: &Client, room: &str, user: &str, role: &str) -> Value {
    let res = put_member(c, room, user, role).await;
    let status = res.status();
    let text = res.text().await.expect("member answer");
    assert_eq!(status, 200, "PUT {user} as {role} in {room}: {text}");
    let body: Value = serde_json::from_str(&text).expect("member answer is JSON");
    body["member"].clone()
}

/// `DELETE /api/rooms/{room}/members/{user}`, the raw response.
pub async fn remove(c: &Client, room: &str, user: &str) -> reqwest::Response {
    send(
        c,
        Method::DELETE,
        &format!("/api/rooms/{room}/members/{user}"),
        Value::Null,
    )
    .await
}

/// Removes `user` from `room`, which must answer `204`.
pub async fn remove_ok(c: &Client, room: &str, user: &str) {
    let res = remove(c, room, user).await;
    let status = res.status();
    let text = res.text().await.unwrap_or_default();
    assert_eq!(status, 204, "DELETE {user} from {room} (body: {text})");
}

/// `DELETE /api/rooms/{room}/messages/{id}`, the raw response.
pub async fn delete_message(c: &Client, room: &str, id: i64) -> reqwest::Response {
    send(
        c,
        Method::DELETE,
        &format!("/api/rooms/{room}/messages/{id}"),
        Value::Null,
    )
    .await
}

/// `(username, role)` of every member of `room`, as listed to `c`.
pub async fn members(c: &Client, room: &str) -> Vec<(String, String)> {
    let res = c.get(&format!("/api/rooms/{room}/members")).await;
    assert_eq!(res.status(), 200, "GET members of {room}");
    let body: Value = res.json().await.expect("members answer");
    body["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members array in {body}"))
        .iter()
        .map(|m| {
            (
                m["username"].as_str().expect("username").to_owned(),
                m["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect()
}

/// `GET /api/me/rooms`'s `rooms` array.
pub async fn my_rooms(c: &Client) -> Vec<Value> {
    let res = c.get("/api/me/rooms").await;
    assert_eq!(res.status(), 200, "GET /api/me/rooms");
    let body: Value = res.json().await.expect("me/rooms answer");
    body["rooms"].as_array().expect("rooms array").clone()
}

/// Names in `GET {path}`'s `rooms` array (a room listing).
pub async fn listed(c: &Client, path: &str) -> Vec<String> {
    let res = c.get(path).await;
    assert_eq!(res.status(), 200, "GET {path}");
    let body: Value = res.json().await.expect("listing answer");
    body["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("rooms array in {body}"))
        .iter()
        .map(|r| r["name"].as_str().expect("room name").to_owned())
        .collect()
}

/// Asserts a `403` with the contract's error shape and the `forbidden` code.
pub async fn assert_forbidden(res: reqwest::Response) {
    assert_error(res, 403, "forbidden").await;
}

/// Asserts `404 unknown_room`, saying which route leaked the room.
pub async fn assert_unknown_room(res: reqwest::Response, route: &str) {
    let status = res.status();
    assert_eq!(
        status, 404,
        "{route} must hide the private room from a stranger"
    );
    assert_error(res, 404, "unknown_room").await;
}

/// Sends a broadcast and reads events on `sse` up to it: the events before it.
/// A broadcast reaches every connection whatever its filter, so it marks "nothing else".
pub async fn until_sentinel(app: &TestApp, sse: &mut Sse) -> Vec<crate::sse::Event> {
    let b = app.broadcast("sentinel").await;
    let mut before = Vec::new();
    loop {
        let e = sse
            .next_event()
            .await
            .unwrap_or_else(|| panic!("no sentinel broadcast (end: {:?})", sse.end));
        if e.event == "broadcast" && e.json()["id"] == b["id"] {
            return before;
        }
        // Sentinels sent for other connections reach this one too: they are not news.
        if e.event == "broadcast" && e.json()["body"] == "sentinel" {
            continue;
        }
        before.push(e);
    }
}

/// An app with `owner` (who created the private room `club`) and `bob`, a member of it.
async fn club_with_member(app: &TestApp) -> (Client, Client) {
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "club", "private").await;
    add(&owner, "club", "bob", "member").await;
    (owner, bob)
}

// ---- POST /api/rooms ----

#[tokio::test]
async fn creating_a_room_answers_201_with_its_info_and_the_caller_as_owner() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let res = try_create(&alice, "club", "private").await;
    assert_eq!(res.status(), 201, "creating a private room");
    let body: Value = res.json().await.expect("create answer");
    assert_eq!(
        body,
        json!({ "room": {
            "name": "club",
            "visibility": "private",
            "owner": alice.user_ref().await,
        }}),
        "the answer is exactly {{room: RoomInfo}}"
    );
}

#[tokio::test]
async fn creating_a_public_room_answers_its_visibility() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let room = create(&alice, "square", "public").await;
    assert_eq!(room["visibility"], "public", "RoomInfo: {room}");
    assert_eq!(room["owner"], alice.user_ref().await, "RoomInfo: {room}");
}

#[tokio::test]
async fn create_requires_both_name_and_visibility() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    for body in [
        json!({ "name": "club" }),
        json!({ "visibility": "private" }),
        json!({ "name": "club", "visibility": "secret" }),
        json!({ "name": "club", "visibility": null }),
    ] {
        let res = alice.post("/api/rooms", body.clone()).await;
        let status = res.status();
        let text = res.text().await.expect("an error body");
        assert_eq!(
            status, 400,
            "POST /api/rooms with {body} was not refused: {text}"
        );
        let answer: Value = serde_json::from_str(&text).expect("a JSON error");
        assert_eq!(
            answer["error"]["code"], "invalid_request",
            "well-formed JSON of the wrong shape {body}: {text}"
        );
    }
    assert!(
        my_rooms(&alice).await.is_empty(),
        "a refused create made a room anyway"
    );
}

#[tokio::test]
async fn create_refuses_an_invalid_room_name() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    assert_error(
        try_create(&alice, "No Spaces", "public").await,
        400,
        "invalid_room",
    )
    .await;
}

#[tokio::test]
async fn create_without_a_session_is_401() {
    let app = spawn_app().await;
    let anon = app.client();
    assert_error(
        try_create(&anon, "club", "public").await,
        401,
        "unauthorized",
    )
    .await;
}

#[tokio::test]
async fn creating_a_name_created_before_is_409_room_taken() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    create(&alice, "club", "private").await;
    assert_error(try_create(&bob, "club", "public").await, 409, "room_taken").await;
    assert_error(
        try_create(&alice, "club", "private").await,
        409,
        "room_taken",
    )
    .await;
}

#[tokio::test]
async fn creating_a_room_that_has_history_is_409_room_taken() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // No one is subscribed: only the stored message makes the name taken.
    bob.say("old", "history").await;
    assert_error(
        try_create(&alice, "old", "private").await,
        409,
        "room_taken",
    )
    .await;
}

#[tokio::test]
async fn creating_a_room_that_has_subscribers_now_is_409_room_taken() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    // No message: only the live subscriber makes the name taken.
    let _held = bob.listen(&["busy"], None).await;
    assert_error(
        try_create(&alice, "busy", "private").await,
        409,
        "room_taken",
    )
    .await;
}

#[tokio::test]
async fn a_created_public_room_lets_anyone_subscribe_read_and_post() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let anyone = app.user("anyone").await;
    create(&owner, "square", "public").await;
    let _sse = anyone.listen(&["square"], None).await;
    anyone.say("square", "hi").await;
    let res = anyone.get("/api/rooms/square/messages").await;
    assert_eq!(res.status(), 200, "reading a created public room");
}

// ---- strangers: 404 unknown_room on every route ----

#[tokio::test]
async fn a_stranger_cannot_subscribe_to_a_private_room() {
    let app = spawn_app().await;
    let (_owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let sse = carol.events().await;
    let res = carol
        .try_subscribe(&sse, json!({ "rooms": ["club"] }))
        .await;
    assert_unknown_room(res, "POST /api/subscribe").await;
}

#[tokio::test]
async fn a_subscribe_naming_one_private_room_joins_none_of_its_rooms() {
    let app = spawn_app_with_admin().await;
    let (owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let mut in_club = owner.listen(&["club"], Some(&["presence"])).await;
    let dave = app.user("dave").await;
    let mut in_open = dave.listen(&["open"], Some(&["presence"])).await;

    let mut sse = carol.events().await;
    let res = carol
        .try_subscribe(&sse, json!({ "rooms": ["open", "club"] }))
        .await;
    assert_unknown_room(res, "a multi-room POST /api/subscribe").await;

    assert!(
        !dave.presence_names("open").await.contains(&"carol".into()),
        "the public room of a refused subscribe was joined"
    );
    for (who, conn) in [("open", &mut in_open), ("club", &mut in_club)] {
        let seen = until_sentinel(&app, conn).await;
        assert!(
            seen.is_empty(),
            "a listener in {who} saw something of the refused subscribe: {seen:?}"
        );
    }
    let ans = carol.subscribe(&sse, &["other"]).await;
    assert_eq!(
        ans["rooms"],
        json!(["other"]),
        "the connection holds a room of the refused subscribe"
    );
    let seen = until_sentinel(&app, &mut sse).await;
    assert!(
        seen.iter().all(|e| e.json()["room"] == "other"),
        "the refused connection got events of the refused rooms: {seen:?}"
    );
}

#[tokio::test]
async fn a_stranger_cannot_read_a_private_rooms_history() {
    let app = spawn_app().await;
    let (_owner, bob) = club_with_member(&app).await;
    bob.say("club", "secret").await;
    let carol = app.user("carol").await;
    for query in ["", "?limit=10", "?after=0", "?before=1000000"] {
        let res = carol.get(&format!("/api/rooms/club/messages{query}")).await;
        assert_unknown_room(res, &format!("GET messages{query}")).await;
    }
}

#[tokio::test]
async fn a_stranger_cannot_post_to_a_private_room() {
    let app = spawn_app().await;
    let (owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let res = carol
        .post("/api/rooms/club/messages", json!({ "body": "let me in" }))
        .await;
    assert_unknown_room(res, "POST messages").await;
    let res = owner.get("/api/rooms/club/messages").await;
    let body: Value = res.json().await.expect("history answer");
    assert_eq!(
        body["messages"],
        json!([]),
        "a stranger's post was stored in the private room"
    );
}

#[tokio::test]
async fn a_stranger_cannot_send_custom_events_to_a_private_room() {
    let app = spawn_app().await;
    let (_owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let res = carol.custom("club", "typing", json!(true)).await;
    assert_unknown_room(res, "POST events").await;
}

#[tokio::test]
async fn a_stranger_cannot_see_a_private_rooms_presence() {
    let app = spawn_app().await;
    let (_owner, bob) = club_with_member(&app).await;
    let _sse = bob.listen(&["club"], None).await;
    let carol = app.user("carol").await;
    let res = carol.get("/api/rooms/club/presence").await;
    assert_unknown_room(res, "GET presence").await;
}

#[tokio::test]
async fn a_stranger_cannot_see_a_private_rooms_members() {
    let app = spawn_app().await;
    let (_owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let res = carol.get("/api/rooms/club/members").await;
    assert_unknown_room(res, "GET members").await;
}

#[tokio::test]
async fn a_stranger_cannot_change_a_private_rooms_members() {
    let app = spawn_app().await;
    let (_owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    assert_unknown_room(
        put_member(&carol, "club", "carol", "member").await,
        "PUT itself as member",
    )
    .await;
    assert_unknown_room(
        put_member(&carol, "club", "bob", "moderator").await,
        "PUT another as moderator",
    )
    .await;
    assert_unknown_room(remove(&carol, "club", "bob").await, "DELETE a member").await;
    assert_unknown_room(remove(&carol, "club", "carol").await, "DELETE itself").await;
}

#[tokio::test]
async fn a_stranger_cannot_delete_a_private_rooms_messages() {
    let app = spawn_app().await;
    let (_owner, bob) = club_with_member(&app).await;
    let id = bob.say_id("club", "mine").await;
    let carol = app.user("carol").await;
    assert_unknown_room(delete_message(&carol, "club", id).await, "DELETE message").await;
}

#[tokio::test]
async fn a_private_room_is_never_in_a_strangers_room_listing() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    let _o = owner.listen(&["club"], None).await;
    let _b = bob.listen(&["club"], None).await;
    let carol = app.user("carol").await;
    assert!(
        !listed(&carol, "/api/rooms").await.contains(&"club".into()),
        "GET /api/rooms lists a private room to a stranger"
    );
    let info = bob.room_info("club").await.expect("a member sees its room");
    assert_eq!(info["visibility"], "private", "listing entry: {info}");
}

#[tokio::test]
async fn the_listing_limit_applies_after_hiding_private_rooms() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    // `club` is the busiest room, so a limit applied before hiding would leave nothing.
    let _o = owner.listen(&["club"], None).await;
    let _b = bob.listen(&["club"], None).await;
    let carol = app.user("carol").await;
    let _c = carol.listen(&["zzz"], None).await;
    assert_eq!(
        listed(&carol, "/api/rooms?limit=1").await,
        ["zzz"],
        "a stranger's limit=1 listing"
    );
    assert_eq!(
        listed(&bob, "/api/rooms?limit=1").await,
        ["club"],
        "a member's limit=1 listing"
    );
}

#[tokio::test]
async fn me_rooms_lists_rooms_created_or_added_to_with_the_role() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "club", "private").await;
    create(&owner, "square", "public").await;
    add(&owner, "club", "bob", "moderator").await;
    // Joined by name only: not one of bob's rooms.
    let _b = bob.listen(&["lobby"], None).await;
    let brief = |rooms: Vec<Value>| -> Vec<Value> {
        rooms
            .iter()
            .map(|r| json!({ "name": r["name"], "visibility": r["visibility"], "role": r["role"] }))
            .collect()
    };
    assert_eq!(
        brief(my_rooms(&bob).await),
        [json!({ "name": "club", "visibility": "private", "role": "moderator" })],
        "bob's rooms"
    );
    assert_eq!(
        brief(my_rooms(&owner).await),
        [
            json!({ "name": "club", "visibility": "private", "role": "owner" }),
            json!({ "name": "square", "visibility": "public", "role": "owner" }),
        ],
        "the owner's rooms, by name"
    );
}

#[tokio::test]
async fn a_private_room_is_not_in_a_strangers_me_rooms() {
    let app = spawn_app().await;
    let (_owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    assert_eq!(my_rooms(&carol).await, Vec::<Value>::new(), "carol's rooms");
}

#[tokio::test]
async fn an_admin_user_counts_as_the_owner_of_every_private_room() {
    let app = spawn_app().await;
    let (_owner, bob) = club_with_member(&app).await;
    bob.say("club", "secret").await;
    let admin = admin_user(&app, "root").await;
    let _sse = admin.listen(&["club"], None).await;
    let res = admin.get("/api/rooms/club/messages").await;
    assert_eq!(res.status(), 200, "an admin reads a private room's history");
    assert!(
        listed(&admin, "/api/rooms").await.contains(&"club".into()),
        "an admin's listing hides a private room"
    );
    // Only an owner names moderators.
    let m = add(&admin, "club", "bob", "moderator").await;
    assert_eq!(m["role"], "moderator", "answer: {m}");
    assert_eq!(
        remove(&admin, "club", "bob").await.status(),
        204,
        "an admin removes a moderator"
    );
}

// ---- members ----

#[tokio::test]
async fn the_owner_adds_a_member_who_may_then_use_the_room() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "club", "private").await;
    let res = put_member(&owner, "club", "bob", "member").await;
    assert_eq!(res.status(), 200, "adding a member");
    let body: Value = res.json().await.expect("member answer");
    let mut expected = bob.user_ref().await;
    expected["role"] = json!("member");
    assert_eq!(body, json!({ "member": expected }), "the PUT answer");
    let _sse = bob.listen(&["club"], None).await;
    bob.say("club", "in").await;
}

#[tokio::test]
async fn members_are_listed_by_username_with_their_roles() {
    let app = spawn_app().await;
    let owner = app.user("mia").await;
    let zed = app.user("zed").await;
    let amy = app.user("amy").await;
    create(&owner, "club", "private").await;
    add(&owner, "club", "zed", "member").await;
    add(&owner, "club", "amy", "moderator").await;

    let res = zed.get("/api/rooms/club/members").await;
    assert_eq!(res.status(), 200, "a member reads the member list");
    let body: Value = res.json().await.expect("members answer");
    let entry = |u: Value, role: &str| {
        let mut u = u;
        u["role"] = json!(role);
        u
    };
    assert_eq!(
        body,
        json!({
            "room": "club",
            "members": [
                entry(amy.user_ref().await, "moderator"),
                entry(owner.user_ref().await, "owner"),
                entry(zed.user_ref().await, "member"),
            ],
        }),
        "members ordered by username, with id and role"
    );
}

#[tokio::test]
async fn a_moderator_adds_members() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    app.user("carol").await;
    let m = add(&bob, "club", "carol", "member").await;
    assert_eq!(m["role"], "member", "answer: {m}");
}

#[tokio::test]
async fn a_plain_member_cannot_add_members() {
    let app = spawn_app().await;
    let (_owner, bob) = club_with_member(&app).await;
    app.user("carol").await;
    assert_forbidden(put_member(&bob, "club", "carol", "member").await).await;
}

#[tokio::test]
async fn only_the_owner_names_moderators() {
    let app = spawn_app().await;
    let (owner, _bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    add(&owner, "club", "carol", "moderator").await;
    assert_forbidden(put_member(&carol, "club", "bob", "moderator").await).await;
    let m = add(&owner, "club", "bob", "moderator").await;
    assert_eq!(m["role"], "moderator", "the owner names a moderator: {m}");
    assert_eq!(
        members(&owner, "club").await,
        [
            ("bob".to_owned(), "moderator".to_owned()),
            ("carol".to_owned(), "moderator".to_owned()),
            ("owner".to_owned(), "owner".to_owned()),
        ],
        "roles after naming moderators"
    );
}

#[tokio::test]
async fn a_moderator_cannot_name_a_new_member_moderator() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    app.user("carol").await;
    assert_forbidden(put_member(&bob, "club", "carol", "moderator").await).await;
}

#[tokio::test]
async fn only_the_owner_demotes_moderators() {
    let app = spawn_app().await;
    let (owner, _bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    let carol = app.user("carol").await;
    add(&owner, "club", "carol", "moderator").await;
    assert_forbidden(put_member(&carol, "club", "bob", "member").await).await;
    let m = add(&owner, "club", "bob", "member").await;
    assert_eq!(m["role"], "member", "the owner demotes a moderator: {m}");
}

#[tokio::test]
async fn adding_an_unknown_user_is_404_unknown_user() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    create(&owner, "club", "private").await;
    assert_error(
        put_member(&owner, "club", "nobody", "member").await,
        404,
        "unknown_user",
    )
    .await;
}

#[tokio::test]
async fn a_role_other_than_member_or_moderator_is_400() {
    let app = spawn_app().await;
    let (owner, _bob) = club_with_member(&app).await;
    let mut wrong = Vec::new();
    for role in ["owner", "admin", ""] {
        let res = put_member(&owner, "club", "bob", role).await;
        let status = res.status().as_u16();
        let text = res.text().await.unwrap_or_default();
        let code =
            serde_json::from_str::<Value>(&text).unwrap_or_default()["error"]["code"].clone();
        if status != 400 || code != "invalid_request" {
            wrong.push(format!("role {role:?} got {status} {text}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "roles other than member/moderator must be 400 invalid_request: {wrong:?}"
    );
    assert_eq!(
        members(&owner, "club").await,
        [
            ("bob".to_owned(), "member".to_owned()),
            ("owner".to_owned(), "owner".to_owned()),
        ],
        "a refused role change took effect"
    );
}

#[tokio::test]
async fn owner_and_moderators_remove_members() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    app.user("carol").await;
    app.user("dave").await;
    add(&owner, "club", "carol", "member").await;
    add(&owner, "club", "dave", "member").await;
    assert_eq!(
        remove(&owner, "club", "carol").await.status(),
        204,
        "owner removes"
    );
    assert_eq!(
        remove(&bob, "club", "dave").await.status(),
        204,
        "moderator removes"
    );
    assert_eq!(
        members(&owner, "club").await,
        [
            ("bob".to_owned(), "moderator".to_owned()),
            ("owner".to_owned(), "owner".to_owned()),
        ],
        "removed members are gone from the list"
    );
}

#[tokio::test]
async fn a_plain_member_cannot_remove_another_member() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    app.user("carol").await;
    add(&owner, "club", "carol", "member").await;
    assert_forbidden(remove(&bob, "club", "carol").await).await;
}

#[tokio::test]
async fn only_the_owner_removes_moderators() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    app.user("carol").await;
    add(&owner, "club", "carol", "moderator").await;
    assert_forbidden(remove(&bob, "club", "carol").await).await;
    assert_eq!(
        remove(&owner, "club", "carol").await.status(),
        204,
        "the owner removes a moderator"
    );
}

#[tokio::test]
async fn any_member_may_remove_itself() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    add(&owner, "club", "carol", "moderator").await;
    assert_eq!(
        remove(&bob, "club", "bob").await.status(),
        204,
        "a member leaves"
    );
    assert_eq!(
        remove(&carol, "club", "carol").await.status(),
        204,
        "a moderator leaves"
    );
    assert_unknown_room(
        bob.get("/api/rooms/club/messages").await,
        "history after leaving",
    )
    .await;
}

#[tokio::test]
async fn the_owner_cannot_leave() {
    let app = spawn_app().await;
    let (owner, _bob) = club_with_member(&app).await;
    assert_forbidden(remove(&owner, "club", "owner").await).await;
}

#[tokio::test]
async fn the_owner_cannot_be_removed_by_a_moderator() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    add(&owner, "club", "bob", "moderator").await;
    assert_forbidden(remove(&bob, "club", "owner").await).await;
    assert!(
        members(&owner, "club")
            .await
            .contains(&("owner".into(), "owner".into())),
        "the owner is still the owner"
    );
}

// ---- removal takes effect at once ----

#[tokio::test]
async fn a_removed_members_connections_leave_the_room_and_others_see_it() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    let mut watcher = owner.listen(&["club"], Some(&["presence"])).await;
    let _tab1 = bob.listen(&["club"], None).await;
    // A second tab sends no second join, so it is subscribed without waiting for one.
    let tab2 = bob.events().await;
    bob.subscribe(&tab2, &["club"]).await;
    let join = watcher.expect_next("presence").await.json();
    assert_eq!(join["action"], "join", "bob's join: {join}");

    remove_ok(&owner, "club", "bob").await;
    let leave = watcher.expect_next("presence").await.json();
    assert_eq!(
        leave,
        json!({ "room": "club", "user": bob.user_ref().await, "action": "leave" }),
        "others see the removed user leave once"
    );
    assert_eq!(
        owner.presence_names("club").await,
        ["owner"],
        "the removed user is still present"
    );
}

#[tokio::test]
async fn each_removed_connection_gets_one_removed_event_whatever_its_filter() {
    let app = spawn_app_with_admin().await;
    let (owner, bob) = club_with_member(&app).await;
    let mut all = bob.listen(&["club"], None).await;
    let mut typing_only = bob.listen(&["club"], Some(&["typing"])).await;
    let mut elsewhere = bob.listen(&["lobby"], Some(&["typing"])).await;
    // Drain what the second tab's join sent to the first.
    until_sentinel(&app, &mut all).await;

    remove_ok(&owner, "club", "bob").await;
    let expected = json!({ "room": "club", "by": owner.user_ref().await });
    for (what, sse) in [("all events", &mut all), ("typing only", &mut typing_only)] {
        let seen = until_sentinel(&app, sse).await;
        let removed: Vec<_> = seen.iter().filter(|e| e.event == "removed").collect();
        assert_eq!(
            removed.len(),
            1,
            "`removed` events on the {what} tab: {seen:?}"
        );
        assert_eq!(
            removed[0].json(),
            expected,
            "`removed` data on the {what} tab"
        );
        assert_eq!(removed[0].id, None, "`removed` is ephemeral: no `id:`");
    }
    let seen = until_sentinel(&app, &mut elsewhere).await;
    assert!(
        seen.is_empty(),
        "a tab not holding the room got something: {seen:?}"
    );
}

#[tokio::test]
async fn a_removed_user_is_a_stranger_to_the_room() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    let sse = bob.listen(&["club"], None).await;
    remove_ok(&owner, "club", "bob").await;
    let res = bob.try_subscribe(&sse, json!({ "rooms": ["club"] })).await;
    assert_unknown_room(res, "subscribe after removal").await;
    assert_unknown_room(
        bob.post("/api/rooms/club/messages", json!({ "body": "still here?" }))
            .await,
        "post after removal",
    )
    .await;
    assert_unknown_room(
        bob.get("/api/rooms/club/messages").await,
        "history after removal",
    )
    .await;
}

#[tokio::test]
async fn removal_leaves_the_connections_other_rooms_alone() {
    let app = spawn_app().await;
    let (owner, bob) = club_with_member(&app).await;
    let mut sse = bob.listen(&["club", "lobby"], Some(&["message"])).await;
    remove_ok(&owner, "club", "bob").await;
    sse.expect_next("removed").await;
    let id = owner.say_id("lobby", "still with you").await;
    let e = sse.expect_next("message").await;
    assert_eq!(e.id_num(), id, "the other room's message");
    let ans = bob.subscribe(&sse, &["more"]).await;
    let mut rooms: Vec<String> = serde_json::from_value(ans["rooms"].clone()).expect("rooms");
    rooms.sort();
    assert_eq!(rooms, ["lobby", "more"], "rooms held after the removal");
}

#[tokio::test]
async fn messages_of_the_room_stop_reaching_a_removed_connection() {
    let app = spawn_app_with_admin().await;
    let (owner, bob) = club_with_member(&app).await;
    let mut sse = bob.listen(&["club"], Some(&["message"])).await;
    remove_ok(&owner, "club", "bob").await;
    sse.expect_next("removed").await;
    owner.say("club", "after you left").await;
    let seen = until_sentinel(&app, &mut sse).await;
    assert!(seen.is_empty(), "a removed connection still gets: {seen:?}");
}

#[tokio::test]
async fn removing_private_members_too_fast_is_429_and_removes_nothing() {
    if single_node_only("each node limits the removals it is asked") {
        return;
    }
    let app = spawn_app_with(|s| {
        s.rate_limit.removals_per_sec = 2;
        s.rate_limit.removals_burst = 10;
    })
    .await;
    let owner = app.user("owner").await;
    app.user("bob").await;
    create(&owner, "club", "private").await;
    let mut removed = 0;
    let refused = loop {
        add(&owner, "club", "bob", "member").await;
        let res = remove(&owner, "club", "bob").await;
        if res.status() == 429 {
            break res;
        }
        assert_eq!(res.status(), 204, "a removal within the limit");
        removed += 1;
        assert!(
            removed <= 12,
            "{removed} removals in a row were all accepted"
        );
    };
    assert!(
        refused.headers().contains_key("retry-after"),
        "a 429 carries Retry-After"
    );
    assert_error(refused, 429, "rate_limited").await;
    assert!(
        members(&owner, "club")
            .await
            .iter()
            .any(|(name, _)| name == "bob"),
        "the refused removal removed bob"
    );
}

#[tokio::test]
async fn a_subscribe_on_a_stream_not_the_callers_says_nothing_of_a_private_room() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    create(&owner, "club", "private").await;
    let mallory = app.user("mallory").await;
    let owners_stream = owner.events().await;
    let made_up = uuid::Uuid::new_v4().to_string();
    for (what, id) in [
        (
            "another user's stream",
            owners_stream.connection_id.as_str(),
        ),
        ("a made-up id", made_up.as_str()),
    ] {
        let mut answers = Vec::new();
        for room in ["club", "nosuchroom"] {
            let res = mallory.try_subscribe(id, json!({ "rooms": [room] })).await;
            answers.push(assert_error(res, 404, "unknown_connection").await);
        }
        assert_eq!(
            answers[0], answers[1],
            "{what}: a private room answered unlike a room that does not exist"
        );
    }
}

// ---- member changes are pushed ----

/// The `member` events among `seen`, as JSON.
fn member_events(seen: &[crate::sse::Event]) -> Vec<Value> {
    seen.iter()
        .filter(|e| e.event == "member")
        .map(|e| {
            assert_eq!(e.id, None, "`member` is ephemeral: no `id:` ({e:?})");
            e.json()
        })
        .collect()
}

#[tokio::test]
async fn an_added_user_hears_it_on_every_stream_whatever_its_filter() {
    let app = spawn_app_with_admin().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "club", "private").await;
    // Streams that hold other rooms only, one with a filter that names no `member`.
    let mut all = bob.listen(&["lobby"], None).await;
    let mut typing_only = bob.listen(&["lobby"], Some(&["typing"])).await;
    until_sentinel(&app, &mut typing_only).await;
    until_sentinel(&app, &mut all).await;

    add(&owner, "club", "bob", "member").await;
    let expected = json!({
        "room": "club", "user": bob.user_ref().await, "role": "member", "by": owner.user_ref().await,
    });
    for (what, sse) in [("typing only", &mut typing_only), ("all events", &mut all)] {
        let seen = until_sentinel(&app, sse).await;
        assert_eq!(
            member_events(&seen),
            std::slice::from_ref(&expected),
            "the added user's {what} stream: {seen:?}"
        );
    }
}

#[tokio::test]
async fn room_holders_asking_for_member_see_adds_role_changes_and_removals() {
    let app = spawn_app_with_admin().await;
    let (owner, bob) = club_with_member(&app).await;
    let carol = app.user("carol").await;
    let mut asks = bob.listen(&["club"], Some(&["member"])).await;
    let mut not_asking = owner.listen(&["club"], Some(&["message"])).await;
    until_sentinel(&app, &mut asks).await;
    until_sentinel(&app, &mut not_asking).await;

    add(&owner, "club", "carol", "member").await;
    add(&owner, "club", "carol", "moderator").await;
    add(&owner, "club", "carol", "moderator").await; // no change: nothing pushed
    remove_ok(&owner, "club", "carol").await;
    let (c, o) = (carol.user_ref().await, owner.user_ref().await);
    let seen = until_sentinel(&app, &mut asks).await;
    assert_eq!(
        member_events(&seen),
        [
            json!({ "room": "club", "user": c, "role": "member", "by": o }),
            json!({ "room": "club", "user": c, "role": "moderator", "by": o }),
            json!({ "room": "club", "user": c, "role": null, "by": o }),
        ],
        "a member's stream holding the room, in order: {seen:?}"
    );
    let seen = until_sentinel(&app, &mut not_asking).await;
    assert!(
        member_events(&seen).is_empty(),
        "a stream whose filter leaves `member` out got it: {seen:?}"
    );
}

#[tokio::test]
async fn a_removed_user_gets_removed_not_member() {
    let app = spawn_app_with_admin().await;
    let (owner, bob) = club_with_member(&app).await;
    let mut holding = bob.listen(&["club"], None).await;
    let mut elsewhere = bob.listen(&["lobby"], None).await;
    let mut watcher = owner.listen(&["club"], Some(&["member"])).await;
    until_sentinel(&app, &mut holding).await;
    until_sentinel(&app, &mut elsewhere).await;
    until_sentinel(&app, &mut watcher).await;

    remove_ok(&owner, "club", "bob").await;
    let seen = until_sentinel(&app, &mut holding).await;
    let names: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        names,
        ["removed"],
        "the removed user's stream holding the room"
    );
    let seen = until_sentinel(&app, &mut elsewhere).await;
    assert!(
        seen.is_empty(),
        "the removed user's other stream got: {seen:?}"
    );
    let seen = until_sentinel(&app, &mut watcher).await;
    assert_eq!(
        member_events(&seen),
        [json!({
            "room": "club", "user": bob.user_ref().await, "role": null, "by": owner.user_ref().await,
        })],
        "the others hear of the removal: {seen:?}"
    );
}

#[tokio::test]
async fn leaving_a_public_room_pushes_member_to_the_leaver_too() {
    let app = spawn_app_with_admin().await;
    let owner = app.user("owner").await;
    let bob = app.user("bob").await;
    create(&owner, "square", "public").await;
    add(&owner, "square", "bob", "moderator").await;
    let mut holding = bob.listen(&["square"], Some(&["message"])).await;
    let mut elsewhere = bob.listen(&["lobby"], Some(&["message"])).await;
    until_sentinel(&app, &mut holding).await;
    until_sentinel(&app, &mut elsewhere).await;

    remove_ok(&bob, "square", "bob").await;
    let expected = json!({
        "room": "square", "user": bob.user_ref().await, "role": null, "by": bob.user_ref().await,
    });
    for (what, sse) in [("holding it", &mut holding), ("elsewhere", &mut elsewhere)] {
        let seen = until_sentinel(&app, sse).await;
        assert_eq!(
            member_events(&seen),
            std::slice::from_ref(&expected),
            "a public room keeps no `removed`: the leaver's stream {what}: {seen:?}"
        );
    }
}
