//! Secrets handed to apps: personal access tokens (`rc_…`) and webhook signing secrets
//! (`whsec_…`), and the names people give tokens. A secret is shown once; what is kept of
//! an access token is [`Secret::hash`].

use std::fmt::Write;

use sha2::{Digest, Sha256};

use super::ParseError;

/// How an access token's secret starts: tells it apart from the admin bearer token.
pub const TOKEN_PREFIX: &str = "rc_";

/// How a webhook's signing secret starts.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// Most characters in a token's name.
pub const MAX_TOKEN_NAME_CHARS: usize = 64;

/// Random bytes in a secret: 256 bits, so its unsalted SHA-256 gives nothing away.
const SECRET_BYTES: usize = 32;

/// A freshly made secret: its prefix and 32 random bytes in lowercase hex.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A new access token secret, `rc_` and 64 hex digits.
    pub fn access_token() -> Result<Self, getrandom::Error> {
        Self::generate(TOKEN_PREFIX)
    }

    /// A new webhook signing secret, `whsec_` and 64 hex digits.
    pub fn webhook() -> Result<Self, getrandom::Error> {
        Self::generate(WEBHOOK_SECRET_PREFIX)
    }

    fn generate(prefix: &str) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes)?;
        let mut s = String::with_capacity(prefix.len() + 2 * SECRET_BYTES);
        s.push_str(prefix);
        s.push_str(&hex(&bytes));
        Ok(Self(s))
    }

    /// The secret as given out (once).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored of an access token: the SHA-256 of the whole secret, lowercase hex.
    pub fn hash(&self) -> String {
        hash_secret(&self.0)
    }
}

/// Never printed: a log line must not carry it.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// The SHA-256 of `secret` as stored, lowercase hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Whether `presented` could be an access token at all (so the other bearer, the admin
/// token, is not looked up as one).
pub fn looks_like_token(presented: &str) -> bool {
    presented.starts_with(TOKEN_PREFIX)
}

/// A token's name: 1 to 64 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    /// Parses a name, or says why it is not one.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let name = s.trim();
        let n = name.chars().count();
        if (1..=MAX_TOKEN_NAME_CHARS).contains(&n) && !name.chars().any(char::is_control) {
            Ok(Self(name.to_owned()))
        } else {
            Err(ParseError::TokenName)
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_prefixed_random_hex_and_hash_to_sha256() {
        let a = Secret::access_token().expect("random");
        let b = Secret::access_token().expect("random");
        assert_ne!(a, b);
        assert!(a.expose().starts_with("rc_") && a.expose().len() == 3 + 64);
        assert_eq!(a.hash().len(), 64);
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(
            Secret::webhook()
                .expect("random")
                .expose()
                .starts_with("whsec_")
        );
        assert_eq!(format!("{a:?}"), "Secret(..)");
    }

    #[test]
    fn token_names_are_one_to_sixty_four_characters() {
        assert!(TokenName::parse("").is_err());
        assert!(TokenName::parse("   ").is_err());
        assert!(TokenName::parse("a\u{0}b").is_err());
        assert_eq!(
            TokenName::parse(" ci bot ").expect("name").as_str(),
            "ci bot"
        );
        assert!(TokenName::parse(&"é".repeat(64)).is_ok());
        assert!(TokenName::parse(&"é".repeat(65)).is_err());
    }
}
