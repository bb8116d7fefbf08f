//! The behaviour suite against the Redis deployments beside a single Redis:
//! a real Redis Cluster (3 primaries, 3 replicas; every room script runs in
//! one hash slot, room events over sharded pub/sub) and a primary with a
//! replica under 3 sentinels.

mod behaviour;
mod topology;

use std::sync::Arc;

use chat_store::backend::Backend;
use chat_store::connection::RedisSettings;
use chat_store::redis::RedisBackend;

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
