//! The Socket.IO glue: the handshake middleware and one small handler per
//! client event, each delegating to [`Gateway`].

use std::sync::Arc;

use chat_core::ErrorCode;
use chat_core::events::{
    ConnectAuth, HISTORY, HistoryRequest, MESSAGE_SENT, REFRESH, WELCOME, Welcome,
};
use socketioxide::extract::{Extension, State, TryData};
use tokio::sync::Mutex;

use crate::registry::Identity;
use crate::sockets::{Ack, Socket};
use crate::state::{Gateway, Joined};

type Shared = State<Arc<Gateway>>;

/// The result of the handshake, handed from the middleware to the connect
/// handler through the socket's extensions.
#[derive(Clone)]
struct Handshake(Arc<Mutex<Option<Joined>>>);

/// Connect middleware: refuses with a contract code, or enters the room.
pub async fn authenticate(
    socket: Socket,
    TryData(auth): TryData<serde_json::Value>,
    State(gateway): Shared,
) -> Result<(), ErrorCode> {
    let auth = ConnectAuth::from_payload(auth.ok());
    let token = auth.token?;
    let joined = gateway.handshake(&socket, token, auth.since).await?;
    abandon_if_never_connected(&gateway, &socket, &joined);
    socket.extensions.insert(joined.id.clone());
    socket
        .extensions
        .insert(Handshake(Arc::new(Mutex::new(Some(joined)))));
    Ok(())
}

/// A handshake that passed can still fail to complete (the client goes away
/// before the CONNECT reply reaches it); then no connect or disconnect
/// handler ever runs. If the connection is still pending after the connect
/// timeout, forget it and release its presence.
fn abandon_if_never_connected(gateway: &Arc<Gateway>, socket: &Socket, joined: &Joined) {
    let gateway = gateway.clone();
    let sid = socket.id;
    let record = joined.id.record.clone();
    tokio::spawn(async move {
        tokio::time::sleep(gateway.config.connect_timeout).await;
        if gateway.registry.remove_pending(&record.room, sid) {
            tracing::info!(%sid, "handshake never completed; presence released");
            gateway.leave(record).await;
        }
    });
}

/// Connect handler: sends `welcome`, then lets the room's events flow.
pub async fn on_connect(socket: Socket, State(gateway): Shared) {
    let Some(Handshake(slot)) = socket.extensions.remove::<Handshake>() else {
        return;
    };
    let Some(Joined { id, snapshot }) = slot.lock().await.take() else {
        return;
    };
    socket.on(MESSAGE_SENT, on_message_sent);
    socket.on(HISTORY, on_history);
    socket.on(REFRESH, on_refresh);
    socket.on_disconnect(on_disconnect);

    let welcome = Welcome {
        room: id.record.room.to_string(),
        you: id.record.user.clone(),
        members: snapshot.members,
        history: snapshot.history,
        recovered: snapshot.recovered,
    };
    if socket.emit(WELCOME, &welcome).is_err()
        || !gateway
            .registry
            .activate(&id.record.room, socket.id, snapshot.seq)
    {
        tracing::debug!(sid = %socket.id, "connection gone before welcome");
    }
}

async fn on_message_sent(
    TryData(text): TryData<String>,
    ack: Ack,
    Extension(id): Extension<Arc<Identity>>,
    State(gateway): Shared,
) {
    let reply = gateway
        .send_message(&id, text.map_err(|_| ErrorCode::Invalid))
        .await;
    let _ = ack.send(&reply);
}

async fn on_history(
    TryData(request): TryData<HistoryRequest>,
    ack: Ack,
    Extension(id): Extension<Arc<Identity>>,
    State(gateway): Shared,
) {
    let reply = gateway
        .history(&id, request.map_err(|_| ErrorCode::Invalid))
        .await;
    let _ = ack.send(&reply);
}

async fn on_refresh(
    TryData(token): TryData<String>,
    ack: Ack,
    Extension(id): Extension<Arc<Identity>>,
    State(gateway): Shared,
) {
    let reply = gateway
        .refresh(&id, token.map_err(|_| ErrorCode::TokenInvalid))
        .await;
    let _ = ack.send(&reply);
}

async fn on_disconnect(
    socket: Socket,
    Extension(id): Extension<Arc<Identity>>,
    State(gateway): Shared,
) {
    gateway.registry.remove(&id.record.room, socket.id);
    gateway.leave(id.record.clone()).await;
}
