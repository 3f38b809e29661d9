//! A webhook receiver that checks every delivery's signature before trusting it.
//!
//! ```text
//! WEBHOOK_SECRET=whsec_… RECEIVER_ADDR=127.0.0.1:9000 \
//!     cargo run --example webhook_receiver [-- --once]
//! ```
//!
//! Make the webhook with `POST /api/admin/webhooks {"url":"http://127.0.0.1:9000/","events":["message"]}`
//! and give this program the `secret` it answered. Each delivery is a `POST` whose
//! `Roomcast-Signature: t=<unix seconds>,v1=<hex>` is HMAC-SHA256, keyed with the whole
//! secret, over `"<t>.<raw body>"`. A delivery is accepted (`204`) when that matches and
//! `t` is within five minutes of now (older ones may be a replay), else refused (`401`),
//! and roomcast retries it. Deliveries come in id order; one may come twice (after a
//! restart), so a receiver keeps the last `id` it handled and skips what is not above it.
//! `--once` exits after the first delivery: 0 when it verified, 1 when not.

use std::{env, time::Duration};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How far `t` may be from now: a captured delivery replayed later is refused.
const TOLERANCE_SECS: i64 = 300;

/// Largest body read; a delivery is far smaller.
const MAX_BODY: usize = 1 << 20;

/// Whether `header` signs `body` with `secret`, recently.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let field = |name: &str| {
        header
            .split(',')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let (Some(t), Some(v1)) = (field("t"), field("v1")) else {
        return false;
    };
    let Ok(sent) = t.parse::<i64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (now - sent).abs() > TOLERANCE_SECS || v1.len() != 64 {
        return false;
    }
    let Some(given) = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&v1[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    // Constant-time comparison.
    mac.verify_slice(&given).is_ok()
}

/// Reads one request: its signature header and body.
async fn read_request(
    read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
) -> Result<Option<(String, Vec<u8>)>, Error> {
    let mut line = String::new();
    if read.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let (mut len, mut signature) = (0usize, String::new());
    loop {
        let mut header = String::new();
        read.read_line(&mut header).await?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => len = value.trim().parse()?,
                "roomcast-signature" => signature = value.trim().to_owned(),
                _ => {}
            }
        }
    }
    if len > MAX_BODY {
        return Err("body too large".into());
    }
    let mut body = vec![0; len];
    read.read_exact(&mut body).await?;
    Ok(Some((signature, body)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let secret =
        env::var("WEBHOOK_SECRET").map_err(|_| "set WEBHOOK_SECRET to the whsec_… secret")?;
    let addr = env::var("RECEIVER_ADDR").unwrap_or_else(|_| "127.0.0.1:9000".into());
    let once = env::args().any(|a| a == "--once");
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("receiver: listening on http://{addr}/");
    loop {
        let (socket, _) = listener.accept().await?;
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        loop {
            let request =
                tokio::time::timeout(Duration::from_secs(30), read_request(&mut read)).await;
            let Ok(Ok(Some((signature, body)))) = request else {
                break;
            };
            let ok = verify(&secret, &signature, &body);
            let status = if ok {
                "204 No Content"
            } else {
                "401 Unauthorized"
            };
            write
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                .await?;
            if ok {
                println!("verified: {}", String::from_utf8_lossy(&body));
            } else {
                println!("refused a delivery whose signature did not verify");
            }
            if once {
                std::process::exit(if ok { 0 } else { 1 });
            }
        }
    }
}
