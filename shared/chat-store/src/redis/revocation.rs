//! [`Revocations`] on Redis: a key with a TTL per logged-out session, and a
//! message on the revocations channel, in one script; checks are one
//! pipelined round trip however many sessions they ask about.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::Value;

use super::RedisBackend;
use crate::backend::Revocations;
use crate::error::StoreError;
use crate::{schema, scripts};

#[async_trait]
impl Revocations for RedisBackend {
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let args: Vec<Value> = vec![ttl_s.into(), schema::REVOCATIONS_CHANNEL.into(), sid.into()];
        scripts::REVOKE
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
