//! A room's people in the web API (contract v2.0): adding and removing
//! members, their roles, mutes, and the room's audit trail. Each change is
//! one step in the store, which checks the caller's role where it stores it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chat_core::access::{Role, groups_allow};
use chat_store::rooms::MemberChange;
use serde::Deserialize;

use crate::access::{Caller, seen, unavailable};
use crate::error::{ApiError, ApiErrorCode};
use crate::rooms_api::{change_member, fresh, list_for, refused};
use crate::state::AppState;

fn invalid() -> ApiError {
    ApiError::new(ApiErrorCode::Invalid)
}

/// `PUT /api/rooms/{room}/members/{user}`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMember {
    /// The role to give (none: member, or the role they have).
    pub role: Option<Role>,
}

/// `PUT /api/rooms/{room}/members/{user}`: adds someone who has signed in
/// before, or changes their role.
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
    body: Option<Json<PutMember>>,
) -> Result<Response, ApiError> {
    let role = body.map(|Json(b)| b.role).unwrap_or_default();
    let seen = seen(&state, &caller, &room).await?;
    let known = state
        .store
        .known_users(std::slice::from_ref(&user))
        .await
        .map_err(unavailable)?
        .pop()
        .flatten()
        .ok_or_else(invalid)?;
    let allowed =
        state.config.is_admin(&known.groups) || groups_allow(&seen.info.groups, &known.groups);
    change_member(
        &state,
        &caller,
        &seen,
        MemberChange::Put(role),
        &user,
        allowed,
    )
    .await?;
    if !seen.configured {
        list_for(&state, std::slice::from_ref(&user), &seen.info.id, true).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /api/rooms/{room}/members/{user}`: removes a member; their
/// connections to the room end on every replica.
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    change_member(&state, &caller, &seen, MemberChange::Remove, &user, false).await?;
    list_for(&state, std::slice::from_ref(&user), &seen.info.id, false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /api/rooms/{room}/mutes/{user}`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutMute {
    /// Muted until (ms since the epoch).
    pub until: u64,
}

/// `PUT /api/rooms/{room}/mutes/{user}` (owners, moderators).
pub async fn mute(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
    body: Result<Json<PutMute>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| invalid())?;
    set_mute(&state, &caller, &room, &user, Some(body.until)).await
}

/// `DELETE /api/rooms/{room}/mutes/{user}`: lifts a mute.
pub async fn unmute(
    State(state): State<AppState>,
    caller: Caller,
    Path((room, user)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    set_mute(&state, &caller, &room, &user, None).await
}

async fn set_mute(
    state: &AppState,
    caller: &Caller,
    room: &str,
    user: &str,
    until: Option<u64>,
) -> Result<Response, ApiError> {
    let seen = seen(state, caller, room).await?;
    state
        .store
        .mute(&seen.info.id, caller.actor(), seen.configured, user, until)
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/rooms/{room}/audit?before=`'s query.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Entries before this time (ms since the epoch).
    pub before: Option<u64>,
}

/// `GET /api/rooms/{room}/audit?before=` (owners, moderators): newest first,
/// a page at a time.
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Query(query): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    if !seen.acting_role(caller.admin).is_some_and(Role::moderates) {
        return Err(ApiError::new(ApiErrorCode::Forbidden));
    }
    let entries = state
        .store
        .audit(&seen.info.id, query.before)
        .await
        .map_err(unavailable)?;
    Ok(fresh(
        StatusCode::OK,
        serde_json::json!({ "entries": entries }),
    ))
}
