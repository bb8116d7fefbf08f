//! Logged-out web sessions: [`Revocations`] and its two implementations.
//!
//! On Redis, a key with a TTL per logged-out session, and a message on the
//! revocations channel, in one script; checks are one pipelined round trip
//! however many sessions they ask about.

use std::time::Duration;

use std::sync::LazyLock;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::Value;
use fred::types::scripts::Script;

use crate::error::StoreError;
use crate::events::FanoutEvent;
use crate::memory::{MemoryBackend, millis, now_ms};
use crate::redis::RedisBackend;
use crate::schema;

/// Logged-out web sessions.
#[async_trait]
pub trait Revocations: Send + Sync {
    /// Marks web session `sid` as logged out for `ttl` and tells every replica.
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError>;
    /// Which of web sessions `sids` were logged out (in one round trip).
    async fn revoked_among(&self, sids: &[String]) -> Result<Vec<String>, StoreError>;
}

// On Redis.

/// Mark a web session as logged out and publish its `sid`, in one step.
static REVOKE: LazyLock<Script> =
    LazyLock::new(|| Script::from_lua(include_str!("lua/revoke.lua")));

#[async_trait]
impl Revocations for RedisBackend {
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let args: Vec<Value> = vec![ttl_s.into(), schema::REVOCATIONS_CHANNEL.into(), sid.into()];
        REVOKE
            .evalsha_with_reload::<(), _, _>(&self.client, schema::revoked(sid), args)
            .await
            .map_err(StoreError::redis("revoke session"))
    }

    async fn revoked_among(&self, sids: &[String]) -> Result<Vec<String>, StoreError> {
        if sids.is_empty() {
            return Ok(Vec::new());
        }
        // One EXISTS per key, pipelined: never a multi-key command, whose keys
        // would have to share a hash slot in a cluster.
        let pipeline = self.client.pipeline();
        for sid in sids {
            pipeline
                .exists::<(), _>(schema::revoked(sid))
                .await
                .map_err(StoreError::redis("queue EXISTS revoked"))?;
        }
        let found: Vec<bool> = pipeline
            .all()
            .await
            .map_err(StoreError::redis("EXISTS revoked"))?;
        if found.len() != sids.len() {
            return Err(StoreError::reply(
                "EXISTS revoked",
                format!("{} answers for {} sessions", found.len(), sids.len()),
            ));
        }
        Ok(sids
            .iter()
            .zip(found)
            .filter(|(_, revoked)| *revoked)
            .map(|(sid, _)| sid.clone())
            .collect())
    }
}

// In memory.

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
