//! The behaviour suite against Redis, on a real `redis-server` started by
//! the test on a free loopback port, plus what only Redis can do (lose its data).

mod behaviour;
mod redis_server;

use std::sync::Arc;

use anyhow::Result;
use chat_core::{MessageText, RoomName, UserRef};
use chat_store::backend::{Backend, History};
use chat_store::connection::RedisSettings;
use chat_store::history::NewMessage;
use chat_store::redis::RedisBackend;
use fred::prelude::*;
use redis_server::{Redis, start_redis};

/// A private Redis; every node gets its own clients.
struct Nodes {
    redis: Redis,
}

impl behaviour::Nodes for Nodes {
    fn node(&self, node: &str) -> Arc<dyn Backend> {
        let settings = RedisSettings::new(&self.redis.url);
        Arc::new(
            RedisBackend::connect(&settings, true, node)
                .unwrap_or_else(|e| panic!("redis clients: {e}")),
        )
    }
}

fn nodes() -> Nodes {
    Nodes {
        redis: start_redis().unwrap_or_else(|e| panic!("{e}")),
    }
}

behaviour_tests!(nodes());

/// A command client of `redis` and a backend acting as `node-a` through it.
async fn one_node(redis: &Redis) -> Result<(Client, RedisBackend)> {
    let client = RedisSettings::new(&redis.url).command_client()?;
    client.wait_for_connect().await?;
    let backend = RedisBackend::new(client.clone(), None, "node-a");
    Ok((client, backend))
}

#[tokio::test]
async fn ids_keep_increasing_after_redis_loses_the_stream() -> Result<()> {
    let redis = start_redis()?;
    let (client, a) = one_node(&redis).await?;
    let room = RoomName::parse("General")?;
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let text = MessageText::parse("x".into(), 2000).map_err(anyhow::Error::msg)?;
    let first = behaviour::say(&a, &room, &user, "x").await?;
    client.flushall::<()>(false).await?;
    let far_future = chat_core::MessageId {
        ms: first.ms + 3_600_000,
        seq: 7,
    };
    let id = a
        .send(NewMessage {
            room: &room,
            user: &user,
            text: &text,
            floor: Some(far_future),
            trace: None,
        })
        .await?;
    assert_eq!(id, far_future.next());
    Ok(())
}

/// A rolling upgrade: entries stored by the previous release carry no
/// message count (`c`); reads over them still count exactly.
#[tokio::test]
async fn reads_over_messages_stored_by_the_previous_release_count_exactly() -> Result<()> {
    use chat_store::backend::Reads;
    let redis = start_redis()?;
    let (client, a) = one_node(&redis).await?;
    let room = RoomName::parse("General")?;
    let history = chat_store::schema::room_keys(&room, "node-a")[3].clone();
    let mut legacy = Vec::new();
    for t in ["old 1", "old 2", "old 3"] {
        // What the previous release's send script stored.
        let id: String = client
            .xadd(
                &history,
                false,
                None,
                "*",
                vec![("u", "u"), ("n", "Ann"), ("t", t)],
            )
            .await?;
        client
            .incr::<(), _>(chat_store::schema::room_count(&room))
            .await?;
        legacy.push(id.parse::<chat_core::MessageId>()?);
    }
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    for _ in 0..2 {
        behaviour::say(&a, &room, &user, "new").await?;
    }
    a.mark_read(&room, "bob", legacy[0]).await?;
    assert_eq!(behaviour::unread_in(&a, &room, "bob").await?, 4);
    a.mark_read(&room, "bob", legacy[2]).await?;
    assert_eq!(behaviour::unread_in(&a, &room, "bob").await?, 2);
    Ok(())
}
