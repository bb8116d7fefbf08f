//! The behaviour suite against the Redis deployments beside a single Redis:
//! a real Redis Cluster (3 primaries, 3 replicas; every room script runs in
//! one hash slot, room events over sharded pub/sub) and a primary with a
//! replica under 3 sentinels; and waiting for a stopped replica
//! (`REDIS_WAIT_REPLICAS`) on the Sentinel set.

mod behaviour;
mod topology;

use std::sync::Arc;

use chat_store::backend::Backend;
use chat_store::connection::RedisSettings;
use chat_store::redis::RedisBackend;
use chat_store::rooms::Standing;

/// Nodes of the store on one topology; each node gets its own clients.
struct Nodes {
    topology: topology::Topology,
}

impl behaviour::Nodes for Nodes {
    fn node(&self, node: &str) -> Arc<dyn Backend> {
        let settings = RedisSettings::new(&self.topology.url);
        Arc::new(
            RedisBackend::connect(&settings, true, node)
                .unwrap_or_else(|e| panic!("redis clients: {e}")),
        )
    }
}

mod cluster {
    use super::*;

    fn nodes() -> Nodes {
        Nodes {
            topology: topology::start_cluster().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    behaviour_tests!(nodes());
}

mod sentinel {
    use super::*;

    fn nodes() -> Nodes {
        Nodes {
            topology: topology::start_sentinel().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    behaviour_tests!(nodes());
}

/// `REDIS_WAIT_REPLICAS=1` on a real Sentinel set whose replica is stopped.
mod replica_wait {
    use std::time::{Duration, Instant};

    use anyhow::{Context, Result};
    use chat_core::{MessageId, MessageText, RoomName, UserRef};
    use chat_store::History;
    use chat_store::history::{NewMessage, Replicated};

    use super::*;

    async fn send(store: &RedisBackend, room: &RoomName, text: &str) -> Result<MessageId> {
        let user = UserRef {
            id: "ann".into(),
            name: "Ann".into(),
        };
        let text = MessageText::parse(text.into(), 100).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let message = NewMessage {
            room,
            user: &user,
            text: &text,
            floor: None,
            trace: None,
            standing: Standing {
                configured: true,
                ..Standing::default()
            },
        };
        store
            .send(message)
            .await?
            .id()
            .context("the message was refused")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stopped_replica_holds_up_the_waits_for_it_and_nothing_else() -> Result<()> {
        let sentinel = topology::start_sentinel()?;
        let mut settings = RedisSettings::new(&sentinel.url);
        settings.wait_replicas = 1;
        let store = Arc::new(RedisBackend::connect(&settings, false, "n1")?);
        let room = RoomName::parse("General").context("room")?;

        let first = send(&store, &room, "one").await?;
        assert_eq!(
            store.replicated(&room, Some(first)).await?,
            Replicated::Held
        );
        let never = MessageId {
            ms: first.ms + 60_000,
            seq: 0,
        };
        assert_eq!(
            store.replicated(&room, Some(never)).await?,
            Replicated::Lost,
            "a message the primary does not hold is not confirmed"
        );

        let mut sentinel = tokio::task::spawn_blocking(move || {
            let mut sentinel = sentinel;
            sentinel.pause_replica()?;
            anyhow::Ok(sentinel)
        })
        .await??;
        let second = send(&store, &room, "two").await?;
        let waiting = tokio::spawn({
            let (store, room) = (store.clone(), room.clone());
            async move {
                let started = Instant::now();
                let outcome = store.replicated(&room, Some(second)).await;
                (outcome, started.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = Instant::now();
        let page = store
            .history_before(
                &room,
                MessageId {
                    ms: u64::MAX,
                    seq: 0,
                },
                10,
            )
            .await?;
        assert_eq!(page.len(), 2);
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "history waits for no replica ({:?})",
            started.elapsed()
        );
        let (outcome, took) = waiting.await?;
        assert!(outcome.is_err(), "no replica holds it: {outcome:?}");
        assert!(
            took < Duration::from_secs(3),
            "the wait is bounded ({took:?})"
        );

        sentinel.resume_replica()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match store.replicated(&room, Some(second)).await {
                Ok(outcome) => {
                    assert_eq!(outcome, Replicated::Held);
                    break;
                }
                Err(e) if Instant::now() > deadline => return Err(e.into()),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(())
    }
}
