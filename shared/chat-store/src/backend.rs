//! A whole backend: the eight things a chat backend does, each a trait in the
//! module of its concept (beside its Redis and in-memory implementations),
//! so that the services never know whether they talk to Redis or to the
//! in-memory backend of the single-process mode. One behaviour test suite
//! runs against both.

use std::fmt::Debug;

use async_trait::async_trait;
use chat_core::RoomName;

pub use crate::directory::Directory;
use crate::error::StoreError;
pub use crate::events::{FanoutEvent, SUBSCRIPTION_CAPACITY, Subscription};
pub use crate::fanout::Fanout;
pub use crate::history::History;
use crate::memory::MemoryBackend;
pub use crate::presence::Presence;
pub use crate::reads::Reads;
use crate::redis::RedisBackend;
pub use crate::revocations::Revocations;
pub use crate::rooms::Rooms;
pub use crate::signals::Signals;

/// What happened to one room of a per-room operation.
pub type PerRoom<T> = Vec<(RoomName, Result<T, StoreError>)>;

/// A whole backend.
#[async_trait]
pub trait Backend:
    Presence + History + Reads + Signals + Fanout + Revocations + Rooms + Directory + Debug
{
    /// Whether the store answers right now.
    async fn ping(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl Backend for RedisBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        crate::connection::ping(&self.client).await
    }
}

#[async_trait]
impl Backend for MemoryBackend {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
