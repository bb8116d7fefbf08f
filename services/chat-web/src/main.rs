//! `chat-web`: reads its settings, sets up telemetry and serves until stopped.

use chat_settings::Env;
use chat_web::{App, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // `.env` first, so that it may set telemetry's variables too.
    let env = Env::from_process();
    let telemetry = chat_telemetry::init_tracing("chat-web");
    let result = async {
        App::build(Config::read(&env?)?)
            .await?
            .run_until_stopped(chat_telemetry::shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    telemetry.shutdown();
    if let Err(e) = result {
        eprintln!("chat-web: {e}");
        std::process::exit(1);
    }
    Ok(())
}
