//! The behaviour suite against Redis, on a real `redis-server` on a free
//! loopback port (tests/topology), plus what only Redis can do (lose its data).

mod behaviour;
mod topology;

use std::sync::Arc;

use anyhow::{Context as _, Result};
use chat_core::{MessageText, RoomName, UserRef};
use chat_store::backend::{Backend, History, Presence};
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

fn conn(room: &RoomName, conn: &str, user: &str) -> chat_store::presence::Connection {
    chat_store::presence::Connection {
        room: room.clone(),
        conn: conn.into(),
        user: UserRef {
            id: user.into(),
            name: user.into(),
        },
    }
}

async fn join(store: &dyn Backend, c: &chat_store::presence::Connection) -> Result<()> {
    use chat_store::presence::{JoinOutcome, JoinRequest};
    store.track(std::slice::from_ref(&c.room)).await?;
    let request = JoinRequest {
        connection: c,
        session: None,
        since: None,
        history_limit: 10,
        standing: Standing {
            configured: true,
            ..Standing::default()
        },
    };
    match store.join(request, false).await? {
        JoinOutcome::Joined(_) => Ok(()),
        JoinOutcome::Revoked | JoinOutcome::Unknown => anyhow::bail!("refused"),
    }
}

/// A rolling upgrade: replicas of the release before heartbeat and sweep
/// room by room in the configured rooms. This release keeps doing both
/// there, so each sweeps the other's dead replicas, each connection once.
#[tokio::test]
async fn the_configured_rooms_keep_the_previous_release_s_heartbeats_and_sweeps() -> Result<()> {
    use std::time::Duration;
    let redis = topology::start_single()?;
    let node = |name: &str| -> Result<RedisBackend> {
        Ok(RedisBackend::connect(
            &RedisSettings::new(&redis.url),
            false,
            name,
        )?)
    };
    let (dead, alive) = (node("dead")?, node("alive")?);
    let room = RoomName::parse("Music")?;
    let rooms = std::slice::from_ref(&room);
    for (store, ttl) in [(&dead, 200), (&alive, 60_000)] {
        let beats = store
            .legacy_heartbeat(rooms, Duration::from_millis(ttl), "e1")
            .await;
        assert!(beats.iter().all(|(_, b)| b.is_ok()), "{beats:?}");
    }
    join(&dead, &conn(&room, "d1", "cy")).await?;
    join(&alive, &conn(&room, "l1", "di")).await?;
    // The per-room heartbeat's TTL is the thing under test: let it run out.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s1, s2) = tokio::join!(
        alive.legacy_sweep(rooms, Duration::ZERO, 100),
        alive.legacy_sweep(rooms, Duration::ZERO, 100)
    );
    let (s1, s2) = (s1?, s2?);
    assert_eq!(s1.connections_removed + s2.connections_removed, 1);
    assert_eq!(s1.users_exited + s2.users_exited, 1);
    assert_eq!(alive.member_counts(rooms).await?[0].1, 1);
    // This release's sweep finds nothing left of it (it never beat as a node).
    assert_eq!(alive.sweep_dead(Duration::ZERO).await?.nodes, 0);
    Ok(())
}

/// A node taken as dead whose sweeper has not reached its rooms yet when it
/// comes back: it takes over its old id's registrations, and the sweeper,
/// when it gets there, finds nothing to release.
#[tokio::test]
async fn a_sweeper_that_reaches_a_taken_over_id_late_releases_nothing() -> Result<()> {
    use chat_store::presence::{Liveness, Restore};
    use std::time::Duration;
    let redis = topology::start_single()?;
    let (client, _) = one_node(&redis).await?;
    let settings = RedisSettings::new(&redis.url);
    let stalled = RedisBackend::connect(&settings, false, "stalled")?;
    let sweeper = RedisBackend::connect(&settings, false, "sweeper")?;
    let room = RoomName::parse("Late")?;
    stalled.heartbeat(Duration::from_secs(60)).await?;
    sweeper.heartbeat(Duration::from_secs(60)).await?;
    let c = conn(&room, "s1", "fay");
    join(&stalled, &c).await?;
    // What the take script does to a node whose liveness lapsed, by a
    // sweeper that then stops before its rooms, a lease ago.
    client
        .srem::<(), _, _>(chat_store::schema::NODES, "stalled")
        .await?;
    client
        .del::<(), _>(chat_store::schema::node_alive("stalled"))
        .await?;
    client
        .zadd::<(), _, _>(
            chat_store::schema::NODES_TAKEN,
            None,
            None,
            false,
            false,
            (1.0, "stalled"),
        )
        .await?;
    let beat = stalled.heartbeat(Duration::from_secs(60)).await?;
    assert!(matches!(beat.liveness, Liveness::Replaced { ref previous } if previous == "stalled"));
    stalled.track(std::slice::from_ref(&room)).await?;
    let restored = stalled
        .restore(
            &room,
            std::slice::from_ref(&c),
            Restore::TakingOver("stalled"),
        )
        .await?;
    assert_eq!(
        restored, 0,
        "still registered: taken over, not registered anew"
    );
    let swept = sweeper.sweep_dead(Duration::ZERO).await?;
    assert_eq!(swept.nodes, 1, "the stale take is taken again");
    assert_eq!(
        swept.connections_removed, 0,
        "nothing left under the old id"
    );
    assert_eq!(
        sweeper.member_counts(std::slice::from_ref(&room)).await?[0].1,
        1
    );
    // Should the new id die, its sweeper finds the connection.
    let mine: Vec<String> = client
        .smembers(chat_store::schema::room_key(&room, "node:stalled.1"))
        .await?;
    assert_eq!(mine, ["s1\tfay"]);
    Ok(())
}

/// A replica's background traffic does not grow with the rooms it serves:
/// the same commands with 1,000 rooms listed as with one.
#[tokio::test]
async fn a_replica_s_background_traffic_does_not_grow_with_its_rooms() -> Result<()> {
    use std::time::Duration;
    let redis = topology::start_single()?;
    let (client, _) = one_node(&redis).await?;
    let settings = RedisSettings::new(&redis.url);
    let (a, b) = (
        RedisBackend::connect(&settings, false, "a")?,
        RedisBackend::connect(&settings, false, "b")?,
    );
    let calls = async |rooms: usize| -> Result<u64> {
        let listed: Vec<RoomName> = (0..rooms)
            .map(|i| RoomName::parse(&format!("room-{i}")))
            .collect::<Result<_, _>>()?;
        a.track(&listed).await?;
        // Scripts loaded, both replicas registered: what follows is their
        // steady state.
        for store in [&a, &b] {
            store.heartbeat(Duration::from_secs(6)).await?;
            store.sweep_dead(Duration::from_secs(5)).await?;
        }
        client
            .custom::<(), _>(fred::cmd!("CONFIG"), vec!["RESETSTAT"])
            .await?;
        for _ in 0..10 {
            a.heartbeat(Duration::from_secs(6)).await?;
            b.heartbeat(Duration::from_secs(6)).await?;
            a.sweep_dead(Duration::from_secs(5)).await?;
            b.sweep_dead(Duration::from_secs(5)).await?;
        }
        let stats: String = client
            .custom(fred::cmd!("INFO"), vec!["commandstats"])
            .await?;
        Ok(stats
            .lines()
            .filter(|l| !l.starts_with("cmdstat_config") && !l.starts_with("cmdstat_info"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum())
    };
    let one = calls(1).await?;
    let thousand = calls(1000).await?;
    assert_eq!(one, thousand, "commands for 10 rounds of two replicas");
    assert!(
        one <= 10 * 2 * 10,
        "{one} commands for 10 rounds of two replicas"
    );
    Ok(())
}
