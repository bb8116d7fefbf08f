//! The `chat-gateway` binary: read the settings, set up telemetry, run.

use anyhow::Context;
use chat_gateway::{App, GatewayConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let telemetry = chat_telemetry::init_tracing("chat-gateway");
    let config = GatewayConfig::from_env().context("chat-gateway cannot start")?;
    let result = App::build(config)
        .await?
        .run_until_stopped(chat_telemetry::shutdown_signal())
        .await;
    telemetry.shutdown();
    result
}
