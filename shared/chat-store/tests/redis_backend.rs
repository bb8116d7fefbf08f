//! The behaviour suite against Redis, on a real `redis-server` on a free
//! loopback port (tests/topology), plus what only Redis can do (lose its data).

mod behaviour;
mod topology;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use chat_core::{MessageText, RoomName, UserRef};
use chat_store::backend::{Backend, History};
use chat_store::connection::RedisSettings;
use chat_store::history::NewMessage;
use chat_store::redis::RedisBackend;
use chat_store::rooms::Standing;
use fred::prelude::*;

/// A private Redis; every node gets its own clients.
struct Nodes {
    redis: topology::Topology,
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
        redis: topology::start_single().unwrap_or_else(|e| panic!("{e}")),
    }
}

behaviour_tests!(nodes());

/// A command client of `redis` and a backend acting as `node-a` through it.
async fn one_node(redis: &topology::Topology) -> Result<(Client, RedisBackend)> {
    let client = RedisSettings::new(&redis.url).command_client()?;
    client.wait_for_connect().await?;
    let backend = RedisBackend::new(client.clone(), None, "node-a");
    Ok((client, backend))
}

#[tokio::test]
async fn ids_keep_increasing_after_redis_loses_the_stream() -> Result<()> {
    let redis = topology::start_single()?;
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
            standing: Standing {
                configured: true,
                ..Standing::default()
            },
        })
        .await?
        .id()
        .context("the message was refused")?;
    assert_eq!(id, far_future.next());
    Ok(())
}

/// A rolling upgrade: entries stored by the previous release carry no
/// message count (`c`); reads over them still count exactly.
#[tokio::test]
async fn reads_over_messages_stored_by_the_previous_release_count_exactly() -> Result<()> {
    use chat_store::backend::Reads;
    let redis = topology::start_single()?;
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

/// A rolling upgrade: the previous release's replicas read the events this
/// release's scripts publish. They read the same field names (and forward
/// `message` as it is), so each event is checked whole, field for field.
#[tokio::test]
async fn published_events_keep_the_previous_release_s_field_names() -> Result<()> {
    use anyhow::{Context, bail};
    use chat_core::events::Change;
    use chat_store::history::MessageChange;
    use serde_json::{Value, json};
    use std::time::Duration;

    let redis = topology::start_single()?;
    let (_client, a) = one_node(&redis).await?;
    let room = RoomName::parse("General")?;
    let listener = RedisSettings::new(&redis.url).command_client()?;
    listener.wait_for_connect().await?;
    let mut published = listener.message_rx();
    listener
        .ssubscribe(chat_store::schema::room_channel(&room))
        .await?;
    let mut next = async || -> Result<Value> {
        let m = tokio::time::timeout(Duration::from_secs(5), published.recv()).await??;
        let json = m.value.as_string().context("a string event")?;
        Ok(serde_json::from_str(&json)?)
    };

    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let text = MessageText::parse("hi / \"there\"".into(), 2000).map_err(anyhow::Error::msg)?;
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let id = a
        .send(NewMessage {
            room: &room,
            user: &user,
            text: &text,
            floor: None,
            trace: Some(tp),
            standing: Standing {
                configured: true,
                ..Standing::default()
            },
        })
        .await?
        .id()
        .context("the message was refused")?;
    let sent = next().await?;
    assert_eq!(
        sent,
        json!({"seq": sent["seq"], "kind": "message", "id": id.to_string(), "tp": tp,
            "message": {"id": id.to_string(), "room": "General",
                "user": {"id": "u", "name": "Ann"}, "text": "hi / \"there\"", "ts": id.ms}})
    );
    let edit = MessageText::parse("edited".into(), 2000).map_err(anyhow::Error::msg)?;
    let change = |text| MessageChange {
        room: &room,
        id,
        user_id: "u",
        text,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    a.change(change(Some(&edit))).await?;
    let edited = next().await?;
    let Some(Change::Edited { edited_ts, .. }) = a.changes_after(&room, id).await?.pop() else {
        bail!("the edit is not logged")
    };
    assert_eq!(
        edited,
        json!({"seq": edited["seq"], "kind": "edited", "id": id.to_string(),
            "change": {"id": id.to_string(), "room": "General", "text": "edited", "edited_ts": edited_ts}})
    );
    a.change(change(None)).await?;
    let deleted = next().await?;
    assert_eq!(
        deleted,
        json!({"seq": deleted["seq"], "kind": "deleted", "id": id.to_string(),
            "change": {"id": id.to_string(), "room": "General"}})
    );
    let seqs: Vec<u64> = [&sent, &edited, &deleted]
        .iter()
        .map(|e| e["seq"].as_u64().context("a numeric seq"))
        .collect::<Result<_>>()?;
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    Ok(())
}
