//! The behaviour suite against the in-memory backend.

mod behaviour;

use std::sync::Arc;

use chat_store::backend::Backend;
use chat_store::memory::MemoryHub;

struct Memory(Arc<MemoryHub>);

impl behaviour::Nodes for Memory {
    fn node(&self, node: &str) -> Arc<dyn Backend> {
        Arc::new(self.0.backend(node))
    }
}

behaviour_tests!(Memory(MemoryHub::new()));
