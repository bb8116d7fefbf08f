//! `chat-web`: reads its settings, sets up logging and serves until stopped.

use chat_web::{App, Config, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let result = async {
        App::build(Config::from_env()?)
            .await?
            .run_until_stopped(shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    };
    if let Err(e) = result.await {
        eprintln!("chat-web: {e}");
        std::process::exit(1);
    }
    Ok(())
}
