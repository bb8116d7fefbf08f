//! The in-memory backend, for the single-process mode: the same decisions as
//! the Lua scripts, taken under one lock, with events handed to subscribers
//! while the lock is held so that every subscriber sees them in order.
//!
//! Several [`MemoryBackend`]s (one per node) can share a [`MemoryHub`], which
//! is how the behaviour tests run two "replicas" against it.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chat_core::events::{Change, MessageDeleted, MessageEdited, RoomEvent};
use chat_core::{Message, MessageId, RoomName, UserRef};
use tokio::sync::mpsc;

use crate::backend::{
    Backend, Fanout, FanoutEvent, History, PerRoom, Presence, Reads, Revocations,
    SUBSCRIPTION_CAPACITY, Signals, Subscription, UNREAD_MAX,
};
use crate::error::StoreError;
use crate::events::Published;
use crate::history::{
    CHANGES_KEPT, ChangeOutcome, HISTORY_KEPT, MessageChange, NewMessage, Replicated,
};
use crate::presence::{Connection, Heartbeat, JoinOutcome, JoinRequest, Snapshot, Sweep};

#[derive(Default)]
struct RoomState {
    /// user id → live connection count (0 while leaving).
    users: HashMap<String, i64>,
    names: HashMap<String, String>,
    /// connection id → user id.
    conns: HashMap<String, String>,
    history: VecDeque<(MessageId, UserRef, String)>,
    last_id: Option<MessageId>,
    max_deleted: Option<MessageId>,
    seq: u64,
    /// user id → until when (ms) their next `typing` is throttled.
    typing: HashMap<String, u64>,
    /// message id → its edit or deletion.
    changed: HashMap<MessageId, Edit>,
    /// (when, which message) of each change, oldest first, capped.
    changes: VecDeque<(u64, MessageId)>,
    /// When (ms) the newest change dropped from `changes` was made.
    changes_trimmed_ms: Option<u64>,
    /// How many messages were ever sent.
    count: u64,
    /// user id → `count` at their read marker.
    reads: HashMap<String, u64>,
}

/// What became of a message after it was sent.
#[derive(Debug, Clone)]
enum Edit {
    /// Its text now, and when it was edited (ms).
    Text(String, u64),
    /// Gone.
    Deleted,
}

type Entry = (MessageId, UserRef, String);

impl RoomState {
    /// The entries that were not deleted, as messages with their edits.
    fn visible<'a>(
        &self,
        room: &RoomName,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> Vec<Message> {
        entries
            .filter_map(|(id, user, text)| {
                let (text, edited_ts) = match self.changed.get(id) {
                    Some(Edit::Deleted) => return None,
                    Some(Edit::Text(t, at)) => (t.clone(), Some(*at)),
                    None => (text.clone(), None),
                };
                Some(Message {
                    id: *id,
                    room: room.to_string(),
                    user: user.clone(),
                    text,
                    ts: id.ms,
                    edited_ts,
                })
            })
            .collect()
    }

    /// Messages after `uid`'s read marker: 0 without one, at most [`UNREAD_MAX`].
    fn unread_of(&self, uid: &str) -> u64 {
        self.reads.get(uid).map_or(0, |marker| {
            self.count.saturating_sub(*marker).min(UNREAD_MAX)
        })
    }

    fn is_deleted(&self, id: &MessageId) -> bool {
        matches!(self.changed.get(id), Some(Edit::Deleted))
    }

    /// What `changes_after` answers (see [`History::changes_after`]).
    fn changes_since(&self, since: MessageId) -> Vec<Change> {
        let mut seen = HashSet::new();
        self.changes
            .iter()
            .filter(|(at, target)| *at >= since.ms && *target <= since)
            .filter(|(_, target)| seen.insert(*target))
            .filter_map(|(_, id)| match self.changed.get(id)? {
                Edit::Deleted => Some(Change::Deleted {
                    id: *id,
                    deleted: true,
                }),
                Edit::Text(text, at) => Some(Change::Edited {
                    id: *id,
                    text: text.clone(),
                    edited_ts: *at,
                }),
            })
            .collect()
    }
}

#[derive(Default)]
struct NodeState {
    alive_until_ms: u64,
    conns: HashSet<(RoomName, String, String)>,
}

#[derive(Default)]
struct State {
    rooms: HashMap<RoomName, RoomState>,
    /// (due ms, room, user id).
    leaving: BTreeSet<(u64, RoomName, String)>,
    nodes: HashMap<String, NodeState>,
    epoch: Option<String>,
    /// sid → until ms.
    revoked: HashMap<String, u64>,
    subscribers: Vec<(Vec<RoomName>, mpsc::Sender<FanoutEvent>)>,
}

/// The shared state of every [`MemoryBackend`] made from it.
#[derive(Default)]
pub struct MemoryHub {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHub").finish_non_exhaustive()
    }
}

impl MemoryHub {
    /// An empty hub.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A backend acting for `node` on this hub.
    pub fn backend(self: &Arc<Self>, node: impl Into<String>) -> MemoryBackend {
        MemoryBackend {
            hub: self.clone(),
            node: node.into(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One node's handle on a [`MemoryHub`].
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    hub: Arc<MemoryHub>,
    node: String,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl State {
    fn publish(&mut self, room: &RoomName, event: RoomEvent, trace: Option<String>) {
        let seq = {
            let r = self.rooms.entry(room.clone()).or_default();
            r.seq += 1;
            r.seq
        };
        self.subscribers.retain(|(_, tx)| !tx.is_closed());
        for (rooms, tx) in &self.subscribers {
            if !rooms.contains(room) {
                continue;
            }
            let published = Published {
                seq,
                trace: trace.clone(),
                event: event.clone(),
            };
            if tx
                .try_send(FanoutEvent::Room(room.clone(), published))
                .is_err()
            {
                tracing::error!("in-memory fan-out subscriber is full or gone; event dropped");
            }
        }
    }

    fn enter(&mut self, node: &str, c: &Connection, silent: bool) {
        let room = self.rooms.entry(c.room.clone()).or_default();
        if room.conns.contains_key(&c.conn) {
            return;
        }
        room.conns.insert(c.conn.clone(), c.user.id.clone());
        room.names.insert(c.user.id.clone(), c.user.name.clone());
        let count = room.users.entry(c.user.id.clone()).or_insert(0);
        *count += 1;
        let first = *count == 1;
        self.nodes
            .entry(node.to_owned())
            .or_default()
            .conns
            .insert((c.room.clone(), c.conn.clone(), c.user.id.clone()));
        let before = self.leaving.len();
        self.leaving
            .retain(|(_, r, u)| !(r == &c.room && u == &c.user.id));
        let was_leaving = self.leaving.len() != before;
        if first && !was_leaving && !silent {
            self.publish(&c.room, RoomEvent::UserEntered(c.user.clone()), None);
        }
    }

    fn release(&mut self, room_name: &RoomName, conn: &str, uid: &str, grace_ms: u64) -> bool {
        let Some(room) = self.rooms.get_mut(room_name) else {
            return false;
        };
        if room.conns.remove(conn).is_none() {
            return false;
        }
        let count = room.users.entry(uid.to_owned()).or_insert(0);
        *count -= 1;
        if *count <= 0 {
            *count = 0;
            self.leaving.insert((
                now_ms().saturating_add(grace_ms),
                room_name.clone(),
                uid.to_owned(),
            ));
        }
        true
    }
}

#[async_trait]
impl Presence for MemoryBackend {
    fn node(&self) -> &str {
        &self.node
    }

    async fn join(
        &self,
        request: JoinRequest<'_>,
        silent: bool,
    ) -> Result<JoinOutcome, StoreError> {
        let mut s = self.hub.lock();
        if let Some(sid) = request.session
            && s.revoked.get(sid).is_some_and(|until| *until > now_ms())
        {
            return Ok(JoinOutcome::Revoked);
        }
        let c = request.connection;
        s.enter(&self.node, c, silent);
        let room = s.rooms.entry(c.room.clone()).or_default();
        let members = room
            .users
            .keys()
            .map(|id| UserRef {
                id: id.clone(),
                name: room.names.get(id).cloned().unwrap_or_else(|| id.clone()),
            })
            .collect();
        let limit = request.history_limit;
        let newest = |room: &RoomState| {
            let visible: Vec<&Entry> = room
                .history
                .iter()
                .filter(|(id, _, _)| !room.is_deleted(id))
                .collect();
            let skip = visible.len().saturating_sub(limit);
            visible.into_iter().skip(skip).cloned().collect::<Vec<_>>()
        };
        let (recovered, entries) = match request.since {
            None => (true, newest(room)),
            Some(since) => {
                let after: Vec<_> = room
                    .history
                    .iter()
                    .filter(|(id, _, _)| *id > since)
                    .cloned()
                    .collect();
                // A `since` beyond the newest message: nothing newer.
                let trimmed = room.max_deleted.is_some_and(|d| d > since);
                let changes_lost = room.changes_trimmed_ms.is_some_and(|at| at >= since.ms);
                if after.len() > limit || trimmed || changes_lost {
                    (false, newest(room))
                } else {
                    (true, after)
                }
            }
        };
        let changes = request
            .since
            .map(|since| room.changes_since(since))
            .unwrap_or_default();
        Ok(JoinOutcome::Joined(Snapshot {
            unread: room.unread_of(&c.user.id),
            seq: room.seq,
            members,
            recovered,
            history: room.visible(&c.room, entries.iter()),
            changes,
        }))
    }

    async fn leave(&self, connection: &Connection, grace: Duration) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        if let Some(node) = s.nodes.get_mut(&self.node) {
            node.conns.remove(&(
                connection.room.clone(),
                connection.conn.clone(),
                connection.user.id.clone(),
            ));
        }
        s.release(
            &connection.room,
            &connection.conn,
            &connection.user.id,
            millis(grace),
        );
        Ok(())
    }

    /// One store, one heartbeat: every room gets the same answer.
    async fn heartbeat(
        &self,
        rooms: &[RoomName],
        ttl: Duration,
        epoch_candidate: &str,
    ) -> PerRoom<Heartbeat> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let node = s.nodes.entry(self.node.clone()).or_default();
        let was_alive = node.alive_until_ms > now;
        node.alive_until_ms = now.saturating_add(millis(ttl));
        let epoch = s
            .epoch
            .get_or_insert_with(|| epoch_candidate.to_owned())
            .clone();
        let beat = Heartbeat { was_alive, epoch };
        rooms
            .iter()
            .map(|r| (r.clone(), Ok(beat.clone())))
            .collect()
    }

    /// One store: the sweep covers every room at once.
    async fn sweep(
        &self,
        _rooms: &[RoomName],
        grace: Duration,
        max_exits: u64,
    ) -> Result<Sweep, StoreError> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let dead: Vec<String> = s
            .nodes
            .iter()
            .filter(|(_, n)| n.alive_until_ms <= now && n.alive_until_ms > 0)
            .map(|(k, _)| k.clone())
            .collect();
        let mut result = Sweep::default();
        for node in dead {
            let Some(state) = s.nodes.remove(&node) else {
                continue;
            };
            for (room, conn, uid) in state.conns {
                if s.release(&room, &conn, &uid, millis(grace)) {
                    result.connections_removed += 1;
                }
            }
        }
        let due: Vec<(u64, RoomName, String)> = s
            .leaving
            .iter()
            .take_while(|(at, _, _)| *at <= now)
            .take(usize::try_from(max_exits).unwrap_or(usize::MAX))
            .cloned()
            .collect();
        for entry in due {
            s.leaving.remove(&entry);
            let (_, room_name, uid) = entry;
            let Some(room) = s.rooms.get_mut(&room_name) else {
                continue;
            };
            if room.users.get(&uid).copied().unwrap_or(0) <= 0 {
                room.users.remove(&uid);
                let name = room.names.remove(&uid).unwrap_or_else(|| uid.clone());
                s.publish(
                    &room_name,
                    RoomEvent::UserExited(UserRef { id: uid, name }),
                    None,
                );
                result.users_exited += 1;
            }
        }
        Ok(result)
    }

    async fn restore(&self, connections: &[Connection], silent: bool) -> Result<u64, StoreError> {
        let mut s = self.hub.lock();
        for c in connections {
            s.enter(&self.node, c, silent);
        }
        Ok(connections.len() as u64)
    }

    async fn deregister(&self, _rooms: &[RoomName]) -> Result<(), StoreError> {
        self.hub.lock().nodes.remove(&self.node);
        Ok(())
    }

    async fn member_counts(&self, rooms: &[RoomName]) -> Result<Vec<(RoomName, u64)>, StoreError> {
        let s = self.hub.lock();
        Ok(rooms
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    s.rooms.get(r).map_or(0, |room| room.users.len() as u64),
                )
            })
            .collect())
    }
}

#[async_trait]
impl History for MemoryBackend {
    /// One process holds everything: there are no replicas to wait for.
    async fn replicated(
        &self,
        _room: &RoomName,
        _message: Option<MessageId>,
    ) -> Result<Replicated, StoreError> {
        Ok(Replicated::Held)
    }

    async fn send(&self, message: NewMessage<'_>) -> Result<MessageId, StoreError> {
        let mut s = self.hub.lock();
        let room = s.rooms.entry(message.room.clone()).or_default();
        let now = now_ms();
        let mut id = match room.last_id {
            Some(last) if last.ms >= now => last.next(),
            _ => MessageId { ms: now, seq: 0 },
        };
        if let Some(floor) = message.floor
            && id <= floor
        {
            id = floor.next();
        }
        room.last_id = Some(id);
        room.count += 1;
        room.history
            .push_back((id, message.user.clone(), message.text.as_str().to_owned()));
        while room.history.len() as u64 > HISTORY_KEPT {
            if let Some((gone, _, _)) = room.history.pop_front() {
                room.max_deleted = Some(gone);
            }
        }
        let stored = Message {
            id,
            room: message.room.to_string(),
            user: message.user.clone(),
            text: message.text.as_str().to_owned(),
            ts: id.ms,
            edited_ts: None,
        };
        let trace = message.trace.map(str::to_owned);
        s.publish(message.room, RoomEvent::MessageReceived(stored), trace);
        Ok(id)
    }

    async fn history_after(
        &self,
        room: &RoomName,
        after: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let s = self.hub.lock();
        let Some(state) = s.rooms.get(room) else {
            return Ok(Vec::new());
        };
        let newer = state.history.iter().filter(|(id, _, _)| *id > after);
        let mut page = state.visible(room, newer);
        page.truncate(limit);
        Ok(page)
    }

    async fn history_before(
        &self,
        room: &RoomName,
        before: MessageId,
        limit: usize,
    ) -> Result<Vec<Message>, StoreError> {
        let s = self.hub.lock();
        let Some(state) = s.rooms.get(room) else {
            return Ok(Vec::new());
        };
        let older = state.history.iter().filter(|(id, _, _)| *id < before);
        let page = state.visible(room, older);
        let skip = page.len().saturating_sub(limit);
        Ok(page.into_iter().skip(skip).collect())
    }

    async fn change(&self, change: MessageChange<'_>) -> Result<ChangeOutcome, StoreError> {
        let mut s = self.hub.lock();
        let Some(room) = s.rooms.get_mut(change.room) else {
            return Ok(ChangeOutcome::NotFound);
        };
        let Some((_, author, _)) = room.history.iter().find(|(id, _, _)| *id == change.id) else {
            return Ok(ChangeOutcome::NotFound);
        };
        if room.is_deleted(&change.id) {
            return Ok(ChangeOutcome::NotFound);
        }
        if author.id != change.user_id {
            return Ok(ChangeOutcome::Forbidden);
        }
        let now = now_ms();
        let (edit, event) = match change.text {
            Some(text) => (
                Edit::Text(text.as_str().to_owned(), now),
                RoomEvent::MessageEdited(MessageEdited {
                    id: change.id,
                    room: change.room.to_string(),
                    text: text.as_str().to_owned(),
                    edited_ts: now,
                }),
            ),
            None => (
                Edit::Deleted,
                RoomEvent::MessageDeleted(MessageDeleted {
                    id: change.id,
                    room: change.room.to_string(),
                }),
            ),
        };
        room.changed.insert(change.id, edit);
        room.changes.push_back((now, change.id));
        while room.changes.len() as u64 > CHANGES_KEPT {
            if let Some((at, _)) = room.changes.pop_front() {
                room.changes_trimmed_ms = Some(at);
            }
        }
        if let Some((oldest, _, _)) = room.history.front().cloned() {
            room.changed.retain(|id, _| *id >= oldest);
        }
        s.publish(change.room, event, None);
        Ok(ChangeOutcome::Done)
    }

    async fn changes_after(
        &self,
        room: &RoomName,
        since: MessageId,
    ) -> Result<Vec<Change>, StoreError> {
        let s = self.hub.lock();
        Ok(s.rooms
            .get(room)
            .map(|r| r.changes_since(since))
            .unwrap_or_default())
    }
}

#[async_trait]
impl Reads for MemoryBackend {
    async fn mark_read(
        &self,
        room: &RoomName,
        user_id: &str,
        id: MessageId,
    ) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        let state = s.rooms.entry(room.clone()).or_default();
        // The count at the first message after `id` that is still there, less
        // one: what Redis reads from that entry (`read.lua`).
        let after = state
            .history
            .iter()
            .skip_while(|(m, _, _)| *m <= id || state.is_deleted(m))
            .count();
        let marker = state.count.saturating_sub(after as u64);
        let old = state.reads.entry(user_id.to_owned()).or_insert(marker);
        *old = (*old).max(marker);
        Ok(())
    }

    async fn unread_counts(
        &self,
        rooms: &[RoomName],
        user_id: &str,
    ) -> Result<Vec<(RoomName, u64)>, StoreError> {
        let s = self.hub.lock();
        Ok(rooms
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    s.rooms.get(r).map_or(0, |room| room.unread_of(user_id)),
                )
            })
            .collect())
    }
}

#[async_trait]
impl Signals for MemoryBackend {
    async fn typing(
        &self,
        room: &RoomName,
        user: &UserRef,
        throttle: Duration,
    ) -> Result<bool, StoreError> {
        let mut s = self.hub.lock();
        let now = now_ms();
        let state = s.rooms.entry(room.clone()).or_default();
        state.typing.retain(|_, until| *until > now);
        if state.typing.contains_key(&user.id) {
            return Ok(false);
        }
        state
            .typing
            .insert(user.id.clone(), now.saturating_add(millis(throttle)));
        s.publish(room, RoomEvent::UserTyping(user.clone()), None);
        Ok(true)
    }
}

#[async_trait]
impl Fanout for MemoryBackend {
    fn subscribe(&self, rooms: &[RoomName]) -> Result<Subscription, StoreError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        self.hub.lock().subscribers.push((rooms.to_vec(), tx));
        Ok(rx)
    }

    fn is_subscribed(&self) -> bool {
        true
    }
}

#[async_trait]
impl Revocations for MemoryBackend {
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError> {
        let mut s = self.hub.lock();
        s.revoked
            .insert(sid.to_owned(), now_ms().saturating_add(millis(ttl)));
        s.revoked.retain(|_, until| *until > now_ms());
        for (_, tx) in &s.subscribers {
            if tx.try_send(FanoutEvent::Revoked(sid.to_owned())).is_err() {
                tracing::error!("in-memory fan-out subscriber is full or gone; revocation dropped");
            }
        }
        Ok(())
    }

    async fn revoked_among(&self, sids: &[String]) -> Result<Vec<String>, StoreError> {
        let s = self.hub.lock();
        let now = now_ms();
        Ok(sids
            .iter()
            .filter(|sid| s.revoked.get(*sid).is_some_and(|until| *until > now))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
