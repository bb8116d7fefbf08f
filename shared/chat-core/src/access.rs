//! Who may do what in a room (contract v2.0, "Rooms people make, and who
//! may enter them"): its kind, its roles and its posting rule, and the
//! decisions made from them. The store's scripts make the same decisions
//! where the data is stored (`chat-store`'s rooms module); the in-memory
//! backend and the web service's checks make them here.

use serde::{Deserialize, Serialize};

/// Who sees a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoomKind {
    /// Every signed-in user its groups allow; listed in the directory.
    Public,
    /// Its members only.
    Private,
    /// A conversation between 2 to 8 fixed members.
    Direct,
}

impl RoomKind {
    /// The kind as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
            Self::Direct => "direct",
        }
    }

    /// The kind from its stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Self::Public),
            "private" => Some(Self::Private),
            "direct" => Some(Self::Direct),
            _ => None,
        }
    }
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Takes part.
    Member,
    /// Adds members, removes and mutes members, deletes any message.
    Moderator,
    /// Changes the room's settings and everyone's roles.
    Owner,
}

impl Role {
    /// The role as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Moderator => "moderator",
            Self::Owner => "owner",
        }
    }

    /// The role from its stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "member" => Some(Self::Member),
            "moderator" => Some(Self::Moderator),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    /// Whether it moderates (owner or moderator).
    pub fn moderates(self) -> bool {
        self >= Self::Moderator
    }
}

/// Who may post in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Posting {
    /// Everyone who may read it.
    #[default]
    Everyone,
    /// Owners and moderators only: an announcement room.
    Moderators,
}

impl Posting {
    /// The rule as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Moderators => "moderators",
        }
    }

    /// The rule from its stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "everyone" => Some(Self::Everyone),
            "moderators" => Some(Self::Moderators),
            _ => None,
        }
    }
}

/// Most members of a direct conversation, its creator included.
pub const DIRECT_MAX_MEMBERS: usize = 8;

/// Whether someone in `user_groups` passes a room bound to `room_groups`
/// (unbound: everyone).
pub fn groups_allow(room_groups: &[String], user_groups: &[String]) -> bool {
    room_groups.is_empty() || room_groups.iter().any(|g| user_groups.contains(g))
}

/// What `actor` (with `actor_role`, `None` if not a member) may do to a
/// member whose role is `target_role`, in a room of `kind`.
pub fn may_remove(kind: RoomKind, actor_role: Option<Role>, target_role: Role) -> bool {
    if kind == RoomKind::Direct {
        return false;
    }
    match actor_role {
        Some(Role::Owner) => true,
        Some(Role::Moderator) => target_role == Role::Member,
        _ => false,
    }
}

/// Whether a user with `role` (`None`: not a member) may post where
/// `posting` rules; `muted` users never may.
pub fn may_post(posting: Posting, role: Option<Role>, muted: bool) -> bool {
    !muted && (posting == Posting::Everyone || role.is_some_and(Role::moderates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_roles_and_postings_round_trip_their_stored_form() {
        for kind in [RoomKind::Public, RoomKind::Private, RoomKind::Direct] {
            assert_eq!(RoomKind::parse(kind.as_str()), Some(kind));
        }
        for role in [Role::Member, Role::Moderator, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        for posting in [Posting::Everyone, Posting::Moderators] {
            assert_eq!(Posting::parse(posting.as_str()), Some(posting));
        }
        assert_eq!(RoomKind::parse("secret"), None);
        assert_eq!(
            serde_json::to_string(&Role::Moderator).expect("json"),
            "\"moderator\""
        );
    }

    #[test]
    fn moderators_remove_members_only_and_nobody_changes_a_direct_room() {
        use Role::*;
        assert!(may_remove(RoomKind::Private, Some(Owner), Moderator));
        assert!(may_remove(RoomKind::Private, Some(Moderator), Member));
        assert!(!may_remove(RoomKind::Private, Some(Moderator), Moderator));
        assert!(!may_remove(RoomKind::Private, Some(Moderator), Owner));
        assert!(!may_remove(RoomKind::Public, Some(Member), Member));
        assert!(!may_remove(RoomKind::Public, None, Member));
        assert!(!may_remove(RoomKind::Direct, Some(Owner), Member));
    }

    #[test]
    fn announcement_rooms_and_mutes_stop_posting() {
        assert!(may_post(Posting::Everyone, None, false));
        assert!(!may_post(Posting::Everyone, Some(Role::Owner), true));
        assert!(!may_post(Posting::Moderators, Some(Role::Member), false));
        assert!(!may_post(Posting::Moderators, None, false));
        assert!(may_post(Posting::Moderators, Some(Role::Moderator), false));
    }

    #[test]
    fn groups_bind_only_when_listed() {
        let some = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(groups_allow(&[], &[]));
        assert!(groups_allow(&some(&["eng"]), &some(&["ops", "eng"])));
        assert!(!groups_allow(&some(&["eng"]), &some(&["ops"])));
    }
}
