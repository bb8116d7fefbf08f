//! The HTML pages, rendered with askama from `templates/`: home, dashboard
//! (rooms with live member and unread counts, and the JSON it polls) and the room page, plus the 404 page.
//!
//! The development sign-in form of the single-process run is rendered here
//! too ([`dev_sign_in_page`]), since askama is this crate's alone; only
//! `chat-dev` mounts a route that shows it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use axum::response::{IntoResponse, Response};
use chat_core::RoomName;
use tower_sessions::Session;

use crate::error::{ApiError, AppError};
use crate::html::HtmlTemplate;
use crate::session::{self, ApiUser, PageUser, SessionUser};
use crate::state::AppState;

/// What every page shows of the signed-in user: the name and the logout form's CSRF token.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Display name.
    pub name: String,
    /// CSRF token for the logout form.
    pub csrf: String,
}

impl From<&SessionUser> for Viewer {
    fn from(user: &SessionUser) -> Self {
        Self {
            name: user.name.clone(),
            csrf: user.csrf.clone(),
        }
    }
}

/// `GET /`.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// The signed-in user, if any.
    pub user: Option<Viewer>,
}

/// One room as the dashboard shows it to the signed-in user.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RoomSummary {
    /// The room.
    pub room: String,
    /// How many people are in it.
    pub members: u64,
    /// How many of its messages came after this user's read marker.
    pub unread: u64,
}

/// `GET /dashboard`.
#[derive(Template)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    /// The signed-in user.
    pub user: Option<Viewer>,
    /// Each room with its member and unread counts.
    pub rooms: Vec<RoomSummary>,
}

/// `GET /chat/{room}`.
#[derive(Template)]
#[template(path = "room.html")]
pub struct RoomPage {
    /// The signed-in user.
    pub user: Option<Viewer>,
    /// The room.
    pub room: String,
    /// The user's own id, so the page can mark their messages.
    pub me: String,
}

/// `GET /`: works without Redis (then it just shows the login link).
pub async fn home(State(state): State<AppState>, session: Session) -> Response {
    let user = match session::current_user(&session, &state.config, session::now()).await {
        Ok(user) => user,
        Err(e) => {
            e.log();
            None
        }
    };
    HtmlTemplate(HomePage {
        user: user.as_ref().map(Viewer::from),
    })
    .into_response()
}

/// `GET /dashboard`.
pub async fn dashboard(
    State(state): State<AppState>,
    PageUser(user): PageUser,
) -> Result<Response, AppError> {
    let rooms = summaries(&state, &user.sub).await?;
    Ok(HtmlTemplate(DashboardPage {
        user: Some(Viewer::from(&user)),
        rooms,
    })
    .into_response())
}

/// Each room's member count and `sub`'s unread count: a few reads per
/// room, never a scan of the history.
async fn summaries(state: &AppState, sub: &str) -> Result<Vec<RoomSummary>, AppError> {
    let rooms = state.rooms();
    let (members, unread) = tokio::try_join!(
        state.store.member_counts(&rooms),
        state.store.unread_counts(&rooms, sub)
    )?;
    Ok(members
        .into_iter()
        .zip(unread)
        .map(|((room, members), (_, unread))| RoomSummary {
            room: room.as_str().to_owned(),
            members,
            unread,
        })
        .collect())
}

/// `GET /api/rooms`: `{ rooms: [{ room, members, unread }] }` for the
/// signed-in user, which the dashboard polls to stay live.
pub async fn room_summaries(
    State(state): State<AppState>,
    user: Result<ApiUser, ApiError>,
) -> Result<Response, ApiError> {
    let ApiUser(user) = user?;
    let rooms = summaries(&state, &user.sub).await?;
    let mut response = axum::Json(serde_json::json!({ "rooms": rooms })).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /chat/{room}`: 404 for a room this deployment does not have.
pub async fn room(
    State(state): State<AppState>,
    Path(room): Path<String>,
    user: Result<PageUser, session::PageRejection>,
) -> Result<Response, Response> {
    let room: RoomName = state
        .config
        .rooms
        .find(&room)
        .cloned()
        .ok_or_else(|| AppError::NotFound.into_response())?;
    let PageUser(user) = user.map_err(IntoResponse::into_response)?;
    Ok(HtmlTemplate(RoomPage {
        user: Some(Viewer::from(&user)),
        room: room.as_str().to_owned(),
        me: user.sub.clone(),
    })
    .into_response())
}

/// Anything else.
pub async fn not_found() -> AppError {
    AppError::NotFound
}

/// The development sign-in form.
#[derive(Template)]
#[template(path = "dev_login.html")]
struct DevSignInPage<'a> {
    /// Where to go once signed in (a local path).
    next: &'a str,
    /// What was wrong with the last attempt, if anything.
    problem: Option<&'a str>,
}

/// The development sign-in form of `chat-dev`: a display name and nothing
/// else, labelled as such, posting to `/login` with `next`; `problem` says
/// what was wrong with the last attempt.
pub fn dev_sign_in_page(next: &str, problem: Option<&str>) -> Response {
    HtmlTemplate(DevSignInPage { next, problem }).into_response()
}
