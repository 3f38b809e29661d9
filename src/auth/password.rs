//! argon2id password hashing, always on a blocking thread: a hash takes tens of
//! milliseconds of CPU, which must never stall the async workers serving streams.

use std::sync::LazyLock;

use anyhow::Context;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

use crate::domain::Password;

/// A hash of a random password, verified against when the user does not exist, so an
/// unknown name costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    hash_now(uuid::Uuid::new_v4().to_string().as_bytes()).expect("hashing a dummy password")
});

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    Ok(Argon2::default()
        .hash_password(password)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
        .to_string())
}

/// Hashes a password (argon2id, default parameters, random salt) to a PHC string.
pub async fn hash(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_now(password.expose().as_bytes()))
        .await
        .context("password hashing task")?
}

/// Checks a password against a stored hash, or against a dummy when there is none.
/// Always does one full argon2 verification.
pub async fn verify(password: String, stored: Option<String>) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.clone());
        let parsed = PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(known && ok)
    })
    .await
    .context("password verification task")?
}

/// Computes the dummy hash ahead of the first failed login.
pub async fn warm_up() {
    let _ = tokio::task::spawn_blocking(|| LazyLock::force(&DUMMY_HASH)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let h = hash(Password::parse("correct horse".into()).unwrap())
            .await
            .unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(
            verify("correct horse".into(), Some(h.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse!".into(), Some(h)).await.unwrap());
        assert!(!verify("anything at all".into(), None).await.unwrap());
    }
}
