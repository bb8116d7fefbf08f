//! `GET /api/users?q=`: people who have signed in, found by name, to add to
//! a room or to start a direct conversation with.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::access::{Caller, unavailable};
use crate::error::ApiError;
use crate::rooms_api::fresh;
use crate::state::AppState;

/// Most people an answer lists.
const USERS_MAX: usize = 20;

/// The query.
#[derive(Debug, Deserialize)]
pub struct UsersQuery {
    /// The start of their name (case-insensitive).
    #[serde(default)]
    pub q: String,
}

/// `GET /api/users?q=`.
pub async fn find(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<UsersQuery>,
) -> Result<Response, ApiError> {
    let prefix: String = query.q.trim().chars().take(64).collect();
    let users = state
        .store
        .users_named(&prefix, USERS_MAX)
        .await
        .map_err(unavailable)?;
    Ok(fresh(StatusCode::OK, serde_json::json!({ "users": users })))
}
