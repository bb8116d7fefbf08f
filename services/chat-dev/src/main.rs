//! The single-process run: `cargo run` at the repository's root.

use anyhow::Context;
use chat_dev::{DevApp, DevSettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = dotenvy::dotenv();
    let telemetry = chat_telemetry::init_tracing("chat-dev");
    let settings = DevSettings::from_env().context("chat-dev cannot start")?;
    let result = DevApp::build(settings)
        .await?
        .run_until_stopped(chat_telemetry::shutdown_signal())
        .await;
    telemetry.shutdown();
    result
}
