//! Rooms as data (contract v2.0): [`Rooms`], its types, and its two
//! implementations.
//!
//! A room's settings, members, mutes, removal stamps and audit trail live in
//! the room's hash slot beside its messages (`chat:room:{R}:meta`, `members`,
//! `mutes`, `removed`, `audit`; see [`crate::schema`]), so the scripts that
//! store a message, a deletion or a join read them in the same step
//! (`lua/prelude.lua`: `read_refusal`, `may_post`). Each change of a room is
//! one script here that checks its rules ([`chat_core::access`]) where it
//! stores it, records it in the audit, and, when someone loses access,
//! stamps the time (their older tokens are refused) and tells every replica
//! to end their connections ([`crate::events::AccessLost`]).
//!
//! What is derived from rooms for finding them (a user's list, the
//! directory, direct conversations, people) is in [`crate::directory`].

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chat_core::RoomName;
use chat_core::access::{Posting, Role, RoomKind, groups_allow};
use fred::prelude::*;
use fred::types::Value;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::events::AccessLoss;
use crate::memory::{MemoryBackend, RoomState, State, now_ms};
use crate::redis::RedisBackend;
use crate::redis::reply;
use crate::schema;

crate::scripts::script! {
    /// Make a room, its owner and its first audit entry.
    CREATE = "lua/room_create.lua";
    /// Change a room's settings (owners).
    UPDATE = "lua/room_update.lua";
    /// Join, leave, add, remove, change a role, or take a lost group's access.
    MEMBER = "lua/room_member.lua";
    /// Mute or unmute a member (owners, moderators).
    MUTE = "lua/room_mute.lua";
    /// Delete a room and end every connection to it.
    DELETE_ROOM = "lua/room_delete.lua";
}

/// How many audit entries a page holds.
pub const AUDIT_PAGE: usize = 100;

/// Where an asker stands, which the scripts check their rights against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// When the token they act with was issued (ms): access lost at or
    /// after it refuses them.
    pub issued_ms: u64,
    /// Whether they are an administrator (acts as owner outside direct rooms).
    pub admin: bool,
    /// Whether the room is configured (`ROOMS`): it exists without settings.
    pub configured: bool,
}

impl Standing {
    /// The script arguments: issued ms, admin, configured.
    pub(crate) fn args(&self) -> [Value; 3] {
        [
            Value::from(i64::try_from(self.issued_ms).unwrap_or(i64::MAX)),
            flag(self.admin),
            flag(self.configured),
        ]
    }
}

fn flag(on: bool) -> Value {
    Value::from(if on { "1" } else { "0" })
}

/// A room's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomInfo {
    /// Its id.
    pub id: RoomName,
    /// Its display name.
    pub name: String,
    /// Its topic.
    pub topic: String,
    /// Who sees it.
    pub kind: RoomKind,
    /// Who posts in it.
    pub posting: Posting,
    /// How long its messages are kept, in days (`None`: the default).
    pub retention_days: Option<u32>,
    /// The identity provider's groups it is bound to (empty: none).
    pub groups: Vec<String>,
}

impl RoomInfo {
    /// A configured room that was never changed: public, named as its id.
    pub fn configured(id: &RoomName) -> Self {
        Self {
            id: id.clone(),
            name: id.to_string(),
            topic: String::new(),
            kind: RoomKind::Public,
            posting: Posting::Everyone,
            retention_days: None,
            groups: Vec::new(),
        }
    }

    /// From the settings hash, if it holds a room.
    fn from_fields(id: &RoomName, fields: &HashMap<String, String>) -> Option<Self> {
        let kind = RoomKind::parse(fields.get("kind")?)?;
        Some(Self {
            id: id.clone(),
            name: fields
                .get("name")
                .cloned()
                .unwrap_or_else(|| id.to_string()),
            topic: fields.get("topic").cloned().unwrap_or_default(),
            kind,
            posting: fields
                .get("posting")
                .and_then(|p| Posting::parse(p))
                .unwrap_or_default(),
            retention_days: fields.get("retention_days").and_then(|d| d.parse().ok()),
            groups: fields
                .get("groups")
                .and_then(|g| serde_json::from_str(g).ok())
                .unwrap_or_default(),
        })
    }

    /// Whether someone in `groups` (an administrator: any) may see it,
    /// before membership: public rooms their groups allow.
    pub fn visible_to_groups(&self, groups: &[String], admin: bool) -> bool {
        self.kind == RoomKind::Public && (admin || groups_allow(&self.groups, groups))
    }
}

/// A room to make.
#[derive(Debug, Clone)]
pub struct NewRoom<'a> {
    /// Its id (fresh).
    pub id: &'a RoomName,
    /// Its display name.
    pub name: &'a str,
    /// Its topic.
    pub topic: &'a str,
    /// Public, private or direct.
    pub kind: RoomKind,
    /// The groups it is bound to.
    pub groups: &'a [String],
    /// Its creator: owner (in a direct room, a member).
    pub creator: &'a str,
    /// A direct room's other members.
    pub others: &'a [String],
}

/// Changes to a room's settings; `None` leaves one as it is.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RoomUpdate {
    /// A new name.
    pub name: Option<String>,
    /// A new topic.
    pub topic: Option<String>,
    /// A new posting rule.
    pub posting: Option<Posting>,
    /// A new retention (`Some(None)`: none).
    #[serde(default, with = "serde_with_double_option")]
    pub retention_days: Option<Option<u32>>,
}

/// `Option<Option<T>>` from JSON: absent → `None`, `null` → `Some(None)`.
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

impl RoomUpdate {
    /// The settings it changes, as stored.
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if let Some(name) = &self.name {
            out.push(("name", name.clone()));
        }
        if let Some(topic) = &self.topic {
            out.push(("topic", topic.clone()));
        }
        if let Some(posting) = self.posting {
            out.push(("posting", posting.as_str().to_owned()));
        }
        if let Some(days) = self.retention_days {
            out.push((
                "retention_days",
                days.map(|d| d.to_string()).unwrap_or_default(),
            ));
        }
        out
    }
}

/// A change of membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// The actor joins a public room.
    Join,
    /// The actor leaves.
    Leave,
    /// Adds the target, or changes their role (`None`: keep it, or member).
    Put(Option<Role>),
    /// Removes the target.
    Remove,
    /// The target lost the group that let them in (at sign-in): no actor.
    Revoke,
}

impl MemberChange {
    fn as_str(self) -> &'static str {
        match self {
            Self::Join => "join",
            Self::Leave => "leave",
            Self::Put(_) => "put",
            Self::Remove => "remove",
            Self::Revoke => "revoke",
        }
    }
}

/// Why a change of a room was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No such room, or one the actor may not see; or no such member.
    NotFound,
    /// The actor's role does not allow it.
    Forbidden,
    /// It would leave the room without an owner, or the room exists.
    Conflict,
}

/// What a change of a room came to.
pub type Outcome<T = ()> = Result<T, Refusal>;

/// One entry of a room's audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub ts: u64,
    /// Who did it (`None`: the service itself, e.g. a lost group).
    pub actor: Option<String>,
    /// What: `room_created`, `member_added`, … (contract v2.0).
    pub action: String,
    /// To whom.
    pub target: Option<String>,
    /// What changed.
    pub detail: serde_json::Value,
}

/// Who acts on a room.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their user id.
    pub id: &'a str,
    /// Whether they are an administrator (`ADMIN_GROUPS`).
    pub admin: bool,
}

/// Rooms as data. Every change is one step in the room's slot.
#[async_trait]
pub trait Rooms: Send + Sync {
    /// Makes a room (`Conflict` if its id is taken).
    async fn create(&self, room: &NewRoom<'_>) -> Result<Outcome, StoreError>;
    /// The settings of each of `rooms` that was made (or changed, for a
    /// configured room), in one round trip.
    async fn rooms_info(&self, rooms: &[RoomName]) -> Result<Vec<Option<RoomInfo>>, StoreError>;
    /// Every member of `room` with their role.
    async fn members(&self, room: &RoomName) -> Result<Vec<(String, Role)>, StoreError>;
    /// `user`'s role in each of `rooms`, in one round trip.
    async fn roles_of(
        &self,
        rooms: &[RoomName],
        user: &str,
    ) -> Result<Vec<Option<Role>>, StoreError>;
    /// Changes a room's settings (owners).
    async fn update(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        update: &RoomUpdate,
    ) -> Result<Outcome, StoreError>;
    /// Changes `target`'s membership; `allowed` says whether the target's
    /// groups allow the room.
    async fn change_member(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        change: MemberChange,
        target: &str,
        allowed: bool,
    ) -> Result<Outcome, StoreError>;
    /// Mutes `target` until `until_ms`, or lifts the mute (`None`).
    async fn mute(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        target: &str,
        until_ms: Option<u64>,
    ) -> Result<Outcome, StoreError>;
    /// Deletes a room and everything in it; answers its members.
    async fn delete_room(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
    ) -> Result<Outcome<Vec<String>>, StoreError>;
    /// Up to [`AUDIT_PAGE`] entries before `before_ms` (none: the newest), newest first.
    async fn audit(
        &self,
        room: &RoomName,
        before_ms: Option<u64>,
    ) -> Result<Vec<AuditEntry>, StoreError>;
    /// When each of `users` last lost access to `room` (ms), and whether the
    /// room still exists (for a replica that missed the news).
    async fn access_of(
        &self,
        room: &RoomName,
        users: &[String],
        configured: bool,
    ) -> Result<(bool, Vec<Option<u64>>), StoreError>;
}

// On Redis.

impl RedisBackend {
    async fn refusable(
        &self,
        op: &'static str,
        script: &fred::types::scripts::Script,
        room: &RoomName,
        args: Vec<Value>,
    ) -> Result<Outcome, StoreError> {
        let answer = reply::string(op, self.run(op, script, room, args).await?)?;
        outcome(op, &answer)
    }
}

fn outcome(op: &'static str, answer: &str) -> Result<Outcome, StoreError> {
    match answer {
        "done" => Ok(Ok(())),
        other => serde_json::from_value::<Refusal>(serde_json::Value::String(other.to_owned()))
            .map(Err)
            .map_err(|_| StoreError::reply(op, format!("unexpected answer {other:?}"))),
    }
}

fn ms_value(ms: u64) -> Value {
    Value::from(i64::try_from(ms).unwrap_or(i64::MAX))
}

#[async_trait]
impl Rooms for RedisBackend {
    async fn create(&self, room: &NewRoom<'_>) -> Result<Outcome, StoreError> {
        let groups = serde_json::to_string(room.groups).unwrap_or_else(|_| "[]".into());
        let mut args = vec![
            Value::from(room.name),
            Value::from(room.topic),
            Value::from(room.kind.as_str()),
            Value::from(groups),
            Value::from(room.creator),
        ];
        args.extend(room.others.iter().map(|o| Value::from(o.as_str())));
        self.refusable("create room", &CREATE, room.id, args).await
    }

    async fn rooms_info(&self, rooms: &[RoomName]) -> Result<Vec<Option<RoomInfo>>, StoreError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client.pipeline();
        for room in rooms {
            pipeline
                .hgetall::<(), _>(schema::room_key(room, "meta"))
                .await
                .map_err(StoreError::redis("queue HGETALL meta"))?;
        }
        let all: Vec<HashMap<String, String>> = pipeline
            .all()
            .await
            .map_err(StoreError::redis("HGETALL meta"))?;
        Ok(rooms
            .iter()
            .zip(all)
            .map(|(room, fields)| RoomInfo::from_fields(room, &fields))
            .collect())
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<(String, Role)>, StoreError> {
        let all: HashMap<String, String> = self
            .client
            .hgetall(schema::room_key(room, "members"))
            .await
            .map_err(StoreError::redis("HGETALL members"))?;
        let mut out: Vec<(String, Role)> = all
            .into_iter()
            .filter_map(|(u, r)| Some((u, Role::parse(&r)?)))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn roles_of(
        &self,
        rooms: &[RoomName],
        user: &str,
    ) -> Result<Vec<Option<Role>>, StoreError> {
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let pipeline = self.client.pipeline();
        for room in rooms {
            pipeline
                .hget::<(), _, _>(schema::room_key(room, "members"), user)
                .await
                .map_err(StoreError::redis("queue HGET members"))?;
        }
        let roles: Vec<Option<String>> = pipeline
            .all()
            .await
            .map_err(StoreError::redis("HGET members"))?;
        Ok(roles
            .into_iter()
            .map(|r| r.and_then(|r| Role::parse(&r)))
            .collect())
    }

    async fn update(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        update: &RoomUpdate,
    ) -> Result<Outcome, StoreError> {
        let mut args = vec![Value::from(actor.id), flag(actor.admin), flag(configured)];
        for (field, value) in update.fields() {
            args.extend([Value::from(field), Value::from(value)]);
        }
        self.refusable("update room", &UPDATE, room, args).await
    }

    async fn change_member(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        change: MemberChange,
        target: &str,
        allowed: bool,
    ) -> Result<Outcome, StoreError> {
        let role = match change {
            MemberChange::Put(Some(role)) => role.as_str(),
            _ => "",
        };
        let args = vec![
            Value::from(change.as_str()),
            Value::from(actor.id),
            flag(actor.admin),
            flag(configured),
            Value::from(target),
            Value::from(role),
            flag(allowed),
        ];
        self.refusable("change member", &MEMBER, room, args).await
    }

    async fn mute(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        target: &str,
        until_ms: Option<u64>,
    ) -> Result<Outcome, StoreError> {
        let args = vec![
            Value::from(actor.id),
            flag(actor.admin),
            flag(configured),
            Value::from(target),
            until_ms.map_or(Value::from(""), ms_value),
        ];
        self.refusable("mute member", &MUTE, room, args).await
    }

    async fn delete_room(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
    ) -> Result<Outcome<Vec<String>>, StoreError> {
        const OP: &str = "delete room";
        let args = vec![Value::from(actor.id), flag(actor.admin), flag(configured)];
        let answer: Vec<String> = self
            .run(OP, &DELETE_ROOM, room, args)
            .await?
            .convert()
            .map_err(StoreError::redis(OP))?;
        let mut answer = answer.into_iter();
        let first = answer.next().unwrap_or_default();
        Ok(outcome(OP, &first)?.map(|()| answer.collect()))
    }

    async fn audit(
        &self,
        room: &RoomName,
        before_ms: Option<u64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let end = before_ms.map_or_else(|| "+".to_owned(), |ms| format!("({ms}-0"));
        let entries: Vec<(String, HashMap<String, String>)> = self
            .client
            .xrevrange(
                schema::room_key(room, "audit"),
                end,
                "-",
                Some(AUDIT_PAGE as u64),
            )
            .await
            .map_err(StoreError::redis("XREVRANGE audit"))?;
        Ok(entries
            .into_iter()
            .map(|(id, f)| {
                let ts = id
                    .split('-')
                    .next()
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(0);
                let text = |k: &str| f.get(k).filter(|v| !v.is_empty()).cloned();
                AuditEntry {
                    ts,
                    actor: text("a"),
                    action: text("x").unwrap_or_default(),
                    target: text("t"),
                    detail: text("d")
                        .and_then(|d| serde_json::from_str(&d).ok())
                        .unwrap_or_else(|| serde_json::json!({})),
                }
            })
            .collect())
    }

    async fn access_of(
        &self,
        room: &RoomName,
        users: &[String],
        configured: bool,
    ) -> Result<(bool, Vec<Option<u64>>), StoreError> {
        let pipeline = self.client.pipeline();
        pipeline
            .exists::<(), _>(schema::room_key(room, "meta"))
            .await
            .map_err(StoreError::redis("queue EXISTS meta"))?;
        for user in users {
            pipeline
                .hget::<(), _, _>(schema::room_key(room, "removed"), user.as_str())
                .await
                .map_err(StoreError::redis("queue HGET removed"))?;
        }
        let mut answers: Vec<Value> = pipeline
            .all()
            .await
            .map_err(StoreError::redis("read access"))?;
        if answers.len() != users.len() + 1 {
            return Err(StoreError::reply("read access", "short pipeline answer"));
        }
        let stamps = answers.split_off(1);
        let exists = configured || answers[0].as_u64().is_some_and(|n| n == 1);
        Ok((
            exists,
            stamps
                .into_iter()
                .map(|v| v.as_string().and_then(|s| s.parse().ok()))
                .collect(),
        ))
    }
}

// In memory.

/// A room's settings, members, mutes, stamps and audit, in memory.
#[derive(Default)]
pub(crate) struct RoomData {
    pub(crate) info: Option<RoomInfo>,
    pub(crate) members: BTreeMap<String, Role>,
    /// user id → muted until (ms).
    pub(crate) mutes: HashMap<String, u64>,
    /// user id → when they lost access (ms).
    pub(crate) removed: HashMap<String, u64>,
    pub(crate) audit: Vec<AuditEntry>,
}

impl RoomData {
    fn kind(&self) -> RoomKind {
        self.info.as_ref().map_or(RoomKind::Public, |i| i.kind)
    }

    fn exists(&self, configured: bool) -> bool {
        configured || self.info.is_some()
    }

    /// `read_refusal` of `lua/prelude.lua`.
    pub(crate) fn read_refusal(&self, uid: &str, standing: Standing) -> Option<Refused> {
        if !self.exists(standing.configured) {
            return Some(Refused::Unknown);
        }
        if self
            .removed
            .get(uid)
            .is_some_and(|at| *at >= standing.issued_ms)
        {
            return Some(Refused::Revoked);
        }
        let kind = self.kind();
        let admitted = kind == RoomKind::Public
            || self.members.contains_key(uid)
            || (standing.admin && kind != RoomKind::Direct);
        (!admitted).then_some(Refused::Revoked)
    }

    /// The role `actor` acts with in the room; `NotFound` for a room that
    /// does not exist or that they may not see (the scripts' same checks).
    fn role_seen_by(&self, actor: Actor<'_>, configured: bool) -> Result<Option<Role>, Refusal> {
        if !self.exists(configured) {
            return Err(Refusal::NotFound);
        }
        let role = self.acting_role(actor.id, actor.admin);
        if self.kind() != RoomKind::Public && role.is_none() {
            return Err(Refusal::NotFound);
        }
        Ok(role)
    }

    fn acting_role(&self, uid: &str, admin: bool) -> Option<Role> {
        if admin && self.kind() != RoomKind::Direct {
            return Some(Role::Owner);
        }
        self.members.get(uid).copied()
    }

    /// `may_post` of `lua/prelude.lua`.
    pub(crate) fn may_post(&self, uid: &str, standing: Standing) -> bool {
        if self.read_refusal(uid, standing).is_some() {
            return false;
        }
        let muted = self.mutes.get(uid).is_some_and(|until| *until > now_ms());
        let posting = self.info.as_ref().map_or(Posting::Everyone, |i| i.posting);
        chat_core::access::may_post(posting, self.acting_role(uid, standing.admin), muted)
    }

    /// Whether `uid` may delete a message of `author`'s.
    pub(crate) fn may_delete(&self, uid: &str, author: &str, standing: Standing) -> bool {
        self.read_refusal(uid, standing).is_none()
            && (uid == author
                || self
                    .acting_role(uid, standing.admin)
                    .is_some_and(Role::moderates))
    }

    pub(crate) fn record(
        &mut self,
        actor: &str,
        action: &str,
        target: Option<&str>,
        detail: serde_json::Value,
    ) {
        self.audit.push(AuditEntry {
            ts: now_ms(),
            actor: (!actor.is_empty()).then(|| actor.to_owned()),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            detail,
        });
    }

    fn last_owner(&self, target: &str) -> bool {
        self.members.get(target) == Some(&Role::Owner)
            && self.members.values().filter(|r| **r == Role::Owner).count() <= 1
    }
}

/// Why a join was refused (`read_refusal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// No such room.
    Unknown,
    /// The user may not read it.
    Revoked,
}

impl State {
    /// `start_reading` of `lua/prelude.lua`: `uid`'s read marker starts
    /// where the room stands, if they have none.
    fn start_reading(&mut self, room: &RoomName, uid: &str) {
        let state = self.rooms.entry(room.clone()).or_default();
        let count = state.history.count;
        state.reads.markers.entry(uid.to_owned()).or_insert(count);
    }

    fn room_data(&mut self, room: &RoomName) -> &mut RoomData {
        &mut self.rooms.entry(room.clone()).or_default().data
    }

    /// Ends `user`'s (or everyone's) connections to `room` on every replica.
    fn lose_access(&mut self, room: &RoomName, user: Option<&str>, loss: AccessLoss) {
        self.publish_access_lost(room, user.map(str::to_owned), loss);
    }
}

#[async_trait]
impl Rooms for MemoryBackend {
    async fn create(&self, room: &NewRoom<'_>) -> Result<Outcome, StoreError> {
        let mut s = self.hub.lock();
        let data = s.room_data(room.id);
        if data.info.is_some() {
            return Ok(Err(Refusal::Conflict));
        }
        data.info = Some(RoomInfo {
            id: room.id.clone(),
            name: room.name.to_owned(),
            topic: room.topic.to_owned(),
            kind: room.kind,
            posting: Posting::Everyone,
            retention_days: None,
            groups: room.groups.to_vec(),
        });
        if room.kind == RoomKind::Direct {
            for member in
                std::iter::once(room.creator).chain(room.others.iter().map(String::as_str))
            {
                data.members.insert(member.to_owned(), Role::Member);
            }
        } else {
            data.members.insert(room.creator.to_owned(), Role::Owner);
        }
        data.record(
            room.creator,
            "room_created",
            None,
            serde_json::json!({ "name": room.name, "kind": room.kind }),
        );
        for member in std::iter::once(room.creator).chain(room.others.iter().map(String::as_str)) {
            s.start_reading(room.id, member);
        }
        Ok(Ok(()))
    }

    async fn rooms_info(&self, rooms: &[RoomName]) -> Result<Vec<Option<RoomInfo>>, StoreError> {
        let s = self.hub.lock();
        Ok(rooms
            .iter()
            .map(|r| s.rooms.get(r).and_then(|r| r.data.info.clone()))
            .collect())
    }

    async fn members(&self, room: &RoomName) -> Result<Vec<(String, Role)>, StoreError> {
        let s = self.hub.lock();
        Ok(s.rooms.get(room).map_or_else(Vec::new, |r| {
            r.data
                .members
                .iter()
                .map(|(u, r)| (u.clone(), *r))
                .collect()
        }))
    }

    async fn roles_of(
        &self,
        rooms: &[RoomName],
        user: &str,
    ) -> Result<Vec<Option<Role>>, StoreError> {
        let s = self.hub.lock();
        Ok(rooms
            .iter()
            .map(|r| {
                s.rooms
                    .get(r)
                    .and_then(|r| r.data.members.get(user).copied())
            })
            .collect())
    }

    async fn update(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        update: &RoomUpdate,
    ) -> Result<Outcome, StoreError> {
        let mut s = self.hub.lock();
        let data = s.room_data(room);
        let role = match data.role_seen_by(actor, configured) {
            Ok(role) => role,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if role != Some(Role::Owner) {
            return Ok(Err(Refusal::Forbidden));
        }
        let info = data.info.get_or_insert_with(|| RoomInfo::configured(room));
        let mut detail = serde_json::Map::new();
        let mut change = |field: &str, before: String, after: String| {
            if before != after {
                detail.insert(
                    field.to_owned(),
                    serde_json::json!({ "from": before, "to": after }),
                );
            }
        };
        if let Some(name) = &update.name {
            change(
                "name",
                std::mem::replace(&mut info.name, name.clone()),
                name.clone(),
            );
        }
        if let Some(topic) = &update.topic {
            change(
                "topic",
                std::mem::replace(&mut info.topic, topic.clone()),
                topic.clone(),
            );
        }
        if let Some(posting) = update.posting {
            let before = std::mem::replace(&mut info.posting, posting);
            change("posting", before.as_str().into(), posting.as_str().into());
        }
        if let Some(days) = update.retention_days {
            let before = std::mem::replace(&mut info.retention_days, days);
            let shown = |d: Option<u32>| d.map(|d| d.to_string()).unwrap_or_default();
            change("retention_days", shown(before), shown(days));
        }
        if !detail.is_empty() {
            data.record(
                actor.id,
                "room_updated",
                None,
                serde_json::Value::Object(detail),
            );
        }
        Ok(Ok(()))
    }

    async fn change_member(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        change: MemberChange,
        target: &str,
        allowed: bool,
    ) -> Result<Outcome, StoreError> {
        let mut s = self.hub.lock();
        let data = s.room_data(room);
        if !data.exists(configured) {
            return Ok(Err(Refusal::NotFound));
        }
        let kind = data.kind();
        let mine = data.acting_role(actor.id, actor.admin);
        let theirs = data.members.get(target).copied();
        if kind != RoomKind::Public && mine.is_none() && change != MemberChange::Revoke {
            return Ok(Err(Refusal::NotFound));
        }
        let mut lost = false;
        let mut started = false;
        let mut lose = |data: &mut RoomData, action: &str| {
            data.members.remove(target);
            data.mutes.remove(target);
            if !configured {
                data.removed.insert(target.to_owned(), now_ms());
                lost = true;
            }
            let role = theirs.map(Role::as_str);
            data.record(
                actor.id,
                action,
                Some(target),
                serde_json::json!({ "role": role }),
            );
        };
        match change {
            MemberChange::Join => {
                if kind != RoomKind::Public || !allowed {
                    return Ok(Err(Refusal::Forbidden));
                }
                if theirs.is_none() {
                    data.members.insert(target.to_owned(), Role::Member);
                    data.record(
                        actor.id,
                        "member_joined",
                        Some(target),
                        serde_json::json!({}),
                    );
                }
            }
            MemberChange::Leave | MemberChange::Remove => {
                if kind == RoomKind::Direct {
                    return Ok(Err(Refusal::Forbidden));
                }
                let Some(theirs) = theirs else {
                    return Ok(Err(Refusal::NotFound));
                };
                if change == MemberChange::Remove
                    && !chat_core::access::may_remove(kind, mine, theirs)
                {
                    return Ok(Err(Refusal::Forbidden));
                }
                if data.last_owner(target) {
                    return Ok(Err(Refusal::Conflict));
                }
                let action = if change == MemberChange::Leave {
                    "member_left"
                } else {
                    "member_removed"
                };
                lose(data, action);
            }
            MemberChange::Revoke => {
                if theirs.is_none() && kind != RoomKind::Public {
                    return Ok(Ok(()));
                }
                if theirs.is_some() && data.last_owner(target) {
                    return Ok(Err(Refusal::Conflict));
                }
                if theirs.is_some() {
                    lose(data, "member_removed");
                } else if !configured {
                    data.removed.insert(target.to_owned(), now_ms());
                    lost = true;
                }
            }
            MemberChange::Put(role) => {
                if kind == RoomKind::Direct || !mine.is_some_and(Role::moderates) {
                    return Ok(Err(Refusal::Forbidden));
                }
                let role = role.or(theirs).unwrap_or(Role::Member);
                match theirs {
                    None => {
                        if !allowed || (role != Role::Member && mine != Some(Role::Owner)) {
                            return Ok(Err(Refusal::Forbidden));
                        }
                        data.members.insert(target.to_owned(), role);
                        started = !configured;
                        data.record(
                            actor.id,
                            "member_added",
                            Some(target),
                            serde_json::json!({ "role": role }),
                        );
                    }
                    Some(theirs) if theirs != role => {
                        if mine != Some(Role::Owner) {
                            return Ok(Err(Refusal::Forbidden));
                        }
                        if data.last_owner(target) {
                            return Ok(Err(Refusal::Conflict));
                        }
                        data.members.insert(target.to_owned(), role);
                        data.record(
                            actor.id,
                            "role_changed",
                            Some(target),
                            serde_json::json!({ "from": theirs, "to": role }),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        if lost {
            s.lose_access(room, Some(target), AccessLoss::Removed);
        }
        if started {
            s.start_reading(room, target);
        }
        Ok(Ok(()))
    }

    async fn mute(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
        target: &str,
        until_ms: Option<u64>,
    ) -> Result<Outcome, StoreError> {
        let mut s = self.hub.lock();
        let data = s.room_data(room);
        let mine = match data.role_seen_by(actor, configured) {
            Ok(role) => role,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let theirs = data.members.get(target).copied();
        if !mine.is_some_and(Role::moderates)
            || theirs == Some(Role::Owner)
            || (mine == Some(Role::Moderator) && theirs == Some(Role::Moderator))
        {
            return Ok(Err(Refusal::Forbidden));
        }
        match until_ms {
            Some(until) => {
                data.mutes.insert(target.to_owned(), until);
                data.record(
                    actor.id,
                    "muted",
                    Some(target),
                    serde_json::json!({ "until": until }),
                );
            }
            None => {
                if data.mutes.remove(target).is_some() {
                    data.record(actor.id, "unmuted", Some(target), serde_json::json!({}));
                }
            }
        }
        Ok(Ok(()))
    }

    async fn delete_room(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        configured: bool,
    ) -> Result<Outcome<Vec<String>>, StoreError> {
        let mut s = self.hub.lock();
        let data = s.room_data(room);
        if data.info.is_none() {
            return Ok(Err(if configured {
                Refusal::Forbidden
            } else {
                Refusal::NotFound
            }));
        }
        let mine = data.acting_role(actor.id, actor.admin);
        if data.kind() != RoomKind::Public && mine.is_none() {
            return Ok(Err(Refusal::NotFound));
        }
        if configured || mine != Some(Role::Owner) {
            return Ok(Err(Refusal::Forbidden));
        }
        let members = data.members.keys().cloned().collect();
        s.lose_access(room, None, AccessLoss::RoomClosed);
        // Everything but the event sequence, kept so replicas' order holds.
        if let Some(state) = s.rooms.get_mut(room) {
            *state = RoomState {
                seq: state.seq,
                ..RoomState::default()
            };
        }
        Ok(Ok(members))
    }

    async fn audit(
        &self,
        room: &RoomName,
        before_ms: Option<u64>,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let s = self.hub.lock();
        Ok(s.rooms.get(room).map_or_else(Vec::new, |r| {
            r.data
                .audit
                .iter()
                .rev()
                .filter(|e| before_ms.is_none_or(|b| e.ts < b))
                .take(AUDIT_PAGE)
                .cloned()
                .collect()
        }))
    }

    async fn access_of(
        &self,
        room: &RoomName,
        users: &[String],
        configured: bool,
    ) -> Result<(bool, Vec<Option<u64>>), StoreError> {
        let s = self.hub.lock();
        let data = s.rooms.get(room).map(|r| &r.data);
        let exists = configured || data.is_some_and(|d| d.info.is_some());
        Ok((
            exists,
            users
                .iter()
                .map(|u| data.and_then(|d| d.removed.get(u).copied()))
                .collect(),
        ))
    }
}
