//! `Roomcast-Signature: t=<unix seconds>,v1=<hex>`: HMAC-SHA256 over `"<t>.<raw body>"`,
//! keyed with the whole secret string (`whsec_` included). The time is inside what is
//! signed, so a receiver that refuses old `t`s refuses replays of a captured delivery.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::hex;

/// The signature header's value for `body` sent at `t` (Unix seconds).
pub fn header(secret: &str, t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex(&mac(secret, t, body).finalize().into_bytes())
    )
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Whether `header` signs `body` with `secret` at a time within `tolerance_secs` of
/// `now` (compared in constant time). What a receiver does; here for the tests and docs.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs || v1.len() % 2 != 0 {
        return false;
    }
    let Some(given) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    mac(secret, t, body).verify_slice(&given).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_time_or_secret_does_not() {
        let h = header("whsec_abc", 1_700_000_000, b"{\"id\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert!(verify("whsec_abc", &h, b"{\"id\":1}", 1_700_000_010, 300));
        assert!(!verify("whsec_abc", &h, b"{\"id\":2}", 1_700_000_010, 300));
        assert!(!verify("whsec_abd", &h, b"{\"id\":1}", 1_700_000_010, 300));
        assert!(
            !verify("whsec_abc", &h, b"{\"id\":1}", 1_700_001_000, 300),
            "too old"
        );
        assert!(!verify("whsec_abc", "t=x,v1=zz", b"", 0, 300));
    }
}
