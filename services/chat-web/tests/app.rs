//! The web service started inside the test (`spawn_app`) on its own port,
//! with its own `redis-server`: what needs neither a browser nor an identity
//! provider, checked over HTTP. Signing in needs a provider and is tested
//! end to end in tests/web.

#[path = "../../../shared/chat-store/tests/topology/mod.rs"]
mod topology;

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use chat_core::token::TokenSigner;
use chat_settings::Env;
use chat_web::error::ApiErrorCode;
use chat_web::{App, Config};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use topology::Topology;

/// Where browsers reach the gateway in these tests (never contacted).
const GATEWAY: &str = "https://gw.example.test";

/// A running web service, its Redis and a client that follows no redirect.
struct TestApp {
    base: String,
    client: reqwest::Client,
    /// The key id of the signing key.
    kid: String,
    /// The service's Redis; `None` once stopped.
    redis: Option<Topology>,
}

impl TestApp {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Result<Response> {
        Ok(self.client.get(self.url(path)).send().await?)
    }

    /// `POST /api/rooms/{room}/token` with these headers and no cookie.
    async fn token(&self, room: &str, headers: &[(&str, &str)]) -> Result<Response> {
        let mut request = self
            .client
            .post(self.url(&format!("/api/rooms/{room}/token")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Ok(request.send().await?)
    }

    /// Kills the service's Redis.
    fn stop_redis(&mut self) {
        self.redis = None;
    }
}

/// A free loopback port, released for whoever binds it next.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes a fresh signing key where `JWT_PRIVATE_KEY_FILE` can name it.
fn key_file() -> Result<(std::path::PathBuf, String)> {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let (private, _public) = chat_core::keys::generate_pem_pair()?;
    let kid = TokenSigner::from_pkcs8_pem(&private)?.kid().to_owned();
    let path = std::env::temp_dir().join(format!(
        "chat-web-app-{}-{}.pem",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, private)?;
    Ok((path, kid))
}

/// Starts the web service on a free loopback port with its own Redis and
/// key; its identity provider is a closed port (discovery is lazy, so
/// nothing here reaches it but `/login`).
async fn spawn_app() -> Result<TestApp> {
    let redis = topology::start_single()?;
    // The public URL must name the port, so take one first.
    let addr = format!("127.0.0.1:{}", free_port()?);
    let base = format!("http://{addr}");
    let issuer = format!("http://127.0.0.1:{}/", free_port()?);
    let (key, kid) = key_file()?;
    let key_path = key.to_str().context("a UTF-8 temporary path")?;
    let static_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../static");
    let pairs = [
        ("WEB_ADDR", addr.as_str()),
        ("PUBLIC_URL", base.as_str()),
        ("GATEWAY_PUBLIC_URL", GATEWAY),
        ("OIDC_ISSUER", issuer.as_str()),
        ("OIDC_CLIENT_ID", "chat"),
        ("OIDC_CLIENT_SECRET", "not-used"),
        ("REDIS_URL", redis.url.as_str()),
        ("REDIS_COMMAND_TIMEOUT_MS", "500"),
        ("JWT_PRIVATE_KEY_FILE", key_path),
        ("STATIC_DIR", static_dir),
    ];
    let built = App::build(Config::read(&Env::from_pairs(&pairs))?).await;
    // The key is read at build: the file is not needed any more.
    let _ = std::fs::remove_file(&key);
    let app = built?;
    assert_eq!(app.local_addr()?.to_string(), addr);
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    Ok(TestApp {
        base,
        client,
        kid,
        redis: Some(redis),
    })
}

/// A header's value as text, empty when it is missing.
fn header<'a>(res: &'a Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The `error` of a JSON error answer.
async fn api_error(res: Response) -> Result<String> {
    let body: serde_json::Value = res.json().await?;
    Ok(body["error"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() -> Result<()> {
    let app = spawn_app().await?;
    let res = app.get("/healthz").await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await?, "ok\n");
    let res = app.get("/readyz").await?;
    assert_eq!(res.status(), StatusCode::OK, "ready with Redis up");
    let res = app.get("/metrics").await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(header(&res, CONTENT_TYPE.as_str()).starts_with("text/plain; version=0.0.4"));
    let text = res.text().await?;
    // The requests above were counted, by route template and status class.
    let healthz = format!(
        "{}{{method=\"GET\",route=\"/healthz\",status=\"2xx\"}}",
        chat_web::metrics_names::HTTP_REQUESTS
    );
    assert!(text.contains(&healthz), "{healthz} in:\n{text}");
    Ok(())
}

#[tokio::test]
async fn readiness_fails_while_redis_is_away_and_liveness_does_not() -> Result<()> {
    let mut app = spawn_app().await?;
    assert_eq!(app.get("/readyz").await?.status(), StatusCode::OK);
    app.stop_redis();
    let res = app.get("/readyz").await?;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.text().await?, "redis unavailable\n");
    assert_eq!(app.get("/healthz").await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn security_headers_are_on_every_kind_of_response() -> Result<()> {
    let app = spawn_app().await?;
    let paths = [
        "/",
        "/dashboard",
        "/chat/Nope",
        "/nowhere",
        "/static/app.css",
        "/healthz",
        "/readyz",
        "/metrics",
        "/.well-known/jwks.json",
        "/authorization-code/callback",
    ];
    for path in paths {
        let res = app.get(path).await?;
        let csp = header(&res, "content-security-policy");
        assert!(csp.contains("default-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self';"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(
            csp.contains(&format!(
                "connect-src 'self' {GATEWAY} wss://gw.example.test;"
            )),
            "{path}: the gateway, over https and wss: {csp}"
        );
        assert_eq!(header(&res, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&res, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&res, "referrer-policy"), "same-origin", "{path}");
        assert_eq!(
            header(&res, "cross-origin-opener-policy"),
            "same-origin",
            "{path}"
        );
        let cache = header(&res, CACHE_CONTROL.as_str());
        if path.starts_with("/static/") || path.starts_with("/.well-known/") {
            assert_eq!(cache, "public, max-age=300", "{path}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
    assert_eq!(app.get("/static/app.css").await?.status(), StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn the_jwks_publishes_the_signing_key() -> Result<()> {
    let app = spawn_app().await?;
    let res = app.get("/.well-known/jwks.json").await?;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE.as_str()), "application/json");
    let jwks: serde_json::Value = res.json().await?;
    let keys = jwks["keys"].as_array().context("a keys array")?;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], app.kid.as_str());
    assert_eq!(keys[0]["kty"], "OKP");
    assert_eq!(keys[0]["crv"], "Ed25519");
    assert!(keys[0].get("d").is_none(), "never the private half");
    Ok(())
}

#[tokio::test]
async fn the_token_endpoint_refuses_without_a_session() -> Result<()> {
    let app = spawn_app().await?;
    let res = app.token("General", &[("origin", &app.base)]).await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(&res, CACHE_CONTROL.as_str()), "no-store");
    assert_eq!(api_error(res).await?, ApiErrorCode::LoginRequired.as_str());
    Ok(())
}

#[tokio::test]
async fn the_token_endpoint_refuses_another_site_before_looking_at_the_session() -> Result<()> {
    let app = spawn_app().await?;
    let base = app.base.as_str();
    let refused: [&[(&str, &str)]; 4] = [
        &[("origin", "http://elsewhere.example")],
        &[("origin", "null")],
        &[],
        &[("origin", base), ("sec-fetch-site", "cross-site")],
    ];
    for headers in refused {
        let res = app.token("General", headers).await?;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        // The contract's code for a foreign or `null` `Origin`.
        assert_eq!(api_error(res).await?, "forbidden", "{headers:?}");
    }
    // The same request from this site gets past the origin check.
    let res = app
        .token(
            "General",
            &[("origin", base), ("sec-fetch-site", "same-origin")],
        )
        .await?;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    Ok(())
}

#[tokio::test]
async fn pages_that_need_a_user_send_the_browser_to_sign_in_and_back() -> Result<()> {
    let app = spawn_app().await?;
    for path in ["/dashboard", "/chat/Sports"] {
        let res = app.get(path).await?;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{path}");
        let location = url::Url::parse(&app.base)?.join(header(&res, LOCATION.as_str()))?;
        assert_eq!(location.path(), "/login", "{path}");
        let next = location
            .query_pairs()
            .find(|(k, _)| k == "next")
            .map(|(_, v)| v.into_owned());
        assert_eq!(next.as_deref(), Some(path));
    }
    // An unknown room is not found, signed in or not; names are case-sensitive.
    for path in ["/chat/Nope", "/chat/general"] {
        assert_eq!(
            app.get(path).await?.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_callback_without_a_login_in_progress_signs_nobody_in() -> Result<()> {
    let app = spawn_app().await?;
    let res = app
        .get("/authorization-code/callback?code=stolen&state=guessed")
        .await?;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let session_cookie = format!("{}=", chat_web::session::COOKIE_NAME);
    assert!(
        !res.headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.starts_with(&session_cookie) && !c.contains("Max-Age=0")),
        "no session is handed out"
    );
    assert!(res.text().await?.contains("Sign-in failed"));
    Ok(())
}

#[tokio::test]
async fn a_login_with_the_provider_away_is_a_clear_error_page() -> Result<()> {
    let app = spawn_app().await?;
    let res = app.get("/login?next=/dashboard").await?;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        res.headers().get(LOCATION).is_none(),
        "no redirect anywhere"
    );
    assert!(res.text().await?.contains("cannot be reached"));
    Ok(())
}
