//! A connection's beginning and end at the Socket.IO edge: the handshake
//! middleware, the connect handler that sends `welcome`, and the disconnect
//! handler. Each client event's handler lives beside its decision, in the
//! [`state`](crate::state) module of its reason; the middleware starts
//! listening for them all ([`crate::state::listen`]).

use std::sync::{Arc, Mutex};

use chat_core::ErrorCode;
use chat_core::events::{ConnectAuth, WELCOME, Welcome};
use socketioxide::extract::{Extension, State, TryData};

use crate::connection::{Conn, Connection, Ending};
use crate::sockets::Socket;
use crate::state::{Joined, Shared};

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
    crate::state::listen(&socket);
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

async fn on_disconnect(
    socket: Socket,
    Extension(conn): Extension<Arc<Conn>>,
    State(gateway): Shared,
) {
    // The socket is closed: break the socket → extensions → conn chain early.
    socket.extensions.remove::<Arc<Conn>>();
    gateway.close(&Connection { socket, conn }, Ending::ClientLeft);
}
