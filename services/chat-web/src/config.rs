//! The web service's settings: one typed struct, read once at start from the
//! environment (and a `.env` file if there is one), validated before anything
//! listens. A missing or bad value stops the process with one line that names
//! the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chat_core::RoomList;
use chat_core::claims::{DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_TOKEN_TTL_S};
use thiserror::Error;
use url::Url;

use crate::client_addr::TrustedProxies;

/// A setting that is missing or unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("{0} is required but not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("{var} is invalid: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(var: &'static str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.to_string(),
    }
}

/// Everything `chat-web` needs to run.
#[derive(Clone)]
pub struct Config {
    /// `WEB_ADDR`: where to listen.
    pub addr: SocketAddr,
    /// `PUBLIC_URL`: the origin browsers use, without a trailing slash.
    pub public_url: Url,
    /// `OIDC_ISSUER`: the identity provider's issuer URL.
    pub oidc_issuer: String,
    /// `OIDC_CLIENT_ID`.
    pub oidc_client_id: String,
    /// `OIDC_CLIENT_SECRET`.
    pub oidc_client_secret: String,
    /// `OIDC_SCOPES`: scopes asked for besides `openid`.
    pub oidc_scopes: Vec<String>,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// `JWT_PRIVATE_KEY_FILE`: PKCS#8 PEM, one or more keys; the last signs.
    pub jwt_private_key_file: PathBuf,
    /// `JWT_ISSUER`.
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`.
    pub jwt_audience: String,
    /// `ROOMS`.
    pub rooms: RoomList,
    /// `GATEWAY_PUBLIC_URL`: the origin browsers reach the gateway at.
    pub gateway_public_url: Url,
    /// `TOKEN_TTL_S`: room token lifetime.
    pub token_ttl: Duration,
    /// `TOKEN_EXPIRY_GRACE_S`: how long gateways let a connection outlive its token.
    pub token_expiry_grace: Duration,
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
            .field("oidc_issuer", &self.oidc_issuer)
            .field("oidc_client_id", &self.oidc_client_id)
            .field(
                "redis_url",
                &chat_store::connection::redact(&self.redis_url),
            )
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

impl Config {
    /// Reads `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env file is normal; a malformed one is worth a word.
        if let Err(e) = dotenvy::dotenv()
            && !e.not_found()
        {
            return Err(invalid(".env", e));
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the settings from `lookup` (a variable name → its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let seconds = |name: &'static str,
                       default: u64,
                       min: u64,
                       max: u64|
         -> Result<Duration, ConfigError> {
            match get(name) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => {
                    let n: u64 = v
                        .parse()
                        .map_err(|_| invalid(name, format!("{v:?} is not a number of seconds")))?;
                    if n < min || n > max {
                        return Err(invalid(name, format!("{n} is outside {min}..={max}")));
                    }
                    Ok(Duration::from_secs(n))
                }
            }
        };

        let count = |name: &'static str, default: u32| -> Result<u32, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.parse::<u32>() {
                    Ok(n) if (1..=1_000_000).contains(&n) => Ok(n),
                    _ => Err(invalid(
                        name,
                        format!("{v:?} is not a whole number in 1..=1000000"),
                    )),
                },
            }
        };

        let addr = get("WEB_ADDR")
            .unwrap_or_else(|| "0.0.0.0:8080".into())
            .parse()
            .map_err(|e| invalid("WEB_ADDR", e))?;
        let public_url = origin_url(
            "PUBLIC_URL",
            &get("PUBLIC_URL").unwrap_or_else(|| "http://localhost:8080".into()),
        )?;
        let oidc_issuer = required("OIDC_ISSUER")?;
        let issuer_url = Url::parse(&oidc_issuer).map_err(|e| invalid("OIDC_ISSUER", e))?;
        if !matches!(issuer_url.scheme(), "https" | "http") {
            return Err(invalid("OIDC_ISSUER", "must be an http(s) URL"));
        }
        let oidc_client_id = required("OIDC_CLIENT_ID")?;
        let oidc_client_secret = required("OIDC_CLIENT_SECRET")?;
        let oidc_scopes = get("OIDC_SCOPES")
            .unwrap_or_else(|| "profile email".into())
            .split([' ', ','])
            .filter(|s| !s.is_empty() && *s != "openid")
            .map(str::to_owned)
            .collect();
        let redis_url = required("REDIS_URL")?;
        let jwt_private_key_file = PathBuf::from(required("JWT_PRIVATE_KEY_FILE")?);
        let rooms = RoomList::parse(&get("ROOMS").unwrap_or_else(|| RoomList::DEFAULT.into()))
            .map_err(|e| invalid("ROOMS", e))?;
        let gateway_public_url = match get("GATEWAY_PUBLIC_URL") {
            Some(v) => origin_url("GATEWAY_PUBLIC_URL", &v)?,
            None => public_url.clone(),
        };
        Ok(Self {
            addr,
            public_url,
            oidc_issuer,
            oidc_client_id,
            oidc_client_secret,
            oidc_scopes,
            redis_url,
            jwt_private_key_file,
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.into()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            rooms,
            gateway_public_url,
            token_ttl: seconds("TOKEN_TTL_S", DEFAULT_TOKEN_TTL_S, 10, 3600)?,
            token_expiry_grace: seconds("TOKEN_EXPIRY_GRACE_S", 30, 0, 3600)?,
            session_idle: seconds("SESSION_IDLE_S", 3600, 1, 30 * 86_400)?,
            session_max_age: seconds("SESSION_MAX_AGE_S", 12 * 3600, 1, 90 * 86_400)?,
            static_dir: PathBuf::from(get("STATIC_DIR").unwrap_or_else(|| "static".into())),
            oidc_http_timeout: seconds("OIDC_HTTP_TIMEOUT_S", 5, 1, 120)?,
            trusted_proxies: TrustedProxies::parse(&get("TRUSTED_PROXIES").unwrap_or_default())
                .map_err(|e| invalid("TRUSTED_PROXIES", e))?,
            // Coarse guards sized for an office behind one address.
            login_rate: Rate {
                per_minute: count("LOGIN_RATE_PER_MINUTE", 300)?,
                burst: count("LOGIN_RATE_BURST", 300)?,
            },
            token_rate: Rate {
                per_minute: count("TOKEN_RATE_PER_MINUTE", 1200)?,
                burst: count("TOKEN_RATE_BURST", 600)?,
            },
            header_read_timeout: seconds("HTTP_HEADER_TIMEOUT_S", 10, 1, 300)?,
            max_connections: count("WEB_MAX_CONNECTIONS", 4096)? as usize,
        })
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
            + self.token_expiry_grace.max(Duration::from_secs(30))
            + Duration::from_secs(30)
    }
}

/// Parses an http(s) URL that must be a bare origin (a trailing `/` is fine).
fn origin_url(var: &'static str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|e| invalid(var, e))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(var, "must be an http(s) URL"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            var,
            "must be an origin such as https://chat.example.com (no path)",
        ));
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

    fn load(vars: &HashMap<&'static str, &'static str>) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned()))
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
        assert_eq!(config.jwt_issuer, "chat-web");
        assert_eq!(config.jwt_audience, "chat-gateway");
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
            assert_eq!(err, ConfigError::Missing(var));
            assert!(err.to_string().starts_with(var));
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PUBLIC_URL", "https://chat.example.com/app"),
            ("PUBLIC_URL", "ftp://x"),
            ("GATEWAY_PUBLIC_URL", "not a url"),
            ("TOKEN_TTL_S", "five"),
            ("TOKEN_TTL_S", "999999"),
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
