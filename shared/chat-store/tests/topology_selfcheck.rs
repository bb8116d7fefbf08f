//! The store tests' Redis topologies (tests/topology, which drives
//! tests/support/topology_cli.mjs) start, answer `fred`, and survive the faults they make: a
//! cluster primary SIGKILLed, a Sentinel failover.

mod topology;

use std::time::Duration;

use anyhow::Result;
use fred::prelude::*;
use fred::types::config::ReconnectPolicy;

/// A `fred` client connected through `url`. Like the store's own clients it reconnects
/// (without a policy a client dies with its connection) and no command waits forever.
async fn connect(url: &str) -> Result<Client> {
    let mut builder = Builder::from_config(Config::from_url(url)?);
    builder.set_policy(ReconnectPolicy::new_constant(0, 100));
    builder.with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2));
    builder.with_connection_config(|c| c.connection_timeout = Duration::from_secs(2));
    let client = builder.build()?;
    client.init().await?;
    Ok(client)
}

/// Retries `GET key` until it answers `want` (the client follows a failover on its own).
async fn eventually_get(client: &Client, key: &str, want: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        match client.get::<Option<String>, _>(key).await {
            Ok(Some(v)) if v == want => return Ok(()),
            other if tokio::time::Instant::now() > deadline => {
                anyhow::bail!("GET {key}: {other:?}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_answers_fred_and_survives_a_primary_killed() -> Result<()> {
    let mut cluster = topology::start_cluster()?;
    assert!(cluster.url.starts_with("redis-cluster://127.0.0.1:"));
    assert_eq!(cluster.url.matches("node=").count(), 5);
    let client = connect(&cluster.url).await?;
    let pong: String = client.ping(None).await?;
    assert_eq!(pong, "PONG");
    let key = "chat:room:{General}:seq";
    let _: () = client.set(key, "1", None, None, false).await?;
    let owner = cluster.owner_of(key)?;
    let synced = cluster.command_on(owner, "WAIT 1 5000")?;
    assert_eq!(synced.as_i64(), Some(1));

    let promoted = tokio::task::spawn_blocking(move || {
        let promoted = cluster.kill_primary_of(key)?;
        anyhow::Ok((cluster, promoted))
    })
    .await??;
    let (mut cluster, promoted) = promoted;
    assert_ne!(promoted, owner);
    assert_eq!(cluster.owner_of(key)?, promoted);
    eventually_get(&client, key, "1").await?;
    client.quit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_setup_answers_fred_and_survives_a_failover() -> Result<()> {
    let mut sentinel = topology::start_sentinel()?;
    assert!(sentinel.url.starts_with("redis-sentinel://127.0.0.1:"));
    assert!(sentinel.url.ends_with("&sentinelServiceName=chat"));
    let client = connect(&sentinel.url).await?;
    let pong: String = client.ping(None).await?;
    assert_eq!(pong, "PONG");
    let _: () = client
        .set("chat:room:{General}:seq", "1", None, None, false)
        .await?;
    let primary = sentinel.primary_port()?;
    let synced = sentinel.command_on(primary, "WAIT 1 5000")?;
    assert_eq!(synced.as_i64(), Some(1));

    let (mut sentinel, promoted) = tokio::task::spawn_blocking(move || {
        let promoted = sentinel.failover()?;
        anyhow::Ok((sentinel, promoted))
    })
    .await??;
    assert_ne!(promoted, primary);
    assert_eq!(sentinel.primary_port()?, promoted);
    eventually_get(&client, "chat:room:{General}:seq", "1").await?;
    client.quit().await?;
    Ok(())
}
