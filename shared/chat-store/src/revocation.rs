//! Ending the connections of a logged-out web session.
//!
//! The web service calls [`revoke_session`] at logout: it marks the session
//! as revoked (so a token it minted earlier can no longer open a connection)
//! and tells every gateway replica, which closes that session's connections
//! with `token_revoked`.

use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;

use crate::error::StoreError;
use crate::schema;

/// Marks web session `sid` as logged out for `ttl` (at least a token's
/// lifetime plus the expiry grace) and tells every gateway replica.
pub async fn revoke_session(client: &Client, sid: &str, ttl: Duration) -> Result<(), StoreError> {
    let ttl_s = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
    let tx = client.multi();
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

/// Whether web session `sid` was logged out.
pub async fn is_revoked(client: &Client, sid: &str) -> Result<bool, StoreError> {
    client
        .exists::<bool, _>(schema::revoked(sid))
        .await
        .map_err(StoreError::redis("EXISTS revoked"))
}
