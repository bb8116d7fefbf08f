//! The gateway's socketioxide adapter: socketioxide's own local adapter,
//! plus a [`Writer`] that writes an event encoded once to one socket at a
//! time. A room event is serialized once for all its recipients, each of
//! which gets a cheap copy of the same bytes, and a full send buffer is
//! still reported for the very socket that has it (the slow-consumer check
//! needs to know whom to close).

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chat_core::events::RoomEvent;
use socketioxide::SocketError;
use socketioxide::adapter::Emitter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::socket::Sid;
use socketioxide_core::adapter::{
    BroadcastOptions, CoreAdapter, CoreLocalAdapter, DefinedAdapter, SocketEmitter,
};
use socketioxide_core::packet::Packet;
use socketioxide_core::{Str, Value};

/// A socket of this gateway.
pub(crate) type Socket = SocketRef<Adapter>;

/// The acknowledgement of an event a socket of this gateway sent.
pub(crate) type Ack = AckSender<Adapter>;

/// The adapter of the gateway's namespace: the local one, shared with the [`Writer`].
pub(crate) struct Adapter {
    local: Arc<CoreLocalAdapter<Emitter>>,
}

impl CoreAdapter<Emitter> for Adapter {
    type Error = Infallible;
    type State = Writer;
    type AckStream = <Emitter as SocketEmitter>::AckStream;
    type InitRes = ();

    fn new(writer: &Writer, local: CoreLocalAdapter<Emitter>) -> Self {
        let local = Arc::new(local);
        // One namespace: the first adapter is the only one.
        let _ = writer.local.set(local.clone());
        Self { local }
    }

    fn init(self: Arc<Self>, on_success: impl FnOnce() + Send + 'static) {
        on_success();
    }

    async fn broadcast_with_ack(
        &self,
        packet: Packet,
        opts: BroadcastOptions,
        timeout: Option<Duration>,
    ) -> Result<Self::AckStream, Self::Error> {
        Ok(self.local.broadcast_with_ack(packet, opts, timeout).0)
    }

    fn get_local(&self) -> &CoreLocalAdapter<Emitter> {
        &self.local
    }
}

impl DefinedAdapter for Adapter {}

/// Writes encoded events to single sockets of the namespace.
#[derive(Clone, Default)]
pub(crate) struct Writer {
    local: Arc<OnceLock<Arc<CoreLocalAdapter<Emitter>>>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("ready", &self.local.get().is_some())
            .finish()
    }
}

impl Writer {
    /// Queues `event` for socket `sid`: `InternalChannelFull` when its
    /// buffer is full, `Closed` when it is gone.
    pub(crate) fn write(&self, sid: Sid, event: &Encoded) -> Result<(), SocketError> {
        let Some(local) = self.local.get() else {
            return Err(SocketError::Closed);
        };
        // Options naming one socket and no room select exactly that socket.
        local
            .broadcast(event.0.clone(), BroadcastOptions::new(sid))
            .map_err(|mut errors| errors.pop().unwrap_or(SocketError::Closed))
    }
}

/// A Socket.IO event of the root namespace, serialized once.
#[derive(Debug, Clone)]
pub(crate) struct Encoded(Packet, usize);

/// What Engine.IO, Socket.IO and WebSocket framing add to an event's JSON, at most.
const FRAMING: usize = 16;

impl Encoded {
    /// A room event in the form socket.io clients read,
    /// `["<event>",<payload>]`. This is where a room event's wire JSON is
    /// made, once per replica.
    pub(crate) fn room_event(event: &RoomEvent) -> Self {
        // Strings, integers and structs of them, as `chat-core`'s payloads are, always serialize.
        let data = serde_json::to_string(event)
            .unwrap_or_else(|_| unreachable!("a payload of chat-core always serializes"));
        let len = data.len() + FRAMING;
        Self(Packet::event("/", Value::Str(Str::from(data), None)), len)
    }

    /// About how many bytes it takes on the wire.
    pub(crate) fn wire_len(&self) -> usize {
        self.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_as_the_common_parser_writes_them() {
        let user = chat_core::UserRef {
            id: "u".into(),
            name: "a \"b\"".into(),
        };
        let Encoded(packet, _) = Encoded::room_event(&RoomEvent::UserEntered(user));
        let socketioxide_core::packet::PacketData::Event(Value::Str(data, None), None) =
            packet.inner
        else {
            panic!("not a plain event");
        };
        assert_eq!(
            data.as_str(),
            r#"["user entered",{"id":"u","name":"a \"b\""}]"#
        );
        assert_eq!(packet.ns.as_str(), "/");
    }
}
