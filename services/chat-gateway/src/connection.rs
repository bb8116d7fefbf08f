//! One client connection and its life: *pending* from the handshake until
//! its `welcome` is out, then *live*, then *closing* once anything ends it,
//! and *gone* when its socket is closed.
//!
//! A [`Conn`] is who the connection is (its id, user, web session and token
//! expiry), the rooms it follows, where it stands, its [`Inbox`] of client
//! events and its [`Wire`], with the flow control over both: not read from
//! while too many events wait or while it pipelines past a budget, and a
//! slow consumer once too many bytes are owed to it. Every way a connection ends (revocation, expiry,
//! slow consumer, drain, the client leaving, a handshake never completed or
//! refused) goes through [`Gateway::close`](crate::state::Gateway::close),
//! which uses [`Conn::begin_close`] so that presence is released exactly once
//! and the client is told `session ended` at most once, even when two of
//! those race. Nothing else takes a connection out of the registry.
//!
//! A connection follows a set of rooms: a one-room connection (a room token)
//! follows the room its token names from its handshake until it ends, and
//! every client event is about that room.
//!
//! A `Conn` lives in its socket's extensions, so it holds no reference to the
//! socket (that would keep a closed socket alive); [`Connection`] pairs the
//! two where both are needed.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chat_core::{ErrorCode, MessageId, RoomName, UserRef};
use chat_store::presence;
use chat_store::rooms::Standing;

use crate::inbox::{Inbox, Job};
use crate::sockets::Socket;
use crate::wire::Wire;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Handshake accepted; `welcome` not yet out. Room events are buffered.
    Pending,
    /// `welcome` is out; room events flow.
    Live,
    /// Something ended it; its presence is released. `goodbye` is the
    /// `session ended` reason still owed to the client, if any.
    Closing {
        /// The reason to tell the client, when it is still to be told.
        goodbye: Option<ErrorCode>,
    },
    /// Its socket is closed.
    Gone,
}

/// How a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The server ends it and tells the client why.
    Server(ErrorCode),
    /// The client went away (disconnect, transport closed).
    ClientLeft,
    /// The handshake passed but the connection never completed.
    NeverConnected,
    /// The handshake was refused after the connection was admitted, before
    /// presence recorded it: only its registry slot is given back.
    Refused,
}

/// What [`Conn::begin_close`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// This call ended the connection: release its presence; if it was
    /// live, say goodbye (`Some(reason)`) and close the socket now.
    Started {
        /// The state it was in.
        was: State,
    },
    /// It had already been ended.
    Already,
}

/// One client connection of this replica.
#[derive(Debug)]
pub(crate) struct Conn {
    /// Its id (the Socket.IO socket id), as presence records it.
    pub(crate) id: String,
    /// Its user.
    pub(crate) user: UserRef,
    /// The room its token names, which its client events are about.
    pub(crate) room: RoomName,
    /// The rooms it follows besides `room`, each with a presence record:
    /// none today. Empty, it costs an idle connection no allocation.
    more_rooms: Mutex<Vec<RoomName>>,
    session: Mutex<Option<Arc<str>>>,
    exp: AtomicU64,
    /// When its newest token was issued (ms): access to the room lost at or
    /// after it ends the connection and refuses its messages.
    issued_ms: AtomicU64,
    /// Whether its user is an administrator (acts as owner outside direct rooms).
    admin: bool,
    /// Whether its room is configured (`ROOMS`), so exists without settings.
    configured: bool,
    state: Mutex<State>,
    /// The id of the last message it sent: its next one must be greater, even
    /// when Redis has lost it or a lagging replica was promoted.
    last_sent: Mutex<Option<MessageId>>,
    /// Its last message while its ack waits for Redis replicas
    /// (`REDIS_WAIT_REPLICAS`), and after they did not confirm it in time:
    /// stored and delivered, not acked ok. See [`Conn::resend_of`].
    /// Boxed: an idle connection, which has none, keeps one pointer for it.
    unconfirmed: Mutex<Option<Box<Unconfirmed>>>,
    /// Its client events in flight.
    inbox: Inbox,
    /// Its TCP connection, when it speaks WebSocket through this replica's own server.
    pub(crate) wire: Option<Wire>,
}

impl Conn {
    /// A pending connection, following the room its token names.
    pub(crate) fn new(
        record: presence::Connection,
        session: Option<String>,
        exp: u64,
        wire: Option<Wire>,
    ) -> Self {
        let presence::Connection { room, conn, user } = record;
        Self {
            id: conn,
            user,
            more_rooms: Mutex::new(Vec::new()),
            room,
            session: Mutex::new(session.map(Arc::from)),
            exp: AtomicU64::new(exp),
            issued_ms: AtomicU64::new(0),
            admin: false,
            configured: false,
            state: Mutex::new(State::Pending),
            last_sent: Mutex::new(None),
            unconfirmed: Mutex::new(None),
            inbox: Inbox::default(),
            wire,
        }
    }

    /// The same connection, standing as `standing` says (its token's issue
    /// time, administrator, a configured room).
    pub(crate) fn with_standing(mut self, standing: Standing) -> Self {
        self.issued_ms = AtomicU64::new(standing.issued_ms);
        self.admin = standing.admin;
        self.configured = standing.configured;
        self
    }

    /// Where it stands, which the store checks its rights against.
    pub(crate) fn standing(&self) -> Standing {
        Standing {
            issued_ms: self.issued_ms.load(Ordering::Relaxed),
            admin: self.admin,
            configured: self.configured,
        }
    }

    /// The rooms it follows: the one its token names first.
    pub(crate) fn rooms(&self) -> Vec<RoomName> {
        let more = self.more_rooms.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::once(&self.room)
            .chain(more.iter())
            .cloned()
            .collect()
    }

    /// How presence records it in `room`.
    pub(crate) fn record_in(&self, room: &RoomName) -> presence::Connection {
        presence::Connection {
            room: room.clone(),
            conn: self.id.clone(),
            user: self.user.clone(),
        }
    }

    /// How presence records it in the room its token names.
    pub(crate) fn record(&self) -> presence::Connection {
        self.record_in(&self.room)
    }

    /// Whether `max` of its client events already wait, received and not
    /// yet answered.
    pub(crate) fn is_saturated(&self, max: usize) -> bool {
        self.inbox.in_flight() >= max
    }

    /// Queues a client event's `job` behind its earlier events (their order
    /// is kept), and stops reading from the client once `max` events wait.
    /// When no runner is active, returns one to spawn: it handles the queue
    /// front to back, reading from the client again whenever there is room.
    pub(crate) fn queue(
        self: &Arc<Self>,
        job: Job,
        max: usize,
    ) -> Option<impl Future<Output = ()> + Send + 'static> {
        let start = self.inbox.push(job);
        if self.is_saturated(max)
            && let Some(wire) = &self.wire
        {
            wire.pause();
        }
        let conn = self.clone();
        start.then_some(async move {
            while let Some(job) = conn.inbox.next() {
                if !conn.is_saturated(max)
                    && let Some(wire) = &conn.wire
                {
                    wire.resume();
                }
                job.await;
            }
            if let Some(wire) = &conn.wire {
                wire.resume();
            }
        })
    }

    /// Reads nothing from the client for `hold()` when more of its events
    /// wait behind the one being refused (it pipelines past a budget); a
    /// client that waits for its acks is never held.
    pub(crate) fn hold_if_pipelining(&self, hold: impl FnOnce() -> Duration) {
        if let Some(wire) = &self.wire
            && self.inbox.in_flight() > 1
        {
            wire.hold_for(hold());
        }
    }

    /// Records that a reply of `bytes` the server built (`welcome`, a
    /// `history` page) was queued for the client: false when that makes it a
    /// slow consumer (see [`Wire::queued_reply`]).
    pub(crate) fn queued_reply(&self, bytes: usize) -> bool {
        self.wire
            .as_ref()
            .is_none_or(|wire| wire.queued_reply(bytes))
    }

    fn state_lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere; the state is still one value.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where it stands now.
    pub(crate) fn state(&self) -> State {
        *self.state_lock()
    }

    /// The web session its token came from (a `refresh` may change it).
    pub(crate) fn session(&self) -> Option<Arc<str>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether it belongs to web session `sid`.
    pub(crate) fn belongs_to(&self, sid: &str) -> bool {
        self.session().is_some_and(|s| &*s == sid)
    }

    /// When its token expires, seconds since the epoch.
    pub(crate) fn exp(&self) -> u64 {
        self.exp.load(Ordering::Relaxed)
    }

    /// A good `refresh`: the connection now belongs to `session` and lives until
    /// `exp` (never earlier than before). Returns the expiry in force.
    pub(crate) fn refreshed(&self, session: Option<String>, exp: u64, issued_ms: u64) -> u64 {
        *self.session.lock().unwrap_or_else(|e| e.into_inner()) = session.map(Arc::from);
        self.issued_ms.fetch_max(issued_ms, Ordering::Relaxed);
        self.exp.fetch_max(exp, Ordering::Relaxed).max(exp)
    }

    /// The id of the last message it sent.
    pub(crate) fn last_sent(&self) -> Option<MessageId> {
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that it sent message `id` (handled one at a time, in order).
    pub(crate) fn sent(&self, id: MessageId) {
        *self.last_sent.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    /// Records that message `id`, with `text`, is stored and waits for Redis
    /// replicas before its ack.
    pub(crate) fn awaiting_replicas(&self, id: MessageId, text: &str) {
        *self.unconfirmed_lock() = Some(Box::new(Unconfirmed {
            id,
            text: text.to_owned(),
        }));
    }

    /// When `text` is the text of its last message and the replicas have not
    /// confirmed that one yet: its id. The client sends it again because its
    /// ack said `unavailable`; it is stored and was delivered, so it is to be
    /// confirmed, not stored twice. Any other text forgets that message (the
    /// client moved on), so acks keep increasing.
    pub(crate) fn resend_of(&self, text: &str) -> Option<MessageId> {
        let mut unconfirmed = self.unconfirmed_lock();
        match unconfirmed.as_ref() {
            Some(last) if last.text == text => Some(last.id),
            _ => {
                *unconfirmed = None;
                None
            }
        }
    }

    /// Message `id` no longer waits: its replicas confirmed it, or it was
    /// lost (then sending it again stores it anew).
    pub(crate) fn settled(&self, id: MessageId) {
        let mut unconfirmed = self.unconfirmed_lock();
        if unconfirmed.as_ref().is_some_and(|last| last.id == id) {
            *unconfirmed = None;
        }
    }

    fn unconfirmed_lock(&self) -> std::sync::MutexGuard<'_, Option<Box<Unconfirmed>>> {
        self.unconfirmed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pending → live, once `welcome` is out. `Err(goodbye)` when it was
    /// ended meanwhile: the socket is to be closed, after telling the client
    /// `goodbye` if there is one.
    pub(crate) fn go_live(&self) -> Result<(), Option<ErrorCode>> {
        let mut state = self.state_lock();
        match *state {
            State::Pending => {
                *state = State::Live;
                Ok(())
            }
            State::Closing { goodbye } => {
                *state = State::Closing { goodbye: None };
                Err(goodbye)
            }
            State::Live | State::Gone => Err(None),
        }
    }

    /// Ends the connection, once: the first call for a pending or live
    /// connection gets [`Closing::Started`]; later calls get [`Closing::Already`].
    /// A pending connection keeps its goodbye owed until [`Conn::go_live`].
    pub(crate) fn begin_close(&self, ending: Ending) -> Closing {
        let mut state = self.state_lock();
        let was = *state;
        let next = match (was, ending) {
            (State::Pending, Ending::Server(code)) => State::Closing {
                goodbye: Some(code),
            },
            (
                State::Pending | State::Live,
                Ending::ClientLeft | Ending::NeverConnected | Ending::Refused,
            ) => State::Gone,
            (State::Live, Ending::Server(_)) => State::Closing { goodbye: None },
            (State::Closing { .. }, Ending::ClientLeft) => {
                *state = State::Gone;
                return Closing::Already;
            }
            (State::Closing { .. } | State::Gone, _) => return Closing::Already,
        };
        *state = next;
        Closing::Started { was }
    }
}

/// A message stored and delivered whose ack waits for Redis replicas.
#[derive(Debug)]
struct Unconfirmed {
    id: MessageId,
    text: String,
}

/// A connection together with its socket.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    /// The socket.
    pub(crate) socket: Socket,
    /// The connection.
    pub(crate) conn: Arc<Conn>,
}

#[cfg(test)]
mod tests {
    use super::*;
    fn conn() -> Conn {
        let record = presence::Connection {
            room: RoomName::parse("General").expect("room"),
            conn: "c1".into(),
            user: UserRef {
                id: "u".into(),
                name: "U".into(),
            },
        };
        Conn::new(record, Some("s1".into()), 100, None)
    }

    #[test]
    fn a_live_connection_is_ended_once() {
        let c = conn();
        assert_eq!(c.go_live(), Ok(()));
        assert_eq!(
            c.begin_close(Ending::Server(ErrorCode::TokenRevoked)),
            Closing::Started { was: State::Live }
        );
        assert_eq!(
            c.begin_close(Ending::Server(ErrorCode::TokenExpired)),
            Closing::Already
        );
        assert_eq!(c.begin_close(Ending::ClientLeft), Closing::Already);
        assert_eq!(c.state(), State::Gone);
    }

    #[test]
    fn a_pending_connection_ended_by_the_server_is_told_when_it_would_go_live() {
        let c = conn();
        assert_eq!(
            c.begin_close(Ending::Server(ErrorCode::TokenRevoked)),
            Closing::Started {
                was: State::Pending
            }
        );
        assert_eq!(c.go_live(), Err(Some(ErrorCode::TokenRevoked)));
        assert_eq!(c.go_live(), Err(None), "told once");
    }

    #[test]
    fn only_the_same_text_next_is_a_resend_of_an_unconfirmed_message() {
        let c = conn();
        let id = MessageId { ms: 5, seq: 0 };
        assert_eq!(c.resend_of("hi"), None, "nothing waits");
        c.awaiting_replicas(id, "hi");
        assert_eq!(c.resend_of("hi"), Some(id));
        assert_eq!(c.resend_of("hi"), Some(id), "until it is settled");
        c.settled(id);
        assert_eq!(c.resend_of("hi"), None);
        c.awaiting_replicas(id, "hi");
        assert_eq!(c.resend_of("something else"), None, "the client moved on");
        assert_eq!(c.resend_of("hi"), None, "and it is forgotten");
    }

    #[test]
    fn a_refresh_moves_the_session_and_never_shortens_the_expiry() {
        let c = conn();
        assert!(c.belongs_to("s1"));
        assert_eq!(c.refreshed(Some("s2".into()), 50, 1_000), 100);
        assert!(c.belongs_to("s2") && !c.belongs_to("s1"));
        assert_eq!(c.refreshed(None, 200, 500), 200);
        assert!(!c.belongs_to("s2"));
    }

    #[test]
    fn a_one_room_connection_follows_the_room_its_token_names() {
        let c = conn();
        let general = RoomName::parse("General").expect("room");
        assert_eq!(c.rooms(), std::slice::from_ref(&general));
        assert_eq!(c.record_in(&general).conn, "c1");
        assert_eq!(c.record(), c.record_in(&general));
    }
}
