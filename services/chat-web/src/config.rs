//! The web service's settings: one typed struct, read once at start through
//! the shared reader (`chat_settings::Env`: the environment, and a `.env`
//! file if there is one, read by `main`), validated before anything listens.
//! A missing or bad value stops the process with one line that names the
//! variable.
//!
//! Redis, the signing key file and the identity provider are `Option`s: the
//! standalone service requires them ([`Config::read`]); the single-process
//! run keeps state and keys in memory and may sign in without a provider
//! ([`Config::read_optional_parts`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_core::RoomList;
use chat_core::claims::DEFAULT_TOKEN_TTL_S;
use chat_settings::{Env, RoomsSetting, SettingError, TokenSettings};
use chat_store::connection::RedisSettings;
use url::Url;

use crate::client_addr::TrustedProxies;

/// Everything `chat-web` needs to run.
#[derive(Clone)]
pub struct Config {
    /// `WEB_ADDR`: where to listen.
    pub addr: SocketAddr,
    /// `PUBLIC_URL`: the origin browsers use, without a trailing slash.
    pub public_url: Url,
    /// `OIDC_*`: the identity provider; `None` only in the single-process
    /// run with its development sign-in.
    pub oidc: Option<OidcSettings>,
    /// `REDIS_URL` and its timeouts; `None` only in the single-process run.
    pub redis: Option<RedisSettings>,
    /// `JWT_PRIVATE_KEY_FILE`: PKCS#8 PEM, one or more keys; the last signs.
    /// `None` only in the single-process run (a key pair made at start).
    pub jwt_private_key_file: Option<PathBuf>,
    /// `JWT_ISSUER`, `JWT_AUDIENCE`, `TOKEN_EXPIRY_GRACE_S`.
    pub token: TokenSettings,
    /// `ROOMS`.
    pub rooms: RoomList,
    /// `GATEWAY_PUBLIC_URL`: the origin browsers reach the gateway at.
    pub gateway_public_url: Url,
    /// `TOKEN_TTL_S`: room token lifetime.
    pub token_ttl: Duration,
    /// `SESSION_IDLE_S`: a session unused this long ends.
    pub session_idle: Duration,
    /// `SESSION_MAX_AGE_S`: a session ends this long after login, used or not.
    pub session_max_age: Duration,
    /// `STATIC_DIR`: where the browser assets are.
    pub static_dir: PathBuf,
    /// `OIDC_HTTP_TIMEOUT_S`: the longest one request waits on the identity
    /// provider (each call's connect and total timeout, and the budget of all
    /// the calls one request makes).
    pub oidc_http_timeout: Duration,
    /// `TRUSTED_PROXIES`: the proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: TrustedProxies,
    /// `LOGIN_RATE_PER_MINUTE`, `LOGIN_RATE_BURST`: per client address,
    /// sign-ins (callbacks of a login started in that browser).
    pub login_rate: Rate,
    /// `TOKEN_RATE_PER_MINUTE`, `TOKEN_RATE_BURST`: per client address, for
    /// the room token endpoint.
    pub token_rate: Rate,
    /// `HTTP_HEADER_TIMEOUT_S`: the longest a connection may take to send a
    /// whole request head (an idle keep-alive connection too).
    pub header_read_timeout: Duration,
    /// `WEB_MAX_CONNECTIONS`: open TCP connections at most; past it a new
    /// connection is closed as soon as it is accepted.
    pub max_connections: usize,
    /// `OIDC_GROUPS_CLAIM`: the ID token / userinfo claim that lists the
    /// user's groups.
    pub groups_claim: String,
    /// `ADMIN_GROUPS`: groups whose members act as owner in every public and
    /// private room.
    pub admin_groups: Vec<String>,
}

/// The identity provider: `OIDC_ISSUER` with its client.
#[derive(Clone)]
pub struct OidcSettings {
    /// `OIDC_ISSUER`: the identity provider's issuer URL.
    pub issuer: String,
    /// `OIDC_CLIENT_ID`.
    pub client_id: String,
    /// `OIDC_CLIENT_SECRET`.
    pub client_secret: String,
    /// `OIDC_SCOPES`: scopes asked for besides `openid`.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl OidcSettings {
    /// Reads `OIDC_ISSUER`, `OIDC_CLIENT_ID`, `OIDC_CLIENT_SECRET` and
    /// `OIDC_SCOPES`; `None` when `OIDC_ISSUER` is unset. With an issuer,
    /// the client id and secret are required.
    pub fn read(env: &Env<'_>) -> Result<Option<Self>, SettingError> {
        let Some(issuer) = env.get("OIDC_ISSUER") else {
            return Ok(None);
        };
        let issuer_url =
            Url::parse(&issuer).map_err(|e| SettingError::invalid("OIDC_ISSUER", e))?;
        if !matches!(issuer_url.scheme(), "https" | "http") {
            return Err(SettingError::invalid(
                "OIDC_ISSUER",
                "must be an http(s) URL",
            ));
        }
        Ok(Some(Self {
            issuer,
            client_id: env.required("OIDC_CLIENT_ID")?,
            client_secret: env.required("OIDC_CLIENT_SECRET")?,
            scopes: env
                .get("OIDC_SCOPES")
                .unwrap_or_else(|| "profile email".into())
                .split([' ', ','])
                .filter(|s| !s.is_empty() && *s != "openid")
                .map(str::to_owned)
                .collect(),
        }))
    }
}

/// A request budget: a burst, refilled at a steady rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests refilled per minute.
    pub per_minute: u32,
    /// Requests allowed at once.
    pub burst: u32,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("public_url", &self.public_url.as_str())
            .field("oidc", &self.oidc)
            .field("redis", &self.redis)
            .field("jwt_private_key_file", &self.jwt_private_key_file)
            .field("gateway_public_url", &self.gateway_public_url.as_str())
            .field("oidc_http_timeout", &self.oidc_http_timeout)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("login_rate", &self.login_rate)
            .field("token_rate", &self.token_rate)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

/// Per client address, requests in a minute and at once: 1..=1000000.
const RATE_RANGE: std::ops::RangeInclusive<u32> = 1..=1_000_000;

impl Config {
    /// Whether someone in `groups` is an administrator (`ADMIN_GROUPS`).
    pub fn is_admin(&self, groups: &[String]) -> bool {
        self.admin_groups.iter().any(|g| groups.contains(g))
    }

    /// The standalone service's settings: the identity provider, Redis and
    /// the signing key file are required.
    pub fn read(env: &Env<'_>) -> Result<Self, SettingError> {
        let config = Self::read_optional_parts(env)?;
        config.oidc()?;
        config.redis()?;
        config.jwt_private_key_file()?;
        Ok(config)
    }

    /// Every setting, the parts the single-process run may do without
    /// (identity provider, Redis, key file) left `None` when unset.
    pub fn read_optional_parts(env: &Env<'_>) -> Result<Self, SettingError> {
        let addr = env.parsed("WEB_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)))?;
        let public_url = env.parse_with(
            "PUBLIC_URL",
            || Url::parse("http://localhost:8080").expect("a valid default"),
            origin_url,
        )?;
        let oidc = OidcSettings::read(env)?;
        let redis = RedisSettings::read(env)?;
        let jwt_private_key_file = env.get("JWT_PRIVATE_KEY_FILE").map(PathBuf::from);
        let token = TokenSettings::read(env)?;
        let rooms = RoomsSetting::read(env)?;
        let gateway_public_url =
            env.parse_with("GATEWAY_PUBLIC_URL", || public_url.clone(), origin_url)?;
        Ok(Self {
            addr,
            public_url,
            oidc,
            redis,
            jwt_private_key_file,
            token,
            rooms,
            gateway_public_url,
            token_ttl: env.seconds("TOKEN_TTL_S", DEFAULT_TOKEN_TTL_S, 10..=3600)?,
            session_idle: env.seconds("SESSION_IDLE_S", 3600, 1..=30 * 86_400)?,
            session_max_age: env.seconds("SESSION_MAX_AGE_S", 12 * 3600, 1..=90 * 86_400)?,
            static_dir: PathBuf::from(env.get("STATIC_DIR").unwrap_or_else(|| "static".into())),
            oidc_http_timeout: env.seconds("OIDC_HTTP_TIMEOUT_S", 5, 1..=120)?,
            trusted_proxies: env.parse_with(
                "TRUSTED_PROXIES",
                TrustedProxies::default,
                TrustedProxies::parse,
            )?,
            // Coarse guards sized for an office behind one address.
            login_rate: Rate {
                per_minute: env.number("LOGIN_RATE_PER_MINUTE", 300, RATE_RANGE)?,
                burst: env.number("LOGIN_RATE_BURST", 300, RATE_RANGE)?,
            },
            token_rate: Rate {
                per_minute: env.number("TOKEN_RATE_PER_MINUTE", 1200, RATE_RANGE)?,
                burst: env.number("TOKEN_RATE_BURST", 600, RATE_RANGE)?,
            },
            header_read_timeout: env.seconds("HTTP_HEADER_TIMEOUT_S", 10, 1..=300)?,
            max_connections: env.number("WEB_MAX_CONNECTIONS", 4096, RATE_RANGE)? as usize,
            groups_claim: env
                .get("OIDC_GROUPS_CLAIM")
                .filter(|c| !c.trim().is_empty())
                .unwrap_or_else(|| "groups".into()),
            admin_groups: env
                .get("ADMIN_GROUPS")
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The identity provider, which the standalone service requires.
    pub fn oidc(&self) -> Result<&OidcSettings, SettingError> {
        self.oidc
            .as_ref()
            .ok_or(SettingError::Missing("OIDC_ISSUER"))
    }

    /// Redis, which the standalone service requires.
    pub fn redis(&self) -> Result<&RedisSettings, SettingError> {
        self.redis
            .as_ref()
            .ok_or(SettingError::Missing("REDIS_URL"))
    }

    /// The signing key file, which the standalone service requires.
    pub fn jwt_private_key_file(&self) -> Result<&PathBuf, SettingError> {
        self.jwt_private_key_file
            .as_ref()
            .ok_or(SettingError::Missing("JWT_PRIVATE_KEY_FILE"))
    }

    /// Where logout sends the browser: the provider (its end-session
    /// endpoint), or this service when there is none.
    pub fn logout_target(&self) -> &str {
        self.oidc
            .as_ref()
            .map_or(self.public_url.as_str(), |o| o.issuer.as_str())
    }

    /// `PUBLIC_URL` as an origin string, e.g. `https://chat.example.com`.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// The OIDC redirect URI registered at the provider.
    pub fn redirect_uri(&self) -> String {
        format!("{}/authorization-code/callback", self.public_origin())
    }

    /// Where the provider sends the browser after logout.
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/", self.public_origin())
    }

    /// Whether cookies must be `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// How long a logged-out session stays revoked: a token's whole life plus
    /// the gateway's expiry grace plus a margin, so no token it minted outlives it.
    pub fn revocation_ttl(&self) -> Duration {
        self.token_ttl
            + self.token.expiry_grace.max(Duration::from_secs(30))
            + Duration::from_secs(30)
    }
}

/// Parses an http(s) URL that must be a bare origin (a trailing `/` is fine).
fn origin_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be an origin such as https://chat.example.com (no path)".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn base() -> HashMap<&'static str, &'static str> {
        HashMap::from([
            ("OIDC_ISSUER", "https://dev-1.okta.com/oauth2/default"),
            ("OIDC_CLIENT_ID", "id"),
            ("OIDC_CLIENT_SECRET", "secret"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("JWT_PRIVATE_KEY_FILE", "/keys/web.pem"),
        ])
    }

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, SettingError> {
        Config::read(&Env::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())))
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = load(&base()).expect("config");
        assert_eq!(config.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(config.public_origin(), "http://localhost:8080");
        assert_eq!(
            config.redirect_uri(),
            "http://localhost:8080/authorization-code/callback"
        );
        assert_eq!(config.gateway_public_url, config.public_url);
        assert_eq!(config.token.issuer, "chat-web");
        assert_eq!(config.token.audience, "chat-gateway");
        assert_eq!(config.token.expiry_grace, Duration::from_secs(30));
        assert_eq!(config.token_ttl, Duration::from_secs(300));
        assert_eq!(config.oidc_http_timeout, Duration::from_secs(5));
        assert!(config.trusted_proxies.is_empty());
        assert!(config.revocation_ttl() >= config.token_ttl + Duration::from_secs(30));
        assert!(!config.secure_cookies());
        assert_eq!(config.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.max_connections, 4096);
        assert_eq!(
            config.login_rate,
            Rate {
                per_minute: 300,
                burst: 300
            }
        );
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for var in [
            "OIDC_ISSUER",
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET",
            "REDIS_URL",
            "JWT_PRIVATE_KEY_FILE",
        ] {
            let mut vars = base();
            vars.remove(var);
            let err = load(&vars).expect_err("refused");
            assert_eq!(err, SettingError::Missing(var));
            assert!(err.to_string().starts_with(var));
        }
    }

    #[test]
    fn the_optional_parts_may_be_left_out() {
        let config = Config::read_optional_parts(&Env::from_lookup(|_| None)).expect("config");
        assert!(config.oidc.is_none() && config.redis.is_none());
        assert!(config.jwt_private_key_file.is_none());
        assert_eq!(
            config.redis().map(|_| ()),
            Err(SettingError::Missing("REDIS_URL"))
        );
        assert_eq!(config.logout_target(), "http://localhost:8080/");
        let half = Env::from_lookup(|k| (k == "OIDC_ISSUER").then(|| "https://idp.example".into()));
        let err = Config::read_optional_parts(&half).expect_err("refused");
        assert_eq!(err, SettingError::Missing("OIDC_CLIENT_ID"));
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PUBLIC_URL", "https://chat.example.com/app"),
            ("PUBLIC_URL", "ftp://x"),
            ("GATEWAY_PUBLIC_URL", "not a url"),
            ("TOKEN_TTL_S", "five"),
            ("TOKEN_TTL_S", "999999"),
            ("TOKEN_EXPIRY_GRACE_S", "soon"),
            ("REDIS_URL", "not a url"),
            ("OIDC_ISSUER", "ftp://idp"),
            ("ROOMS", "a b"),
            ("WEB_ADDR", "nowhere"),
            ("OIDC_HTTP_TIMEOUT_S", "0"),
            ("OIDC_HTTP_TIMEOUT_S", "slow"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TRUSTED_PROXIES", "nginx"),
            ("LOGIN_RATE_BURST", "0"),
            ("TOKEN_RATE_PER_MINUTE", "-1"),
            ("HTTP_HEADER_TIMEOUT_S", "0"),
            ("WEB_MAX_CONNECTIONS", "0"),
            ("WEB_MAX_CONNECTIONS", "many"),
        ] {
            let mut vars = base();
            vars.insert(var, value);
            let err = load(&vars).expect_err("refused");
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }

    #[test]
    fn https_public_url_makes_cookies_secure() {
        let mut vars = base();
        vars.insert("PUBLIC_URL", "https://chat.example.com/");
        let config = load(&vars).expect("config");
        assert!(config.secure_cookies());
        assert_eq!(
            config.post_logout_redirect_uri(),
            "https://chat.example.com/"
        );
    }
}
