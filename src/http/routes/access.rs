//! Who may see which room, decided in one place. Every route that names a room in its path
//! takes a [`VisibleRoom`] (or, for message deletion, a [`RoomActor`]); the subscribe route
//! calls [`check_rooms`]. A private room answers a stranger exactly as a room that does not
//! exist: `404 unknown_room`.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use crate::{
    domain::{Role, RoomName, RoomView, User},
    http::auth::{CurrentUser, bearer_is_admin_token},
    http::error::ApiError,
    http::state::AppState,
    hub::{SubscribeRequest, Subscription},
};

type Extracted<T> = Pin<Box<dyn Future<Output = Result<T, ApiError>>>>;

/// The `{room}` of the path, seen by a logged-in caller who may see it.
pub struct VisibleRoom {
    /// The room and the caller's standing in it.
    pub view: RoomView,
    /// The caller.
    pub caller: CurrentUser,
}

impl VisibleRoom {
    /// The room's name.
    pub fn name(&self) -> &RoomName {
        &self.view.name
    }
}

fn room_in_path(req: &HttpRequest) -> Result<RoomName, ApiError> {
    Ok(RoomName::parse(
        req.match_info().get("room").unwrap_or_default(),
    )?)
}

fn state(req: &HttpRequest) -> Option<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>().cloned()
}

/// Looks the room up for `viewer` (`None`: the admin token) and refuses what it may not see.
async fn view(
    state: &AppState,
    room: RoomName,
    viewer: Option<&User>,
) -> Result<RoomView, ApiError> {
    let view = state.db.room_view(&room, viewer).await?;
    if !view.visible() {
        return Err(ApiError::unknown_room());
    }
    Ok(view)
}

impl FromRequest for VisibleRoom {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let caller = CurrentUser::from_request(req, payload);
        let room = room_in_path(req);
        let state = state(req);
        Box::pin(async move {
            let caller = caller.await?;
            let state = state.ok_or_else(|| anyhow::anyhow!("no AppState registered"))?;
            let view = view(&state, room?, Some(&caller.user)).await?;
            Ok(Self { view, caller })
        })
    }
}

/// The `{room}` of the path, seen by a logged-in caller or the admin bearer token.
pub struct RoomActor {
    /// The room and the actor's standing in it.
    pub view: RoomView,
    /// The user acting; `None` for the admin bearer token.
    pub user: Option<User>,
}

impl FromRequest for RoomActor {
    type Error = ApiError;
    type Future = Extracted<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = state(req);
        // The bearer token acts as no user; otherwise the session names one (read once).
        let token = state
            .as_ref()
            .is_some_and(|s| bearer_is_admin_token(req, s));
        let caller = (!token).then(|| CurrentUser::from_request(req, payload));
        let room = room_in_path(req);
        Box::pin(async move {
            let state = state.ok_or_else(|| anyhow::anyhow!("no AppState registered"))?;
            let user = match caller {
                Some(caller) => Some(caller.await?.user),
                None => None,
            };
            let view = view(&state, room?, user.as_ref()).await?;
            Ok(Self { view, user })
        })
    }
}

/// Subscribes `user`'s connection, refusing the whole request (nothing joined) when it
/// names a private room `user` may not see.
pub async fn subscribe(
    state: &AppState,
    user: &User,
    request: SubscribeRequest,
) -> Result<Subscription, ApiError> {
    // The connection first: a made-up id learns nothing of the rooms it names.
    if !state.hub.is_owned_by(request.connection(), user.id) {
        return Err(ApiError::unknown_connection());
    }
    if !hidden_rooms(state, user, request.rooms()).await?.is_empty() {
        return Err(ApiError::unknown_room());
    }
    let rooms = request.rooms().to_vec();
    // A removal that ran between the check above and the join found nothing to take out
    // yet: look again once the rooms are held, before anything of them is replayed.
    let revoked = async { Ok(hidden_rooms(state, user, &rooms).await?) };
    Ok(state
        .hub
        .subscribe_checked(user.id, request, &state.db, revoked)
        .await?)
}

/// Of `rooms`, those hidden from `user`: private rooms it is not a member of (admins see
/// every room).
async fn hidden_rooms(
    state: &AppState,
    user: &User,
    rooms: &[RoomName],
) -> sqlx::Result<Vec<RoomName>> {
    if user.role == Role::Admin {
        return Ok(Vec::new());
    }
    state.db.hidden_rooms(user.id, rooms).await
}
