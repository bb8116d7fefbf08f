//! The `chat-gateway` binary: read the settings, set up logging, run.

use anyhow::Context;
use chat_gateway::{App, GatewayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    chat_telemetry::init_tracing();
    let config = GatewayConfig::from_env().context("chat-gateway cannot start")?;
    App::build(config)
        .await?
        .run_until_stopped(chat_telemetry::shutdown_signal())
        .await
}
