//! The `chat-gateway` binary: read the settings, set up telemetry, run.

use anyhow::Context;
use chat_gateway::{App, GatewayConfig};
use chat_settings::Env;

/// jemalloc, not the system's allocator: a replica holds many small,
/// long-lived allocations per connection, and a burst (a large room filling,
/// a reconnect storm) frees many short-lived ones between them. glibc's
/// malloc kept what such a burst freed resident (docs/BENCHMARKS.md); jemalloc
/// packs allocations by size and, with its background thread, gives unused
/// pages back to the system within seconds.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process().context("chat-gateway cannot start")?;
    let telemetry = chat_telemetry::init_tracing("chat-gateway");
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!(error = %e, "jemalloc's background thread did not start: freed memory is returned more slowly");
    }
    let config = GatewayConfig::read(&env).context("chat-gateway cannot start")?;
    let result = App::build(config)
        .await?
        .run_until_stopped(chat_telemetry::shutdown_signal())
        .await;
    telemetry.shutdown();
    result
}
