//! The browser app's pages and the web-safety middleware: forms, redirects, escaping, CSP,
//! static assets, and the cross-site refusal of state-changing requests.

use reqwest::{Response, redirect::Policy};
use serde_json::json;

use crate::helpers::{TestApp, assert_error, spawn_app};

/// A client that keeps cookies but does not follow redirects, so a test sees the 303.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .expect("client")
}

fn header(res: &Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
        .unwrap_or_default()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Minimal application/x-www-form-urlencoded encoding.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn post_form(
    http: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> Response {
    http.post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(fields))
        .send()
        .await
        .expect("POST form")
}

fn assert_csp(res: &Response) {
    let csp = header(res, "content-security-policy");
    assert!(csp.contains("script-src 'self'"), "CSP: {csp:?}");
    assert!(csp.contains("default-src 'self'"), "CSP: {csp:?}");
    assert!(csp.contains("frame-ancestors 'none'"), "CSP: {csp:?}");
    assert!(!csp.contains("unsafe-inline"), "CSP allows inline: {csp:?}");
    assert_eq!(header(res, "x-content-type-options"), "nosniff");
    assert!(
        !header(res, "referrer-policy").is_empty(),
        "Referrer-Policy"
    );
}

/// No `<script>` element in the page without a `src` (CSP would block it anyway).
fn assert_no_inline_script(html: &str) {
    for (i, _) in html.match_indices("<script") {
        let tag_end = html[i..].find('>').expect("closed tag") + i;
        assert!(
            html[i..tag_end].contains(" src="),
            "inline script in page: {}",
            &html[i..tag_end + 1]
        );
    }
}

#[tokio::test]
async fn login_page_renders_a_labelled_form_with_csp() {
    let app = spawn_app().await;
    let res = browser()
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").starts_with("text/html"));
    assert_csp(&res);
    let html = res.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/login""#),
        "{html}"
    );
    assert!(html.contains(r#"<label for="username">"#), "{html}");
    assert!(html.contains(r#"<label for="password">"#), "{html}");
    assert!(html.contains("/static/app.css?v="), "versioned asset URL");
    assert_no_inline_script(&html);

    let res = browser()
        .get(format!("{}/register", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"action="/register""#), "{html}");
}

#[tokio::test]
async fn the_chat_redirects_logged_out_visitors_to_login() {
    let app = spawn_app().await;
    let res = browser().get(&app.base).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/login");
    assert_csp(&res);
}

#[tokio::test]
async fn form_login_with_a_bad_password_shows_the_error_by_the_field() {
    let app = spawn_app().await;
    app.user("carol").await;
    let http = browser();
    let res = post_form(
        &http,
        &app,
        "/login",
        &[("username", "carol"), ("password", "wrong-password")],
    )
    .await;
    assert!(
        res.status() == 200 || res.status() == 401,
        "status {}",
        res.status()
    );
    assert!(header(&res, "content-type").starts_with("text/html"));
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="password-error""#), "{html}");
    assert!(html.contains("invalid username or password"), "{html}");
    assert!(
        html.contains(r#"value="carol""#),
        "the username is kept: {html}"
    );
    // Still logged out.
    let res = http.get(&app.base).send().await.unwrap();
    assert_eq!(res.status(), 303);
}

#[tokio::test]
async fn form_login_redirects_to_the_chat_which_knows_the_user() {
    let app = spawn_app().await;
    app.user("dave_7").await;
    let http = browser();
    let res = post_form(
        &http,
        &app,
        "/login",
        &[("username", "dave_7"), ("password", "password123")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/");
    let res = http.get(&app.base).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_csp(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains("dave_7"), "{html}");
    assert!(
        html.contains(r#"<script type="module" src="/static/app.js?v="#),
        "{html}"
    );
    assert!(
        !html.contains("broadcast-form"),
        "no broadcast box for users"
    );
    assert_no_inline_script(&html);
    // /login now goes straight to the chat.
    let res = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/");
}

#[tokio::test]
async fn form_register_logs_in_and_shows_field_errors() {
    let app = spawn_app().await;
    let http = browser();
    let res = post_form(
        &http,
        &app,
        "/register",
        &[("username", "erin"), ("password", "password123")],
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(header(&res, "location"), "/");
    assert_eq!(http.get(&app.base).send().await.unwrap().status(), 200);

    // Taken (case-insensitively): the error sits by the username.
    let other = browser();
    let res = post_form(
        &other,
        &app,
        "/register",
        &[("username", "ERIN"), ("password", "password123")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="username-error""#), "{html}");
    assert!(html.contains("taken"), "{html}");

    // Too short a password: by the password.
    let res = post_form(
        &other,
        &app,
        "/register",
        &[("username", "frank"), ("password", "short")],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"id="password-error""#), "{html}");
}

#[tokio::test]
async fn form_input_is_escaped_when_the_form_comes_back() {
    let app = spawn_app().await;
    let res = post_form(
        &browser(),
        &app,
        "/register",
        &[
            ("username", r#""><script>alert(1)</script>"#),
            ("password", "password123"),
        ],
    )
    .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "{html}");
    assert!(
        html.contains("&lt;script&gt;") || html.contains("&#60;script&#62;"),
        "{html}"
    );
    assert!(
        !html.contains(r#"value="">"#),
        "the quote is escaped: {html}"
    );
    assert!(html.contains(r#"id="username-error""#), "{html}");
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    let evil = "http://evil.example";

    // A JSON POST with a foreign Origin, even with a valid session.
    let res = alice
        .http
        .post(format!("{}/api/rooms/general/messages", app.base))
        .header("origin", evil)
        .json(&json!({ "body": "hi" }))
        .send()
        .await
        .unwrap();
    assert_csp(&res);
    assert_error(res, 403, "forbidden").await;

    // A form POST with a foreign Referer and no Origin.
    let res = browser()
        .post(format!("{}/login", app.base))
        .header("referer", format!("{evil}/phish"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=alice&password=password123")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden").await;

    // `Origin: null` (sandboxed frames) is not us either.
    let res = alice
        .http
        .post(format!("{}/api/logout", app.base))
        .header("origin", "null")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "forbidden").await;
    assert_eq!(alice.get("/api/me").await.status(), 200, "still logged in");

    // Same origin passes; so does no Origin/Referer at all (scripts, curl).
    let res = alice
        .http
        .post(format!("{}/api/rooms/general/messages", app.base))
        .header("origin", app.base.as_str())
        .header("referer", format!("{}/", app.base))
        .json(&json!({ "body": "from the page" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    alice.say("general", "from a script").await;

    // Reads are not state changes.
    let res = alice
        .http
        .get(format!("{}/api/me", app.base))
        .header("origin", evil)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn json_responses_carry_the_security_headers_too() {
    let app = spawn_app().await;
    let res = app.client().get("/api/me").await;
    assert_csp(&res);
    assert_error(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn static_assets_are_served_with_cache_headers() {
    let app = spawn_app().await;
    let http = browser();
    for (path, ty) in [
        ("/static/app.js?v=1", "javascript"),
        ("/static/app.css?v=1", "text/css"),
    ] {
        let res = http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(header(&res, "content-type").contains(ty), "{path}");
        let cc = header(&res, "cache-control");
        assert!(
            cc.contains("public") && cc.contains("max-age="),
            "{path}: {cc:?}"
        );
        assert_csp(&res);
    }
    let res = http
        .get(format!("{}/static/missing.js", app.base))
        .send()
        .await
        .unwrap();
    assert_error(res, 404, "not_found").await;
}
