//! A bot that answers in a room, with a personal access token (no password, no cookie).
//!
//! ```text
//! ROOMCAST_URL=http://127.0.0.1:8080 ROOMCAST_TOKEN=rc_… ROOMCAST_ROOM=general \
//!     cargo run --example bot [-- --once]
//! ```
//!
//! It opens the event stream with `Authorization: Bearer`, subscribes that stream to the
//! room (the two-step subscribe: the `connected` event names the connection), and answers
//! every message someone else posts there with a reply to it. `--once` exits after the
//! first answer.

use std::{env, time::Duration};

use futures_util::StreamExt;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// One event off the stream.
struct Event {
    name: String,
    data: String,
}

/// Splits SSE text into whole events; what is left is an unfinished one.
fn events(buf: &mut String) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(end) = buf.find("\n\n") {
        let frame: String = buf.drain(..end + 2).collect();
        let (mut name, mut data) = (String::from("message"), String::new());
        for line in frame.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_owned();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if !data.is_empty() {
            out.push(Event { name, data });
        }
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // reqwest builds its TLS setup with every client (for https:// servers): pick rustls's
    // provider once.
    roomcast::tls::install_provider();
    let base = env::var("ROOMCAST_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let token = env::var("ROOMCAST_TOKEN").map_err(|_| "set ROOMCAST_TOKEN to an rc_… token")?;
    let room = env::var("ROOMCAST_ROOM").unwrap_or_else(|_| "general".into());
    let once = env::args().any(|a| a == "--once");
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    let me: Value = http
        .get(format!("{base}/api/me"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let my_id = me["user"]["id"].clone();
    eprintln!("bot: acting as {}", me["user"]["username"]);

    let stream = http
        .get(format!("{base}/api/events"))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?;
    let mut bytes = stream.bytes_stream();
    let mut buf = String::new();
    while let Some(chunk) = bytes.next().await {
        buf.push_str(std::str::from_utf8(&chunk?)?);
        for event in events(&mut buf) {
            let data: Value = serde_json::from_str(&event.data)?;
            match event.name.as_str() {
                "connected" => {
                    http.post(format!("{base}/api/subscribe"))
                        .bearer_auth(&token)
                        .json(&json!({
                            "connection_id": data["connection_id"],
                            "rooms": [room],
                            "events": ["message"],
                        }))
                        .send()
                        .await?
                        .error_for_status()?;
                    eprintln!("bot: listening in {room}");
                }
                "message" if data["user"]["id"] != my_id => {
                    let body = format!(
                        "Hello {}! You said: {}",
                        data["user"]["username"].as_str().unwrap_or("there"),
                        data["body"].as_str().unwrap_or_default()
                    );
                    let answer: Value = http
                        .post(format!("{base}/api/rooms/{room}/messages"))
                        .bearer_auth(&token)
                        .json(&json!({ "body": body, "reply_to": data["id"] }))
                        .send()
                        .await?
                        .error_for_status()?
                        .json()
                        .await?;
                    println!(
                        "answered message {} with {}",
                        data["id"], answer["message"]["id"]
                    );
                    if once {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }
    Err("the stream ended".into())
}
