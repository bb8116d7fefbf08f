//! Behaviour of the Redis store against a real `redis-server`, started by the
//! test on a free loopback port.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chat_core::{MessageText, RoomName, UserRef};
use chat_store::RoomStore;
use chat_store::connection::RedisSettings;
use chat_store::events::{RoomEvent, RoomEventKind};
use chat_store::history::NewMessage;
use chat_store::presence::{Connection, JoinOutcome, JoinRequest, Snapshot};
use fred::prelude::*;

struct Redis {
    child: Child,
    url: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_redis() -> Result<Redis> {
    // Another test may grab the same free port first: then our server exits and we try again.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .context("redis-server must be installed (the test command installs it)")?;
        for _ in 0..250 {
            if child.try_wait()?.is_some() {
                break;
            }
            if pong(port).is_ok() {
                return Ok(Redis {
                    child,
                    url: format!("redis://127.0.0.1:{port}"),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("could not start redis-server")
}

fn pong(port: u16) -> Result<()> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    stream.write_all(b"PING\r\n")?;
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf)?;
    if &buf == b"+PONG\r\n" {
        Ok(())
    } else {
        bail!("not redis")
    }
}

async fn store(redis: &Redis, node: &str) -> Result<RoomStore> {
    let client = RedisSettings::new(&redis.url).command_client()?;
    client.wait_for_connect().await?;
    Ok(RoomStore::new(client, node))
}

fn conn(room: &RoomName, conn: &str, user: &str) -> Connection {
    Connection {
        room: room.clone(),
        conn: conn.into(),
        user: UserRef {
            id: user.into(),
            name: format!("{user} name"),
        },
    }
}

async fn join(store: &RoomStore, c: &Connection) -> Result<Snapshot> {
    let request = JoinRequest {
        connection: c,
        session: None,
        since: None,
        history_limit: 100,
    };
    match store.join(request, false).await? {
        JoinOutcome::Joined(s) => Ok(s),
        JoinOutcome::Revoked => bail!("unexpectedly revoked"),
    }
}

/// Subscribes to a room's channel and returns a receiver of decoded events.
async fn listen(
    redis: &Redis,
    room: &RoomName,
) -> Result<tokio::sync::mpsc::UnboundedReceiver<RoomEvent>> {
    let sub = RedisSettings::new(&redis.url).subscriber_client()?;
    sub.wait_for_connect().await?;
    sub.subscribe(chat_store::schema::room_channel(room))
        .await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = sub.message_rx();
    tokio::spawn(async move {
        let _keep = sub;
        while let Ok(m) = messages.recv().await {
            if let Some(text) = m.value.as_str()
                && let Ok(event) = RoomEvent::decode(&text)
            {
                let _ = tx.send(event);
            }
        }
    });
    Ok(rx)
}

fn drain(rx: &mut tokio::sync::mpsc::UnboundedReceiver<RoomEvent>) -> Vec<RoomEvent> {
    std::iter::from_fn(|| rx.try_recv().ok()).collect()
}

#[tokio::test]
async fn two_tabs_on_two_nodes_at_once_enter_once_and_exit_once() -> Result<()> {
    let redis = start_redis().await?;
    let (a, b) = (
        store(&redis, "node-a").await?,
        store(&redis, "node-b").await?,
    );
    let room = RoomName::parse("General")?;
    let mut events = listen(&redis, &room).await?;
    let (ca, cb) = (conn(&room, "a1", "ann"), conn(&room, "b1", "ann"));
    let (sa, sb) = tokio::join!(join(&a, &ca), join(&b, &cb));
    let (sa, sb) = (sa?, sb?);
    assert_eq!(sa.members.len(), 1);
    assert_eq!(sb.members.len(), 1);
    // Both tabs leave; after the grace exactly one `user exited`.
    a.leave(&ca, Duration::ZERO).await?;
    b.leave(&cb, Duration::ZERO).await?;
    let sweep = a.sweep(Duration::ZERO, 100).await?;
    assert_eq!(sweep.users_exited, 1);
    assert_eq!(b.sweep(Duration::ZERO, 100).await?.users_exited, 0);
    // The events arrive in publish order: one entered, one exited.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await?
            .context("closed")?;
        seen.push(e);
    }
    assert!(matches!(&seen[0].kind, RoomEventKind::Entered(u) if u.id == "ann"));
    assert!(matches!(&seen[1].kind, RoomEventKind::Exited(u) if u.id == "ann"));
    assert!(drain(&mut events).is_empty());
    Ok(())
}

#[tokio::test]
async fn a_user_back_within_the_grace_causes_no_events() -> Result<()> {
    let redis = start_redis().await?;
    let a = store(&redis, "node-a").await?;
    let room = RoomName::parse("General")?;
    let first = conn(&room, "a1", "bob");
    join(&a, &first).await?;
    let mut events = listen(&redis, &room).await?;
    a.leave(&first, Duration::from_secs(60)).await?;
    let snapshot = join(&a, &conn(&room, "a2", "bob")).await?;
    assert_eq!(snapshot.members.len(), 1, "still listed during the grace");
    assert_eq!(a.sweep(Duration::ZERO, 100).await?.users_exited, 0);
    // A marker message proves the channel delivered everything before it.
    let text = MessageText::parse("marker".into(), 2000).map_err(anyhow::Error::msg)?;
    a.send(NewMessage {
        room: &room,
        user: &first.user,
        text: &text,
        floor: None,
        trace: None,
    })
    .await?;
    let e = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await?
        .context("closed")?;
    assert!(
        matches!(e.kind, RoomEventKind::Message { .. }),
        "no presence event before the marker: {e:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_dead_nodes_connections_are_swept_by_one_survivor() -> Result<()> {
    let redis = start_redis().await?;
    let (dead, alive) = (store(&redis, "dead").await?, store(&redis, "alive").await?);
    let room = RoomName::parse("Music")?;
    dead.heartbeat(Duration::from_millis(200), "e1").await?;
    alive.heartbeat(Duration::from_secs(60), "e1").await?;
    join(&dead, &conn(&room, "d1", "cy")).await?;
    join(&alive, &conn(&room, "l1", "di")).await?;
    tokio::time::sleep(Duration::from_millis(300)).await; // let the dead node's heartbeat expire
    let sweeps = tokio::join!(
        alive.sweep(Duration::ZERO, 100),
        alive.sweep(Duration::ZERO, 100)
    );
    let (s1, s2) = (sweeps.0?, sweeps.1?);
    assert_eq!(s1.connections_removed + s2.connections_removed, 1);
    assert_eq!(s1.users_exited + s2.users_exited, 1);
    let counts = chat_store::presence::member_counts(alive.client(), [&room]).await?;
    assert_eq!(counts[0].1, 1);
    Ok(())
}

#[tokio::test]
async fn messages_are_stored_in_order_and_paged_back() -> Result<()> {
    let redis = start_redis().await?;
    let a = store(&redis, "node-a").await?;
    let room = RoomName::parse("General")?;
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let mut ids = Vec::new();
    for i in 0..120 {
        let text = MessageText::parse(format!("m{i}"), 2000).map_err(anyhow::Error::msg)?;
        ids.push(
            a.send(NewMessage {
                room: &room,
                user: &user,
                text: &text,
                floor: None,
                trace: None,
            })
            .await?,
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let page = a.history_before(&room, ids[50], 10).await?;
    let texts: Vec<String> = page
        .iter()
        .map(|m| serde_json::from_str::<chat_core::Message>(m.get()).map(|m| m.text))
        .collect::<Result<_, _>>()?;
    assert_eq!(texts, (40..50).map(|i| format!("m{i}")).collect::<Vec<_>>());

    let c = conn(&room, "x", "v");
    let since = JoinRequest {
        connection: &c,
        session: None,
        since: Some(ids[110]),
        history_limit: 100,
    };
    let JoinOutcome::Joined(s) = a.join(since, false).await? else {
        bail!("revoked")
    };
    assert!(s.recovered);
    assert_eq!(s.history.len(), 9);
    let c2 = conn(&room, "y", "w");
    let old = JoinRequest {
        connection: &c2,
        session: None,
        since: Some(ids[5]),
        history_limit: 100,
    };
    let JoinOutcome::Joined(s) = a.join(old, false).await? else {
        bail!("revoked")
    };
    assert!(!s.recovered, "more than 100 came after since");
    assert_eq!(s.history.len(), 100);
    Ok(())
}

#[tokio::test]
async fn ids_keep_increasing_after_redis_loses_the_stream() -> Result<()> {
    let redis = start_redis().await?;
    let a = store(&redis, "node-a").await?;
    let room = RoomName::parse("General")?;
    let user = UserRef {
        id: "u".into(),
        name: "Ann".into(),
    };
    let text = MessageText::parse("x".into(), 2000).map_err(anyhow::Error::msg)?;
    let far_future = chat_core::MessageId {
        ms: 99_999_999_999_999,
        seq: 7,
    };
    a.client().flushall::<()>(false).await?;
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

#[tokio::test]
async fn a_revoked_session_cannot_join() -> Result<()> {
    let redis = start_redis().await?;
    let a = store(&redis, "node-a").await?;
    chat_store::revocation::revoke_session(a.client(), "sess-1", Duration::from_secs(60)).await?;
    let room = RoomName::parse("General")?;
    let c = conn(&room, "a1", "ann");
    let request = JoinRequest {
        connection: &c,
        session: Some("sess-1"),
        since: None,
        history_limit: 100,
    };
    assert!(matches!(
        a.join(request, false).await?,
        JoinOutcome::Revoked
    ));
    let counts = chat_store::presence::member_counts(a.client(), [&room]).await?;
    assert_eq!(counts[0].1, 0, "a refused join leaves no trace");
    Ok(())
}
