//! Who may see which room (contract v2.0, "Rooms people make, and who may
//! enter them"), decided for the web service: its pages, its room API and
//! its room tokens. The store's scripts decide the same where messages and
//! changes are stored; this module reads the room and the caller's role and
//! groups to answer before anything is minted or shown.
//!
//! Also what a sign-in changes: the user is remembered (for finding people)
//! with their groups, and a group they lost takes the rooms it gave them.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use chat_core::RoomName;
use chat_core::UserRef;
use chat_core::access::{Role, RoomKind, groups_allow};
use chat_store::rooms::{Actor, MemberChange, RoomInfo};

use crate::error::{ApiError, ApiErrorCode};
use crate::session::{ApiUser, SessionUser};
use crate::state::AppState;
use crate::tokens::same_origin;

/// A signed-in caller of the room API, from this site's own pages.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who they are.
    pub user: SessionUser,
    /// Whether they are an administrator (`ADMIN_GROUPS`).
    pub admin: bool,
}

impl Caller {
    /// As an actor of a room change.
    pub fn actor(&self) -> Actor<'_> {
        Actor {
            id: &self.user.sub,
            admin: self.admin,
        }
    }
}

/// Whether a request of `method` with `headers` comes from this site: a
/// change needs a same-origin `Origin`; a read is refused only when it names
/// another origin (browsers send no `Origin` on a same-origin GET).
fn from_this_site(method: &Method, headers: &HeaderMap, public_origin: &str) -> bool {
    if method == Method::GET || method == Method::HEAD {
        let site_ok = headers
            .get("sec-fetch-site")
            .is_none_or(|s| matches!(s.as_bytes(), b"same-origin" | b"none"));
        let origin_ok = headers
            .get(axum::http::header::ORIGIN)
            .is_none_or(|o| o.as_bytes() == public_origin.as_bytes());
        site_ok && origin_ok
    } else {
        same_origin(headers, public_origin)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if !from_this_site(&parts.method, &parts.headers, &state.config.public_origin()) {
            tracing::warn!(origin = ?parts.headers.get("origin"), "room API call from another origin refused");
            return Err(ApiError::new(ApiErrorCode::Forbidden));
        }
        let ApiUser(user) = ApiUser::from_request_parts(parts, state).await?;
        let admin = state.config.is_admin(&user.groups);
        Ok(Self { user, admin })
    }
}

/// A room as its caller may see it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its settings.
    pub info: RoomInfo,
    /// Whether it is configured (`ROOMS`).
    pub configured: bool,
    /// The caller's role in it (`None`: not a member).
    pub role: Option<Role>,
}

impl Seen {
    /// The role the caller acts with: administrators act as owner outside
    /// direct rooms.
    pub fn acting_role(&self, admin: bool) -> Option<Role> {
        if admin && self.info.kind != RoomKind::Direct {
            Some(Role::Owner)
        } else {
            self.role
        }
    }
}

/// Whether someone with `role`, `groups` and `admin` may see (and read) a
/// room with `info`.
pub fn may_see(info: &RoomInfo, role: Option<Role>, groups: &[String], admin: bool) -> bool {
    match info.kind {
        RoomKind::Public => admin || groups_allow(&info.groups, groups),
        RoomKind::Private => role.is_some() || admin,
        RoomKind::Direct => role.is_some(),
    }
}

/// `room` as `caller` may see it; 404 `not_found` for a room that does not
/// exist or that they may not see (its existence never leaks).
pub async fn seen(state: &AppState, caller: &Caller, room: &str) -> Result<Seen, ApiError> {
    let not_found = || ApiError::new(ApiErrorCode::NotFound);
    let room = RoomName::parse(room).map_err(|_| not_found())?;
    let configured = state.config.rooms.find(room.as_str()).is_some();
    let rooms = std::slice::from_ref(&room);
    let (infos, roles) = tokio::try_join!(
        state.store.rooms_info(rooms),
        state.store.roles_of(rooms, &caller.user.sub)
    )
    .map_err(unavailable)?;
    let info = match infos.into_iter().next().flatten() {
        Some(info) => info,
        None if configured => RoomInfo::configured(&room),
        None => return Err(not_found()),
    };
    let role = roles.into_iter().next().flatten();
    if !may_see(&info, role, &caller.user.groups, caller.admin) {
        return Err(not_found());
    }
    Ok(Seen {
        info,
        configured,
        role,
    })
}

/// 503 `unavailable` for a store that failed.
pub fn unavailable(e: chat_store::StoreError) -> ApiError {
    tracing::warn!(error = %e, "room API: the store failed");
    ApiError::new(ApiErrorCode::Unavailable)
}

/// After a sign-in: remembers the user and their groups, and when they lost
/// a group, takes away the rooms only it gave them (their tokens for those
/// are refused and their connections end). Failures are logged: the
/// sign-in itself stands, and the next one tries again.
pub async fn signed_in(state: &AppState, user: &SessionUser) {
    let me = UserRef {
        id: user.sub.clone(),
        name: user.name.clone(),
    };
    let before = match state.store.remember_user(&me, &user.groups).await {
        Ok(before) => before,
        Err(e) => {
            tracing::warn!(error = %e, "could not remember the signed-in user");
            return;
        }
    };
    let lost_some = before.is_some_and(|b| b.groups.iter().any(|g| !user.groups.contains(g)));
    if !lost_some || state.config.is_admin(&user.groups) {
        return;
    }
    if let Err(e) = take_lost_rooms(state, user).await {
        tracing::warn!(error = %e, sub = %user.sub, "could not take away the rooms of lost groups");
    }
}

/// Takes away from `user` every room bound to groups they are no longer in:
/// those in their list, and the public ones they may have open unjoined.
async fn take_lost_rooms(
    state: &AppState,
    user: &SessionUser,
) -> Result<(), chat_store::StoreError> {
    let mut rooms = state.store.list_of(&user.sub).await?;
    for (room, listing) in state.store.listings().await? {
        if !listing.groups.is_empty() && !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    let infos = state.store.rooms_info(&rooms).await?;
    for (room, info) in rooms.iter().zip(infos) {
        let Some(info) = info else { continue };
        if groups_allow(&info.groups, &user.groups) {
            continue;
        }
        let nobody = Actor {
            id: "",
            admin: false,
        };
        let configured = state.config.rooms.find(room.as_str()).is_some();
        let changed = state
            .store
            .change_member(
                room,
                nobody,
                configured,
                MemberChange::Revoke,
                &user.sub,
                false,
            )
            .await?;
        if changed.is_ok() {
            state
                .store
                .set_listed(std::slice::from_ref(&user.sub), room, false)
                .await?;
            tracing::info!(sub = %user.sub, %room, "a lost group took the room away");
        }
    }
    Ok(())
}
