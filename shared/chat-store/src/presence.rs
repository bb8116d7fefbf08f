//! Who is in which room, across every gateway replica.
//!
//! Presence is kept per connection so that a user with two tabs on two
//! replicas is one member, and a replica that dies without a word can have
//! exactly its own connections swept away by a survivor.

use chat_core::RoomName;
use fred::prelude::*;

use crate::error::StoreError;
use crate::schema;

/// How many users are in each of `rooms` (a user leaving within the exit
/// grace still counts). Read by the web service's dashboard.
pub async fn member_counts(
    client: &Client,
    rooms: impl IntoIterator<Item = &RoomName>,
) -> Result<Vec<(RoomName, u64)>, StoreError> {
    let rooms: Vec<RoomName> = rooms.into_iter().cloned().collect();
    let pipeline = client.pipeline();
    for room in &rooms {
        pipeline.hlen::<(), _>(schema::room_users(room)).await.map_err(StoreError::redis("queue HLEN"))?;
    }
    let counts: Vec<u64> = pipeline.all().await.map_err(StoreError::redis("HLEN room users"))?;
    if counts.len() != rooms.len() {
        return Err(StoreError::reply("HLEN room users", format!("{} counts for {} rooms", counts.len(), rooms.len())));
    }
    Ok(rooms.into_iter().zip(counts).collect())
}
