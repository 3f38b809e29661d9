//! Accounts and sessions: register, log in, log out, and the extractors that tell a handler
//! who is asking ([`CurrentUser`], [`SessionUser`], [`Admin`]). A request is a user's by its
//! session cookie or by one of its personal access tokens (`Authorization: Bearer rc_…`,
//! [`token`]); handlers see the same [`CurrentUser`] either way.

mod token;

pub use token::{create as create_token, revoke as revoke_token};

use std::{
    collections::HashMap,
    future::Future,
    net::{IpAddr, Ipv6Addr},
    pin::Pin,
};

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::{
    db::{CreateUserError, Db},
    domain::{Password, Role, User, Username, looks_like_token},
    http::error::{ApiError, ErrorCode},
    http::ratelimit::client_ip,
    http::state::AppState,
    password::PasswordPool,
};

const USER_ID: &str = "user_id";
/// A per-login id kept in the session, so logout can close exactly that login's streams.
const SESSION_ID: &str = "sid";
/// When the session's expiry was last pushed ahead (Unix seconds); see [`touch`].
const TOUCHED: &str = "touched";

/// Registers an account (role `user`) for a request: the per-IP limit, then one hash on the
/// password pool.
pub async fn register(
    state: &AppState,
    req: &HttpRequest,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    limit_by_ip(state, req)?;
    let username = Username::parse(username)?;
    let password = Password::parse(password)?;
    create_user(&state.db, &state.passwords, &username, password, Role::User).await
}

/// Creates an account with a role (also used by the CLI).
pub async fn create_user(
    db: &Db,
    passwords: &PasswordPool,
    username: &Username,
    password: Password,
    role: Role,
) -> Result<User, ApiError> {
    let hash = passwords.hash(password).await?;
    match db.create_user(username, &hash, role).await {
        Ok(user) => Ok(user),
        Err(CreateUserError::Taken) => Err(ApiError::Conflict {
            code: ErrorCode::UsernameTaken,
            message: "that username is taken".into(),
        }),
        Err(CreateUserError::Db(e)) => Err(e.into()),
    }
}

/// Logs a request in: the per-IP limit, the backoff for this username from this address
/// (and the name's ceiling, which may make it wait), then one verification on the password
/// pool. Unknown names and wrong passwords fail alike.
pub async fn login(
    state: &AppState,
    req: &HttpRequest,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    limit_by_ip(state, req)?;
    // Not over TCP (tests, a Unix socket): one address for all such clients.
    let client = client_ip(req, &state.settings.server.trusted_proxies)
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    // Every name that could be an account is throttled, existing or not, so a 429 does not
    // tell which names exist; names that cannot be accounts are not kept.
    let throttled = Username::parse(username).is_ok();
    if throttled {
        let wait = state.limits.login_attempt(username, client)?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
    let mut outcome = authenticate(&state.db, &state.passwords, username, password).await;
    // Only a right password learns that the account is banned.
    if let Ok(user) = &outcome
        && state.db.is_banned(user.id).await?
    {
        outcome = Err(ApiError::AccountBanned);
    }
    if throttled {
        match &outcome {
            Ok(_) => state.limits.login_succeeded(username, client),
            Err(ApiError::Busy { .. }) => state.limits.login_not_judged(username, client),
            Err(_) => {}
        }
    }
    outcome
}

/// Checks a username and password; unknown names and wrong passwords fail alike.
pub async fn authenticate(
    db: &Db,
    passwords: &PasswordPool,
    username: &str,
    password: String,
) -> Result<User, ApiError> {
    let found = db.user_for_login(username).await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    match (passwords.verify(password, hash).await?, user) {
        (true, Some(user)) => Ok(user),
        _ => Err(ApiError::InvalidCredentials),
    }
}

/// Checks that `password` is `user`'s own, before something as final as deleting the
/// account: under the per-IP limit of logins, since it is a password guess too.
pub async fn confirm_password(
    state: &AppState,
    req: &HttpRequest,
    user: &User,
    password: String,
) -> Result<(), ApiError> {
    limit_by_ip(state, req)?;
    let confirmed = authenticate(&state.db, &state.passwords, &user.username, password).await?;
    if confirmed.id != user.id {
        return Err(ApiError::InvalidCredentials);
    }
    Ok(())
}

/// The per-IP limit on logins and registrations, by [`client_ip`].
fn limit_by_ip(state: &AppState, req: &HttpRequest) -> Result<(), ApiError> {
    match client_ip(req, &state.settings.server.trusted_proxies) {
        Some(ip) => state.limits.auth(ip),
        None => Ok(()),
    }
}

/// The login id in a stored session's state (as the session store keeps it), for closing
/// the streams of sessions that expire.
pub fn login_id(state: &HashMap<String, String>) -> Option<Uuid> {
    state
        .get(SESSION_ID)
        .and_then(|v| serde_json::from_str(v).ok())
}

/// Starts a logged-in session for `user`, under a fresh session key (no fixation).
pub fn start_session(session: &Session, user: &User) -> Result<(), ApiError> {
    session.renew();
    session
        .insert(USER_ID, user.id)
        .and_then(|_| session.insert(SESSION_ID, Uuid::new_v4()))
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("session insert: {e}")))
}

/// Ends the session (its row is deleted, so the old cookie is worthless) and returns the
/// login id whose streams should close.
pub fn end_session(session: &Session) -> Option<Uuid> {
    let sid = session.get::<Uuid>(SESSION_ID).ok().flatten();
    session.purge();
    sid
}

/// The user of this request, from an access token or else the session cookie. Rejects
/// with 401 (a banned user's token: 403).
#[derive(Debug, Clone)]
pub struct CurrentUser {
    /// The account, fresh from the database (role changes apply at once).
    pub user: User,
    /// This login's id; for a token, the token's id (so the streams it opened are closed
    /// with it, as a logout closes a session's).
    pub session_id: Uuid,
    /// The access token the request came with, if it did.
    pub token: Option<Uuid>,
}

impl CurrentUser {
    /// Reads the session; `Ok(None)` when nobody is logged in.
    pub async fn from_session(
        state: &AppState,
        session: &Session,
    ) -> Result<Option<Self>, ApiError> {
        let ids = session
            .get::<Uuid>(USER_ID)
            .ok()
            .flatten()
            .zip(session.get::<Uuid>(SESSION_ID).ok().flatten());
        let Some((user_id, session_id)) = ids else {
            return Ok(None);
        };
        let Some(user) = state.db.user_by_id(user_id).await? else {
            return Ok(None);
        };
        touch(session, state.settings.session.touch_interval_secs)?;
        Ok(Some(Self {
            user,
            session_id,
            token: None,
        }))
    }

    /// Whether what let this request in still does: the account is not banned and, for a
    /// token, the token is not deleted. For a stream, asked once it is registered, so a ban
    /// or a deletion that ran while it opened (and found nothing to close) still ends it.
    pub async fn still_allowed(&self, state: &AppState) -> Result<bool, ApiError> {
        if state.db.is_banned(self.user.id).await? {
            return Ok(false);
        }
        match self.token {
            Some(id) => Ok(state.db.token_exists(id).await?),
            None => Ok(true),
        }
    }
}

/// Sessions expire when idle. Using one pushes its expiry ahead, but at most once per
/// `every_secs`: then the session changes (its `touched` time), so actix-session writes the
/// row with a new expiry and sends the cookie again with a fresh `Max-Age`. In between a
/// request writes nothing and sends no cookie, where renewing on every request would
/// encrypt and send a cookie with every answer.
fn touch(session: &Session, every_secs: u64) -> Result<(), ApiError> {
    let now = chrono::Utc::now().timestamp();
    let every = i64::try_from(every_secs).unwrap_or(i64::MAX);
    let due = match session.get::<i64>(TOUCHED) {
        Ok(Some(at)) => now.saturating_sub(at) >= every,
        _ => true,
    };
    if due {
        session
            .insert(TOUCHED, now)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("session insert: {e}")))?;
    }
    Ok(())
}

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

fn app_state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered by Application::build")
}

/// The bearer of `Authorization: Bearer …`, if any.
fn bearer(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// The access token secret the request carries, if it carries one (`Bearer rc_…`).
pub fn access_token(req: &HttpRequest) -> Option<&str> {
    bearer(req).filter(|b| looks_like_token(b))
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        // A token, when given, decides alone: a bad one is 401 whatever cookie comes along.
        let secret = access_token(req).map(str::to_owned);
        let session = req.get_session();
        Box::pin(async move {
            if let Some(secret) = secret {
                return token::authenticate(&state, &secret).await;
            }
            CurrentUser::from_session(&state, &session)
                .await?
                .ok_or(ApiError::Unauthorized)
        })
    }
}

/// The logged-in user of a session, for the routes a token may not use (making and
/// revoking tokens: a leaked token cannot mint more). A request carrying a token is 401.
#[derive(Debug, Clone)]
pub struct SessionUser(pub CurrentUser);

impl FromRequest for SessionUser {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let with_token = access_token(req).is_some();
        let session = req.get_session();
        Box::pin(async move {
            if with_token {
                return Err(ApiError::Unauthorized);
            }
            CurrentUser::from_session(&state, &session)
                .await?
                .map(SessionUser)
                .ok_or(ApiError::Unauthorized)
        })
    }
}

/// Admin access: an admin's session or access token, or `Authorization: Bearer
/// <admin.api_token>`.
/// Logged in but not admin is 403; neither is 401.
#[derive(Debug, Clone)]
pub struct Admin {
    /// The admin user, when access came from a session.
    pub user: Option<User>,
}

/// Whether the request carries `Authorization: Bearer <admin.api_token>` (compared in
/// constant time; false when no token is configured).
pub fn bearer_is_admin_token(req: &HttpRequest, state: &AppState) -> bool {
    match (bearer(req), &state.settings.admin.api_token) {
        (Some(given), Some(token)) => bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())),
        _ => false,
    }
}

impl FromRequest for Admin {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = app_state(req);
        let session = req.get_session();
        let token = bearer_is_admin_token(req, &state);
        let secret = access_token(req).map(str::to_owned);
        Box::pin(async move {
            if token {
                return Ok(Admin { user: None });
            }
            let current = match secret {
                Some(secret) => Some(token::authenticate(&state, &secret).await?),
                None => CurrentUser::from_session(&state, &session).await?,
            };
            match current {
                Some(c) if c.user.role == Role::Admin => Ok(Admin { user: Some(c.user) }),
                Some(_) => Err(ApiError::Forbidden("admins only")),
                None => Err(ApiError::Unauthorized),
            }
        })
    }
}
