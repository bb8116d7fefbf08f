//! The rooms of the web API (contract v2.0): your list, the directory,
//! making rooms and direct conversations, one room's details, its settings,
//! its deletion, joining and leaving. Membership and mutes are in
//! [`crate::members_api`]; who may see what in [`crate::access`].
//!
//! Each change is one step in the store, in the room's slot, which checks
//! the caller's rights there; the indexes (lists, directory) are written
//! after it.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use axum::response::{IntoResponse, Response};
use chat_core::RoomName;
use chat_core::access::{DIRECT_MAX_MEMBERS, Role, RoomKind};
use chat_store::directory::Listing;
use chat_store::rooms::{MemberChange, NewRoom, Refusal, RoomInfo, RoomUpdate};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::access::{Caller, Seen, may_see, seen, unavailable};
use crate::error::{ApiError, ApiErrorCode};
use crate::state::AppState;

/// Longest room name, in code points.
pub const NAME_MAX: usize = 80;
/// Longest topic, in code points.
pub const TOPIC_MAX: usize = 250;
/// Most groups a room is bound to.
const GROUPS_MAX: usize = 20;
/// Most rooms a directory answer lists.
const DIRECTORY_MAX: usize = 50;

/// One room as the list shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoomEntry {
    /// Its id.
    pub room: String,
    /// Its display name (a direct room: the other people's names).
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// `public`, `private` or `direct`.
    pub kind: RoomKind,
    /// The caller's role (`None`: a public room not joined).
    pub role: Option<Role>,
    /// Users connected now.
    pub members: u64,
    /// Messages after the caller's read marker.
    pub unread: u64,
}

/// A JSON answer that is never cached.
pub fn fresh(status: StatusCode, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Puts `room` in (or takes it out of) each of `users`' lists.
pub async fn list_for(
    state: &AppState,
    users: &[String],
    room: &RoomName,
    listed: bool,
) -> Result<(), ApiError> {
    state
        .store
        .set_listed(users, room, listed)
        .await
        .map_err(unavailable)
}

/// Changes `target`'s membership of the room `seen` as `caller`; a refusal
/// is the API's answer.
pub async fn change_member(
    state: &AppState,
    caller: &Caller,
    seen: &Seen,
    change: MemberChange,
    target: &str,
    allowed: bool,
) -> Result<(), ApiError> {
    state
        .store
        .change_member(
            &seen.info.id,
            caller.actor(),
            seen.configured,
            change,
            target,
            allowed,
        )
        .await
        .map_err(unavailable)?
        .map_err(refused)
}

/// The API answer for a refused change.
pub fn refused(refusal: Refusal) -> ApiError {
    ApiError::new(match refusal {
        Refusal::NotFound => ApiErrorCode::NotFound,
        Refusal::Forbidden => ApiErrorCode::Forbidden,
        Refusal::Conflict => ApiErrorCode::Conflict,
    })
}

fn invalid() -> ApiError {
    ApiError::new(ApiErrorCode::Invalid)
}

/// A display text of 1 (0 when `may_be_empty`) to `max` code points with no
/// control characters, trimmed.
pub fn text_field(raw: &str, max: usize, may_be_empty: bool) -> Result<String, ApiError> {
    let text = raw.trim();
    let count = text.chars().count();
    if count > max || (count == 0 && !may_be_empty) || text.chars().any(char::is_control) {
        return Err(invalid());
    }
    Ok(text.to_owned())
}

/// A fresh room id: 12 random letters and digits.
fn fresh_id(prefix: &str) -> Result<RoomName, ApiError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let id: String = (0..12)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    RoomName::parse(&format!("{prefix}{id}")).map_err(|_| ApiError::new(ApiErrorCode::Internal))
}

/// The rooms of `infos` as entries for `caller`, with live and unread
/// counts, direct rooms named after their other members.
async fn entries(
    state: &AppState,
    caller: &Caller,
    rooms: Vec<(RoomInfo, Option<Role>)>,
) -> Result<Vec<RoomEntry>, ApiError> {
    let ids: Vec<RoomName> = rooms.iter().map(|(i, _)| i.id.clone()).collect();
    let (members, unread) = tokio::try_join!(
        state.store.member_counts(&ids),
        state.store.unread_counts(&ids, &caller.user.sub)
    )
    .map_err(unavailable)?;
    let mut out = Vec::with_capacity(rooms.len());
    for (((info, role), (_, members)), (_, unread)) in rooms.into_iter().zip(members).zip(unread) {
        let name = my_name(state, caller, &info).await?;
        out.push(RoomEntry {
            room: info.id.to_string(),
            name,
            topic: info.topic,
            kind: info.kind,
            role,
            members,
            unread,
        });
    }
    Ok(out)
}

/// The name `caller` sees for a room: its own, or a direct room's other
/// members' names.
pub async fn my_name(
    state: &AppState,
    caller: &Caller,
    info: &RoomInfo,
) -> Result<String, ApiError> {
    if info.kind == RoomKind::Direct {
        direct_name(state, &info.id, &caller.user.sub).await
    } else {
        Ok(info.name.clone())
    }
}

/// A direct room's name for `me`: the other members' names.
async fn direct_name(state: &AppState, room: &RoomName, me: &str) -> Result<String, ApiError> {
    let others: Vec<String> = state
        .store
        .members(room)
        .await
        .map_err(unavailable)?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| id != me)
        .collect();
    let known = state
        .store
        .known_users(&others)
        .await
        .map_err(unavailable)?;
    let names: Vec<String> = others
        .iter()
        .zip(known)
        .map(|(id, k)| k.map_or_else(|| id.clone(), |k| k.name))
        .collect();
    Ok(names.join(", "))
}

/// The caller's list: the configured rooms, then the rooms they joined or
/// were added to, that still exist and that they may still see.
pub async fn my_rooms(state: &AppState, caller: &Caller) -> Result<Vec<RoomEntry>, ApiError> {
    let listed = state
        .store
        .list_of(&caller.user.sub)
        .await
        .map_err(unavailable)?;
    let mut ids: Vec<RoomName> = state.rooms();
    ids.extend(
        listed
            .into_iter()
            .filter(|r| state.config.rooms.find(r.as_str()).is_none()),
    );
    let (infos, roles) = tokio::try_join!(
        state.store.rooms_info(&ids),
        state.store.roles_of(&ids, &caller.user.sub)
    )
    .map_err(unavailable)?;
    let mut rooms = Vec::with_capacity(ids.len());
    let mut stale = Vec::new();
    for ((id, info), role) in ids.iter().zip(infos).zip(roles) {
        let configured = state.config.rooms.find(id.as_str()).is_some();
        let info = match info {
            Some(info) => info,
            None if configured => RoomInfo::configured(id),
            None => {
                stale.push(id.clone());
                continue;
            }
        };
        let kept = configured
            || (role.is_some() && may_see(&info, role, &caller.user.groups, caller.admin));
        if kept {
            rooms.push((info, role));
        } else {
            stale.push(id.clone());
        }
    }
    // Repair what a crash between a room's step and its index left behind.
    for room in stale {
        let _ = state
            .store
            .set_listed(std::slice::from_ref(&caller.user.sub), &room, false)
            .await;
    }
    entries(state, caller, rooms).await
}

/// `GET /api/rooms`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    let rooms = my_rooms(&state, &caller).await?;
    Ok(fresh(StatusCode::OK, serde_json::json!({ "rooms": rooms })))
}

/// The directory's query.
#[derive(Debug, Deserialize)]
pub struct DirectoryQuery {
    /// A case-insensitive part of the name.
    #[serde(default)]
    pub q: String,
}

/// `GET /api/rooms/directory?q=`: public rooms the caller may join.
pub async fn directory(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DirectoryQuery>,
) -> Result<Response, ApiError> {
    let q = query.q.trim().to_lowercase();
    let mut found: Vec<(RoomName, Listing)> = state
        .rooms()
        .into_iter()
        .map(|r| {
            let listing = Listing {
                name: r.to_string(),
                topic: String::new(),
                groups: Vec::new(),
            };
            (r, listing)
        })
        .collect();
    found.extend(state.store.listings().await.map_err(unavailable)?);
    let found: Vec<(RoomName, Listing)> = found
        .into_iter()
        .filter(|(_, l)| l.name.to_lowercase().contains(&q))
        .filter(|(_, l)| {
            caller.admin || chat_core::access::groups_allow(&l.groups, &caller.user.groups)
        })
        .take(DIRECTORY_MAX)
        .collect();
    let ids: Vec<RoomName> = found.iter().map(|(r, _)| r.clone()).collect();
    let counts = state.store.member_counts(&ids).await.map_err(unavailable)?;
    let rooms: Vec<serde_json::Value> = found
        .into_iter()
        .zip(counts)
        .map(|((room, l), (_, members))| {
            serde_json::json!({ "room": room, "name": l.name, "topic": l.topic, "members": members })
        })
        .collect();
    Ok(fresh(StatusCode::OK, serde_json::json!({ "rooms": rooms })))
}

/// `POST /api/rooms`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Display name.
    pub name: String,
    /// Topic.
    #[serde(default)]
    pub topic: String,
    /// `public` or `private`.
    pub kind: RoomKind,
    /// Groups to bind it to.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `POST /api/rooms`: makes a public or private room owned by the caller.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateRoom>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| invalid())?;
    let name = text_field(&body.name, NAME_MAX, false)?;
    let topic = text_field(&body.topic, TOPIC_MAX, true)?;
    if body.kind == RoomKind::Direct || body.groups.len() > GROUPS_MAX {
        return Err(invalid());
    }
    let mut groups = Vec::with_capacity(body.groups.len());
    for group in &body.groups {
        groups.push(text_field(group, 200, false)?);
    }
    groups.sort();
    groups.dedup();
    if !caller.admin && groups.iter().any(|g| !caller.user.groups.contains(g)) {
        return Err(ApiError::new(ApiErrorCode::Forbidden));
    }
    let id = fresh_id("")?;
    let room = NewRoom {
        id: &id,
        name: &name,
        topic: &topic,
        kind: body.kind,
        groups: &groups,
        creator: &caller.user.sub,
        others: &[],
    };
    state
        .store
        .create(&room)
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    let me = std::slice::from_ref(&caller.user.sub);
    list_for(&state, me, &id, true).await?;
    if body.kind == RoomKind::Public {
        let listing = Listing {
            name: name.clone(),
            topic: topic.clone(),
            groups: groups.clone(),
        };
        state
            .store
            .set_listing(&id, Some(&listing))
            .await
            .map_err(unavailable)?;
    }
    Ok(fresh(
        StatusCode::CREATED,
        serde_json::json!({ "room": id, "name": name, "topic": topic, "kind": body.kind, "role": "owner" }),
    ))
}

/// `POST /api/rooms/direct`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDirect {
    /// The other people's ids.
    pub users: Vec<String>,
}

/// `POST /api/rooms/direct`: the one direct room of the caller and
/// `users` (201 when made now, 200 when it was there).
pub async fn direct(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateDirect>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|_| invalid())?;
    let mut others: Vec<String> = body
        .users
        .into_iter()
        .filter(|u| *u != caller.user.sub)
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() || others.len() >= DIRECT_MAX_MEMBERS {
        return Err(invalid());
    }
    let known = state
        .store
        .known_users(&others)
        .await
        .map_err(unavailable)?;
    if known.iter().any(Option::is_none) {
        return Err(invalid());
    }
    let mut people = others.clone();
    people.push(caller.user.sub.clone());
    people.sort();
    let candidate = fresh_id("d-")?;
    let id = state
        .store
        .direct_room(&people, &candidate)
        .await
        .map_err(unavailable)?;
    let room = NewRoom {
        id: &id,
        name: "",
        topic: "",
        kind: RoomKind::Direct,
        groups: &[],
        creator: &caller.user.sub,
        others: &others,
    };
    let made = state.store.create(&room).await.map_err(unavailable)?;
    let status = match made {
        Ok(()) => StatusCode::CREATED,
        Err(Refusal::Conflict) => StatusCode::OK,
        Err(other) => return Err(refused(other)),
    };
    list_for(&state, &people, &id, true).await?;
    let name = direct_name(&state, &id, &caller.user.sub).await?;
    Ok(fresh(
        status,
        serde_json::json!({ "room": id, "name": name, "topic": "", "kind": "direct", "role": "member" }),
    ))
}

/// One room as `GET /api/rooms/{room}` answers.
async fn details(state: &AppState, caller: &Caller, seen: Seen) -> Result<Response, ApiError> {
    let people = state
        .store
        .members(&seen.info.id)
        .await
        .map_err(unavailable)?;
    let ids: Vec<String> = people.iter().map(|(id, _)| id.clone()).collect();
    let known = state.store.known_users(&ids).await.map_err(unavailable)?;
    let people: Vec<serde_json::Value> = people
        .into_iter()
        .zip(known)
        .map(|((id, role), k)| {
            let name = k.map_or_else(|| id.clone(), |k| k.name);
            serde_json::json!({ "id": id, "name": name, "role": role })
        })
        .collect();
    let (posting, retention, groups) = (
        seen.info.posting,
        seen.info.retention_days,
        seen.info.groups.clone(),
    );
    let role = seen
        .acting_role(caller.admin)
        .filter(|_| seen.role.is_some() || caller.admin);
    let entry = entries(state, caller, vec![(seen.info, seen.role)])
        .await?
        .pop()
        .ok_or(ApiError::new(ApiErrorCode::Internal))?;
    let mut body =
        serde_json::to_value(&entry).map_err(|_| ApiError::new(ApiErrorCode::Internal))?;
    body["people"] = serde_json::Value::Array(people);
    body["posting"] = serde_json::json!(posting);
    body["retention_days"] = serde_json::json!(retention);
    body["groups"] = serde_json::json!(groups);
    body["configured"] = serde_json::json!(seen.configured);
    // What the caller may do: an administrator acts as owner.
    body["acting_role"] = serde_json::json!(role);
    Ok(fresh(StatusCode::OK, body))
}

/// `GET /api/rooms/{room}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    details(&state, &caller, seen).await
}

/// `PATCH /api/rooms/{room}` (owners): name, topic, posting, retention.
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    body: Result<Json<RoomUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(mut update) = body.map_err(|_| invalid())?;
    if let Some(name) = &update.name {
        update.name = Some(text_field(name, NAME_MAX, false)?);
    }
    if let Some(topic) = &update.topic {
        update.topic = Some(text_field(topic, TOPIC_MAX, true)?);
    }
    if update.retention_days == Some(Some(0)) {
        return Err(invalid());
    }
    let before = seen(&state, &caller, &room).await?;
    if before.info.kind == RoomKind::Direct && update.name.is_some() {
        return Err(ApiError::new(ApiErrorCode::Forbidden));
    }
    state
        .store
        .update(&before.info.id, caller.actor(), before.configured, &update)
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    let after = seen(&state, &caller, &room).await?;
    if after.info.kind == RoomKind::Public && !after.configured {
        let listing = Listing {
            name: after.info.name.clone(),
            topic: after.info.topic.clone(),
            groups: after.info.groups.clone(),
        };
        state
            .store
            .set_listing(&after.info.id, Some(&listing))
            .await
            .map_err(unavailable)?;
    }
    details(&state, &caller, after).await
}

/// `DELETE /api/rooms/{room}` (owners): the room and everything in it.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    let members = state
        .store
        .delete_room(&seen.info.id, caller.actor(), seen.configured)
        .await
        .map_err(unavailable)?
        .map_err(refused)?;
    list_for(&state, &members, &seen.info.id, false).await?;
    state
        .store
        .set_listing(&seen.info.id, None)
        .await
        .map_err(unavailable)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/rooms/{room}/join`: a public room the caller may see.
pub async fn join(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    let me = caller.user.sub.clone();
    change_member(&state, &caller, &seen, MemberChange::Join, &me, true).await?;
    if !seen.configured {
        list_for(&state, std::slice::from_ref(&me), &seen.info.id, true).await?;
    }
    let seen = self::seen(&state, &caller, &room).await?;
    details(&state, &caller, seen).await
}

/// `POST /api/rooms/{room}/leave`: any room but as its last owner.
pub async fn leave(
    State(state): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Response, ApiError> {
    let seen = seen(&state, &caller, &room).await?;
    let me = caller.user.sub.clone();
    change_member(&state, &caller, &seen, MemberChange::Leave, &me, true).await?;
    list_for(&state, std::slice::from_ref(&me), &seen.info.id, false).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
