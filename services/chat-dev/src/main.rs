//! The single-process run: `cargo run` at the repository's root.

use anyhow::Context;
use chat_dev::{DevApp, DevSettings};
use chat_settings::Env;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let env = Env::from_process().context("chat-dev cannot start")?;
    let telemetry = chat_telemetry::init_tracing("chat-dev");
    let settings = DevSettings::read(&env).context("chat-dev cannot start")?;
    let result = DevApp::build(settings)
        .await?
        .run_until_stopped(chat_telemetry::shutdown_signal())
        .await;
    telemetry.shutdown();
    result
}
