//! The Socket.IO glue: the handshake middleware and one small handler per
//! client event, each delegating to [`Gateway`].
//!
//! Event handlers do not await: socketioxide calls them one at a time, in
//! the order the connection's events arrive, and each only queues its work in
//! the connection's inbox (see [`crate::inbox`]), so one connection's events
//! are handled, acked and delivered in send order. At `MAX_EVENTS_IN_FLIGHT`
//! the connection is not read from until there is room again; an event that
//! was read anyway is refused at once with `rate_limited`.

use std::future::{Future, Ready, ready};
use std::sync::{Arc, Mutex};

use chat_core::ErrorCode;
use chat_core::events::{
    ConnectAuth, DeleteRequest, DoneAck, EditRequest, HISTORY, HistoryAck, HistoryRequest,
    MESSAGE_DELETE, MESSAGE_EDIT, MESSAGE_SENT, READ, REFRESH, ReadRequest, RefreshAck, SendAck,
    TYPING, WELCOME, Welcome,
};
use serde::Serialize;
use socketioxide::extract::{Extension, State, TryData};

use crate::connection::{Conn, Connection, Ending};
use crate::deadline::Deadline;
use crate::sockets::{Ack, Socket};
use crate::state::{Gateway, Joined};

type Shared = State<Arc<Gateway>>;

/// The result of the handshake, handed from the middleware to the connect
/// handler through the socket's extensions (which need `Clone`).
#[derive(Clone)]
struct Handshake(Arc<Mutex<Option<Joined>>>);

/// Connect middleware: refuses with a contract code, or enters the room.
///
/// The event handlers are set here, before the CONNECT reply goes out:
/// socketioxide runs the connect handler in a task of its own after sending
/// that reply, so a client that emits as soon as it is connected could
/// otherwise be heard before anyone listens, and its events would be lost.
/// An event that comes before `welcome` waits in the connection's inbox like
/// any other and is answered.
pub(crate) async fn authenticate(
    socket: Socket,
    TryData(auth): TryData<serde_json::Value>,
    State(gateway): Shared,
) -> Result<(), ErrorCode> {
    let auth = ConnectAuth::from_payload(auth.ok());
    let token = auth.token?;
    let joined = gateway.handshake(&socket, token, auth.since).await?;
    socket.extensions.insert(joined.conn.clone());
    socket
        .extensions
        .insert(Handshake(Arc::new(Mutex::new(Some(joined)))));
    socket.on(MESSAGE_SENT, on_message_sent);
    socket.on(HISTORY, on_history);
    socket.on(REFRESH, on_refresh);
    socket.on(TYPING, on_typing);
    socket.on(MESSAGE_EDIT, on_message_edit);
    socket.on(MESSAGE_DELETE, on_message_delete);
    socket.on(READ, on_read);
    socket.on_disconnect(on_disconnect);
    Ok(())
}

/// Connect handler: sends `welcome` (within the reply bound), then lets the
/// room's events flow.
pub(crate) async fn on_connect(socket: Socket, State(gateway): Shared) {
    let Some(Handshake(slot)) = socket.extensions.remove::<Handshake>() else {
        return;
    };
    let taken = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    let Some(Joined {
        conn,
        snapshot,
        since_given,
    }) = taken
    else {
        return;
    };
    let welcome = Welcome {
        room: conn.room.to_string(),
        you: conn.user.clone(),
        members: snapshot.members,
        history: snapshot.history,
        recovered: snapshot.recovered,
        changes: snapshot.changes,
        unread: snapshot.unread,
    }
    .fit(gateway.config().reply_max_bytes(), since_given);
    let handle = Connection { socket, conn };
    match serde_json::value::to_raw_value(&welcome) {
        Ok(welcome) if handle.socket.emit(WELCOME, &welcome).is_ok() => {
            // The buffered events are counted first: they are judged by the
            // limit, the reply only by what was owed before it.
            gateway.go_live(&handle, snapshot.seq);
            gateway.queued_reply(&handle, welcome.get().len());
        }
        _ => {
            tracing::debug!(sid = %handle.socket.id, "connection gone before welcome");
            gateway.close(&handle, Ending::ClientLeft);
        }
    }
}

/// Queues the work an event asks for behind the connection's earlier
/// events and sends its answer as the ack; acks `busy` at once when too many
/// events are in flight. The event's one ack deadline is set here, on
/// arrival, and handed to `work`, which answers within it whatever waits
/// before it (see [`crate::deadline`]). (The check cannot race: a
/// connection's handlers are called one at a time, and its runner only ever
/// lowers the count.)
fn in_order<B, R, W, F>(
    gateway: &Arc<Gateway>,
    conn: &Arc<Conn>,
    ack: Ack,
    busy: B,
    work: F,
) -> Ready<()>
where
    B: Serialize,
    R: Serialize + Send + 'static,
    W: Future<Output = R> + Send + 'static,
    F: FnOnce(Deadline) -> W,
{
    if gateway.is_saturated(conn) {
        let _ = ack.send(&busy);
        return ready(());
    }
    let work = work(Deadline::after(gateway.config().ack_timeout));
    gateway.submit(
        conn,
        Box::pin(async move {
            let reply = work.await;
            let _ = ack.send(&reply);
        }),
    );
    ready(())
}

fn on_message_sent(
    TryData(text): TryData<String>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let text = text.map_err(|_| ErrorCode::Invalid);
    let busy = SendAck::err(ErrorCode::RateLimited);
    let (g, c) = (gateway.clone(), conn.clone());
    in_order(&gateway, &conn, ack, busy, move |deadline| async move {
        g.send_message(&c, text, deadline).await
    })
}

fn on_history(
    socket: Socket,
    TryData(request): TryData<HistoryRequest>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let request = request.map_err(|_| ErrorCode::Invalid);
    let busy = HistoryAck::err(ErrorCode::RateLimited);
    let (g, handle) = (
        gateway.clone(),
        Connection {
            socket,
            conn: conn.clone(),
        },
    );
    in_order(&gateway, &conn, ack, busy, move |deadline| async move {
        let page = g.history(&handle.conn, request, deadline).await;
        g.queued_reply(&handle, page.get().len());
        page
    })
}

fn on_refresh(
    TryData(token): TryData<String>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let token = token.map_err(|_| ErrorCode::TokenInvalid);
    let busy = RefreshAck::err(ErrorCode::RateLimited);
    let (g, c) = (gateway.clone(), conn.clone());
    in_order(&gateway, &conn, ack, busy, move |deadline| async move {
        g.refresh(&c, token, deadline).await
    })
}

fn on_message_edit(
    TryData(request): TryData<EditRequest>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let request = request
        .map(|r| (r.id, Some(r.text)))
        .map_err(|_| ErrorCode::Invalid);
    change(gateway, conn, ack, request)
}

fn on_message_delete(
    TryData(request): TryData<DeleteRequest>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let request = request
        .map(|r| (r.id, None))
        .map_err(|_| ErrorCode::Invalid);
    change(gateway, conn, ack, request)
}

/// Queues an edit (with its text) or a deletion (without).
fn change(
    gateway: Arc<Gateway>,
    conn: Arc<Conn>,
    ack: Ack,
    request: Result<(chat_core::MessageId, Option<String>), ErrorCode>,
) -> Ready<()> {
    let busy = DoneAck::err(ErrorCode::RateLimited);
    let (g, c) = (gateway.clone(), conn.clone());
    in_order(&gateway, &conn, ack, busy, move |deadline| async move {
        g.change_message(&c, request, deadline).await
    })
}

fn on_read(
    TryData(request): TryData<ReadRequest>,
    ack: Ack,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) -> Ready<()> {
    let id = request.map(|r| r.id).map_err(|_| ErrorCode::Invalid);
    let busy = DoneAck::err(ErrorCode::RateLimited);
    let (g, c) = (gateway.clone(), conn.clone());
    in_order(&gateway, &conn, ack, busy, move |deadline| async move {
        g.mark_read(&c, id, deadline).await
    })
}

/// `typing` has no ack: should a client ask for one anyway, it gets `null`.
fn on_typing(ack: Ack, Extension(conn): Extension<Arc<Conn>>, State(gateway): Shared) -> Ready<()> {
    let (g, c) = (gateway.clone(), conn.clone());
    in_order(&gateway, &conn, ack, (), move |deadline| async move {
        g.typing(&c, deadline).await;
    })
}

async fn on_disconnect(
    socket: Socket,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) {
    // The socket is closed: break the socket → extensions → conn chain early.
    socket.extensions.remove::<Arc<Conn>>();
    gateway.close(&Connection { socket, conn }, Ending::ClientLeft);
}
