//! The whole product started inside the test (`spawn_app`), on its own port
//! and its own in-memory state: what needs no real process, checked without
//! starting one. What does (signals, crashes, Redis, browsers) is in tests/.

use anyhow::{Context, Result};
use chat_dev::{DevApp, DevSettings};
use chat_settings::Env;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, ORIGIN, SET_COOKIE};

/// A running app: its base URL and a client that follows no redirect.
struct TestApp {
    base: String,
    client: reqwest::Client,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs in through the development form as `name`; returns the session cookie.
    async fn sign_in(&self, name: &str) -> Result<String> {
        let res = self
            .client
            .post(self.url("/login"))
            .header(ORIGIN, &self.base)
            .form(&[("name", name), ("next", "/dashboard")])
            .send()
            .await?;
        anyhow::ensure!(res.status().is_redirection(), "sign-in: {}", res.status());
        let cookie = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{}=", chat_web::session::COOKIE_NAME)))
            .context("a session cookie")?;
        Ok(cookie.split(';').next().unwrap_or_default().to_owned())
    }
}

/// Starts the single-process app on a free loopback port.
async fn spawn_app() -> Result<TestApp> {
    // The public URL must name the port, so take one first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let settings = DevSettings::read(&Env::from_pairs(&[("CHAT_ADDR", &addr)]))?;
    let app = DevApp::build(settings).await?;
    let base = format!("http://{}", app.local_addr()?);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(TestApp { base, client })
}

#[tokio::test]
async fn health_and_readiness_answer() -> Result<()> {
    let app = spawn_app().await?;
    for path in ["/healthz", "/readyz"] {
        let res = app.client.get(app.url(path)).send().await?;
        assert_eq!(res.status(), StatusCode::OK, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn a_page_that_needs_a_user_sends_the_browser_to_sign_in_and_back() -> Result<()> {
    let app = spawn_app().await?;
    let res = app.client.get(app.url("/dashboard")).send().await?;
    assert!(res.status().is_redirection(), "{}", res.status());
    let location = res
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default();
    assert!(location.starts_with("/login?next="), "{location}");
    let res = app
        .client
        .post(app.url("/api/rooms/General/token"))
        .header(ORIGIN, &app.base)
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn a_signed_in_user_gets_a_room_token_from_this_site_only() -> Result<()> {
    let app = spawn_app().await?;
    let cookie = app.sign_in("Ann").await?;
    let token = |room: &str, origin: &str| {
        app.client
            .post(app.url(&format!("/api/rooms/{room}/token")))
            .header(ORIGIN, origin)
            .header(COOKIE, &cookie)
            .send()
    };
    let res = token("General", &app.base).await?;
    assert_eq!(res.status(), StatusCode::OK);
    let body: serde_json::Value = res.json().await?;
    assert!(
        body["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );
    assert_eq!(body["gateway_url"], app.base.as_str());
    assert_eq!(
        token("Nowhere", &app.base).await?.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        token("General", "http://elsewhere.example").await?.status(),
        StatusCode::FORBIDDEN
    );
    Ok(())
}

#[tokio::test]
async fn the_development_sign_in_refuses_a_foreign_form() -> Result<()> {
    let app = spawn_app().await?;
    let res = app
        .client
        .post(app.url("/login"))
        .header(ORIGIN, "http://elsewhere.example")
        .form(&[("name", "Mallory")])
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    Ok(())
}
