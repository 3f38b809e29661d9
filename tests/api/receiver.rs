//! A webhook receiver inside the test process: a small HTTP/1.1 server on a free loopback
//! port that records every delivery and answers as the test tells it (a status, a
//! redirect), keep-alive included.

#![allow(dead_code)]

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `Roomcast-Event-Id`.
    pub event_id: Option<i64>,
    /// `Roomcast-Signature`.
    pub signature: String,
    /// `Content-Type`.
    pub content_type: String,
    /// The raw body.
    pub body: Vec<u8>,
    /// What it was answered with.
    pub answered: u16,
}

impl Delivery {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON delivery")
    }
}

/// How to answer a request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// `302 Found` to this location.
    Redirect(String),
}

#[derive(Default)]
struct State {
    got: Vec<Delivery>,
    /// Answers for the next requests, in order; then `200`.
    plan: VecDeque<Answer>,
    /// When set, every request past the plan gets this.
    always: Option<Answer>,
}

/// A running receiver; it stops with the test's runtime.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Starts a receiver answering `200` to everything.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            state,
        }
    }

    /// The next requests get these answers, in order.
    pub fn plan(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().expect("lock").plan.extend(answers);
    }

    /// Every request from now on (past the plan) gets `answer`; `None`: `200`.
    pub fn always(&self, answer: Option<Answer>) {
        self.state.lock().expect("lock").always = answer;
    }

    /// Every request so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.state.lock().expect("lock").got.clone()
    }

    /// The requests answered `2xx`.
    pub fn accepted(&self) -> Vec<Delivery> {
        self.all()
            .into_iter()
            .filter(|d| (200..300).contains(&d.answered))
            .collect()
    }

    /// Event ids of the accepted deliveries, in arrival order.
    pub fn accepted_ids(&self) -> Vec<i64> {
        self.accepted().iter().filter_map(|d| d.event_id).collect()
    }

    /// Waits until `n` deliveries were accepted, or `wait` passes; the accepted ones.
    pub async fn wait_accepted(&self, n: usize, wait: Duration) -> Vec<Delivery> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let got = self.accepted();
            if got.len() >= n || tokio::time::Instant::now() >= deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn serve(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let (mut len, mut event_id, mut signature, mut content_type) =
            (0usize, None, String::new(), String::new());
        loop {
            let mut header = String::new();
            if read.read_line(&mut header).await.unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => len = value.parse().unwrap_or(0),
                "roomcast-event-id" => event_id = value.parse().ok(),
                "roomcast-signature" => signature = value.to_owned(),
                "content-type" => content_type = value.to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; len];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        let answer = {
            let mut s = state.lock().expect("lock");
            let answer = s
                .plan
                .pop_front()
                .or_else(|| s.always.clone())
                .unwrap_or(Answer::Status(200));
            let answered = match &answer {
                Answer::Status(code) => *code,
                Answer::Redirect(_) => 302,
            };
            s.got.push(Delivery {
                event_id,
                signature,
                content_type,
                body,
                answered,
            });
            answer
        };
        let head = match answer {
            Answer::Status(code) => {
                format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\n\r\nok")
            }
            Answer::Redirect(to) => {
                format!("HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
            }
        };
        if write.write_all(head.as_bytes()).await.is_err() {
            return;
        }
    }
}
