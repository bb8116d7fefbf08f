//! The HTML pages, rendered with askama from `templates/`: home, dashboard
//! (your rooms with live member and unread counts; the JSON it polls is
//! [`crate::rooms_api`]'s) and the room page, plus the 404 page.
//!
//! The development sign-in form of the single-process run is rendered here
//! too ([`dev_sign_in_page`]), since askama is this crate's alone; only
//! `chat-dev` mounts a route that shows it.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chat_core::RoomName;
use tower_sessions::Session;

use crate::access::{Caller, seen};
use crate::error::{ApiErrorCode, AppError};
use crate::html::HtmlTemplate;
use crate::rooms_api::{self, RoomEntry, my_rooms};
use crate::session::{self, PageUser, SessionUser};
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
    /// The room's id.
    pub room: String,
    /// Its display name (a direct room: the other people's names).
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// `public`, `private` or `direct`.
    pub kind: String,
    /// The user's role in it, if any.
    pub role: Option<String>,
    /// How many people are in it.
    pub members: u64,
    /// How many of its messages came after this user's read marker.
    pub unread: u64,
}

impl From<RoomEntry> for RoomSummary {
    fn from(e: RoomEntry) -> Self {
        Self {
            room: e.room,
            name: e.name,
            topic: e.topic,
            kind: e.kind.as_str().to_owned(),
            role: e.role.map(|r| r.as_str().to_owned()),
            members: e.members,
            unread: e.unread,
        }
    }
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
    /// The room's id.
    pub room: String,
    /// Its display name (a direct room: the other people's names).
    pub name: String,
    /// `public`, `private` or `direct`.
    pub kind: String,
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
    let caller = Caller {
        admin: state.config.is_admin(&user.groups),
        user,
    };
    let rooms = my_rooms(&state, &caller)
        .await
        .map_err(|_| AppError::Internal("the rooms could not be read".into()))?;
    Ok(HtmlTemplate(DashboardPage {
        user: Some(Viewer::from(&caller.user)),
        rooms: rooms.into_iter().map(RoomSummary::from).collect(),
    })
    .into_response())
}

/// `GET /chat/{room}`: 404 for a room that does not exist or that the user
/// may not see (its existence never leaks).
pub async fn room(
    State(state): State<AppState>,
    Path(room): Path<String>,
    user: Result<PageUser, session::PageRejection>,
) -> Result<Response, Response> {
    let not_found = || AppError::NotFound.into_response();
    let id = RoomName::parse(&room).map_err(|_| not_found())?;
    let PageUser(user) = match user {
        Ok(user) => user,
        // Signed out: to sign in for a room that exists, else not found.
        Err(to_sign_in) => {
            let configured = state.config.rooms.find(id.as_str()).is_some();
            let made = state
                .store
                .rooms_info(std::slice::from_ref(&id))
                .await
                .map(|infos| infos.into_iter().flatten().next().is_some())
                .unwrap_or(true);
            return Err(if configured || made {
                to_sign_in.into_response()
            } else {
                not_found()
            });
        }
    };
    let caller = Caller {
        admin: state.config.is_admin(&user.groups),
        user,
    };
    let seen = match seen(&state, &caller, &room).await {
        Ok(seen) => seen,
        Err(e) if e.code() == ApiErrorCode::Unavailable => {
            return Err(AppError::Internal("the room could not be read".into()).into_response());
        }
        Err(_) => return Err(not_found()),
    };
    let entry = rooms_api::my_name(&state, &caller, &seen.info)
        .await
        .map_err(|_| not_found())?;
    Ok(HtmlTemplate(RoomPage {
        user: Some(Viewer::from(&caller.user)),
        room: seen.info.id.to_string(),
        name: entry,
        kind: seen.info.kind.as_str().to_owned(),
        me: caller.user.sub.clone(),
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
