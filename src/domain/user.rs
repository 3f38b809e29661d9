//! Who someone is: the account as the contract shows it, and the part shown to others.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Anyone who registered.
    User,
    /// May broadcast, see stats and disconnect users.
    Admin,
}

impl Role {
    /// The stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored or typed form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Role::User),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The public face of a user, as the contract's `User` object.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// Stable id.
    pub id: Uuid,
    /// Display name, as registered.
    pub username: String,
    /// `user` or `admin`.
    pub role: Role,
}

/// The part of a user shown to others: `{"id","username"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRef {
    /// Stable id.
    pub id: Uuid,
    /// Display name; `null` once the account is deleted (its messages stay).
    #[schema(value_type = Option<String>)]
    pub username: Option<Arc<str>>,
}

impl From<&User> for UserRef {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: Some(Arc::from(u.username.as_str())),
        }
    }
}
