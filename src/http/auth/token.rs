//! Requests made with a personal access token: the secret is hashed, the hash looked up and
//! compared in constant time, and the token's `last_used_at` written at most once per
//! `tokens.last_used_every_secs` ([`TokenUses`](crate::http::token_uses::TokenUses)).

use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::CurrentUser;
use crate::{
    db::{CreateTokenError, TokenRecord},
    domain::{Secret, TokenName, hash_secret},
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

/// The user whose token `secret` is: 401 for a secret that names no token, 403
/// `account_banned` for a banned user's.
pub(super) async fn authenticate(state: &AppState, secret: &str) -> Result<CurrentUser, ApiError> {
    let hash = hash_secret(secret);
    let Some(owner) = state.db.token_owner(&hash).await? else {
        return Err(ApiError::Unauthorized);
    };
    // Found by the hash; compared again without an early exit, so nothing of a stored hash
    // can be learnt from how long a near miss takes.
    if !bool::from(owner.secret_hash.as_bytes().ct_eq(hash.as_bytes())) {
        return Err(ApiError::Unauthorized);
    }
    if owner.banned {
        return Err(ApiError::AccountBanned);
    }
    if state.token_uses.due(owner.token_id)
        && let Err(e) = state.db.touch_token(owner.token_id).await
    {
        tracing::warn!(error = %e, "recording a token's use failed");
    }
    Ok(CurrentUser {
        user: owner.user,
        session_id: owner.token_id,
        token: Some(owner.token_id),
    })
}

/// Makes a token for `user`: a new secret, its hash stored. The secret is returned to be
/// shown this once. `409 too_many_tokens` past `tokens.per_user`.
pub async fn create(
    state: &AppState,
    user: Uuid,
    name: &TokenName,
) -> Result<(TokenRecord, Secret), ApiError> {
    let secret =
        Secret::access_token().map_err(|e| anyhow::anyhow!("no randomness for a token: {e}"))?;
    match state
        .db
        .create_token(user, name, &secret.hash(), state.settings.tokens.per_user)
        .await
    {
        Ok(record) => Ok((record, secret)),
        Err(CreateTokenError::TooMany) => Err(ApiError::Conflict {
            code: ErrorCode::TooManyTokens,
            message: format!(
                "a user holds at most {} access tokens; revoke one first",
                state.settings.tokens.per_user
            )
            .into(),
        }),
        Err(CreateTokenError::Db(e)) => Err(e.into()),
    }
}

/// Deletes `user`'s token `id` and closes, on every node, the streams it opened.
/// `404 unknown_token` for an id that is not one of `user`'s tokens.
pub async fn revoke(state: &AppState, user: Uuid, id: &str) -> Result<(), ApiError> {
    let unknown = || ApiError::not_found(ErrorCode::UnknownToken, "no such access token");
    let id = Uuid::parse_str(id).map_err(|_| unknown())?;
    if !state.db.delete_token(user, id).await? {
        return Err(unknown());
    }
    state.token_uses.forget(id);
    // A token's streams carry its id where a session's carry the login's.
    state.cluster.close_session(id).await;
    Ok(())
}
