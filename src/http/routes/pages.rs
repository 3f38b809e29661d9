//! The browser app: `/login`, `/register` (HTML forms on the same accounts logic as the JSON
//! API), `/` (the chat page; its script drives the JSON API and the stream), and the static
//! assets under `/static`.
//!
//! Form errors re-render the form with status 200 and the error next to its field: the
//! app-wide error handler turns any non-JSON 4xx into the contract's JSON body, which a
//! browser would show instead of the form.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    path::PathBuf,
    sync::OnceLock,
};

use actix_files::Files;
use actix_session::Session;
use actix_web::{
    HttpRequest, HttpResponse,
    http::header::{self, HeaderValue},
    middleware::DefaultHeaders,
    web,
};
use askama::Template;
use serde::Deserialize;

use crate::{
    domain::Role,
    http::auth::{self, CurrentUser},
    http::error::{ApiError, ErrorCode},
    http::state::AppState,
};

/// Registers the pages and `/static`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(chat))
        .service(web::resource("/login").get(login_form).post(login))
        .service(web::resource("/register").get(register_form).post(register))
        .service(
            // The entry module carries `?v=`, but the modules it imports are fetched by plain
            // relative URLs: they are revalidated (ETag) on every load, so a new entry never
            // runs against an old module from the cache.
            web::scope("/static/js")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "no-cache")))
                .service(
                    Files::new("", static_dir().join("js"))
                        .use_etag(true)
                        .prefer_utf8(true),
                ),
        )
        .service(
            web::scope("/static")
                .wrap(DefaultHeaders::new().add((header::CACHE_CONTROL, "public, max-age=3600")))
                .service(
                    Files::new("", static_dir())
                        .use_etag(true)
                        .prefer_utf8(true),
                ),
        );
}

/// Where the assets are: `./static` when run from the repository (or a deployment laid
/// out like it), else the directory the binary was built from.
fn static_dir() -> PathBuf {
    let here = PathBuf::from("static");
    if here.is_dir() {
        here
    } else {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
    }
}

/// A short hash of the assets, appended to their URLs (`?v=…`) so a cached copy is never
/// used with a newer server.
fn asset_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        let dir = static_dir();
        let mut h = DefaultHasher::new();
        env!("CARGO_PKG_VERSION").hash(&mut h);
        for name in ["app.js", "app.css"] {
            std::fs::read(dir.join(name))
                .unwrap_or_default()
                .hash(&mut h);
        }
        format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
    })
}

/// Login and registration form fields.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CredentialsForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

/// Errors shown next to the fields (and one for the whole form).
#[derive(Default)]
struct FieldErrors {
    username: Option<String>,
    password: Option<String>,
    form: Option<String>,
}

impl FieldErrors {
    /// Places an accounts error next to the field it is about.
    fn from_api(e: &ApiError) -> Self {
        let message = e.to_string();
        match e.code() {
            ErrorCode::InvalidUsername | ErrorCode::UsernameTaken => Self {
                username: Some(message),
                ..Self::default()
            },
            ErrorCode::InvalidPassword => Self {
                password: Some(message),
                ..Self::default()
            },
            _ => Self {
                form: Some(message),
                ..Self::default()
            },
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    v: &'a str,
    pw_autocomplete: &'a str,
    username: &'a str,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage<'a> {
    v: &'a str,
    pw_autocomplete: &'a str,
    username: &'a str,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    v: &'a str,
    user_id: String,
    username: &'a str,
    role: &'a str,
    is_admin: bool,
    /// `limits.message_chars`: the composer counts against it and refuses longer posts.
    message_chars: usize,
}

fn html(page: &impl Template) -> Result<HttpResponse, ApiError> {
    let body = page
        .render()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("rendering a page: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

fn see_other(to: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, HeaderValue::from_static(to)))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

async fn logged_in(state: &AppState, session: &Session) -> Result<bool, ApiError> {
    Ok(CurrentUser::from_session(state, session).await?.is_some())
}

/// `GET /`: the chat, or a redirect to `/login`.
#[utoipa::path(
    get, path = "/", tag = "pages",
    responses(
        (status = 200, body = String, content_type = "text/html", description = "The chat page"),
        (status = 303, description = "Not logged in: to `/login`"),
    )
)]
async fn chat(state: web::Data<AppState>, session: Session) -> Result<HttpResponse, ApiError> {
    let Some(current) = CurrentUser::from_session(&state, &session).await? else {
        return Ok(see_other("/login"));
    };
    let user = &current.user;
    html(&ChatPage {
        v: asset_version(),
        user_id: user.id.to_string(),
        username: &user.username,
        role: user.role.as_str(),
        is_admin: user.role == Role::Admin,
        message_chars: state.settings.limits.message_chars,
    })
}

/// The two credential forms; they differ only in template and in the accounts call.
#[derive(Clone, Copy)]
enum Form {
    Login,
    Register,
}

impl Form {
    fn render(self, username: &str, errors: FieldErrors) -> Result<HttpResponse, ApiError> {
        let v = asset_version();
        match self {
            Form::Login => html(&LoginPage {
                v,
                pw_autocomplete: "current-password",
                username,
                errors,
            }),
            Form::Register => html(&RegisterPage {
                v,
                pw_autocomplete: "new-password",
                username,
                errors,
            }),
        }
    }

    /// The empty form, or `/` for someone already logged in.
    async fn show(self, state: &AppState, session: &Session) -> Result<HttpResponse, ApiError> {
        if logged_in(state, session).await? {
            return Ok(see_other("/"));
        }
        self.render("", FieldErrors::default())
    }

    /// 303 to `/` on success (logged in), else the form again with the error by its field.
    async fn submit(
        self,
        state: &AppState,
        req: &HttpRequest,
        session: &Session,
        form: CredentialsForm,
    ) -> Result<HttpResponse, ApiError> {
        let CredentialsForm { username, password } = form;
        let outcome = match self {
            Form::Login => auth::login(state, req, &username, password).await,
            Form::Register => auth::register(state, req, &username, password).await,
        };
        match outcome {
            Ok(user) => {
                auth::start_session(session, &user)?;
                Ok(see_other("/"))
            }
            Err(e @ ApiError::Internal(_)) => Err(e),
            Err(e) => self.render(&username, FieldErrors::from_api(&e)),
        }
    }
}

/// `GET /login`.
#[utoipa::path(
    get, path = "/login", tag = "pages",
    responses(
        (status = 200, body = String, content_type = "text/html", description = "The form"),
        (status = 303, description = "Already logged in: to `/`"),
    )
)]
async fn login_form(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, ApiError> {
    Form::Login.show(&state, &session).await
}

/// `POST /login`.
#[utoipa::path(
    post, path = "/login", tag = "pages",
    request_body(content = CredentialsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = String, content_type = "text/html", description = "The form again, the error by its field"),
        (status = 303, description = "Logged in: to `/`"),
    )
)]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, ApiError> {
    Form::Login
        .submit(&state, &req, &session, form.into_inner())
        .await
}

/// `GET /register`.
#[utoipa::path(
    get, path = "/register", tag = "pages",
    responses(
        (status = 200, body = String, content_type = "text/html", description = "The form"),
        (status = 303, description = "Already logged in: to `/`"),
    )
)]
async fn register_form(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, ApiError> {
    Form::Register.show(&state, &session).await
}

/// `POST /register`.
#[utoipa::path(
    post, path = "/register", tag = "pages",
    request_body(content = CredentialsForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = String, content_type = "text/html", description = "The form again, the error by its field"),
        (status = 303, description = "Registered and logged in: to `/`"),
    )
)]
async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    session: Session,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, ApiError> {
    Form::Register
        .submit(&state, &req, &session, form.into_inner())
        .await
}
