//! [`Revocations`] on Redis: a key with a TTL per logged-out session, and a
//! message on the revocations channel, in one transaction.

use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::*;
use fred::types::Expiration;

use super::RedisBackend;
use crate::backend::Revocations;
use crate::error::StoreError;
use crate::schema;

#[async_trait]
impl Revocations for RedisBackend {
    async fn revoke_session(&self, sid: &str, ttl: Duration) -> Result<(), StoreError> {
        let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let tx = self.client.multi();
        tx.set::<(), _, _>(
            schema::revoked(sid),
            "1",
            Some(Expiration::EX(ttl_s)),
            None,
            false,
        )
        .await
        .map_err(StoreError::redis("queue SET revoked"))?;
        tx.publish::<(), _, _>(schema::REVOCATIONS_CHANNEL, sid)
            .await
            .map_err(StoreError::redis("queue PUBLISH revocation"))?;
        tx.exec::<()>(true)
            .await
            .map_err(StoreError::redis("revoke session"))
    }

    async fn is_revoked(&self, sid: &str) -> Result<bool, StoreError> {
        self.client
            .exists::<bool, _>(schema::revoked(sid))
            .await
            .map_err(StoreError::redis("EXISTS revoked"))
    }
}
