//! Verifying room tokens on the handshake and on `refresh`.
//!
//! Keys come only from configuration: an SPKI PEM file, or the web service's
//! JWKS. With a JWKS, a token signed by an unknown `kid` triggers one
//! re-fetch (at most one every [`JWKS_REFRESH_MIN_INTERVAL`]), so a key
//! rotation reaches the gateways without a restart; the JWKS is also fetched
//! on a schedule (`JWKS_REFRESH_S`), so a key removed from it stops being
//! trusted.

use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use chat_core::RoomClaims;
use chat_core::keys;
use chat_core::token::{TokenVerifier, VerifyError};
use thiserror::Error;

use crate::config::KeySource;

/// The least time between two JWKS fetches caused by unknown keys.
pub(crate) const JWKS_REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(10);

/// The verification keys could not be loaded.
#[derive(Debug, Error)]
pub enum KeysError {
    /// The PEM file could not be read or parsed.
    #[error("JWT_PUBLIC_KEY_FILE {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The JWKS could not be fetched or parsed.
    #[error("JWKS_URL {url}: {reason}")]
    Jwks {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// The keys a replica verifies room tokens with.
pub struct TokenKeys {
    verifier: RwLock<TokenVerifier>,
    jwks_url: Option<String>,
    issuer: String,
    audience: String,
    http: reqwest::Client,
    last_fetch: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("jwks_url", &self.jwks_url)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Loads the keys. A JWKS that cannot be fetched yet is retried on demand.
    pub async fn load(source: &KeySource, issuer: &str, audience: &str) -> Result<Self, KeysError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(3))
            .build()
            .map_err(|e| KeysError::Jwks {
                url: String::new(),
                reason: e.to_string(),
            })?;
        let (verifier, jwks_url) = match source {
            KeySource::PemFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| KeysError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                let verifier =
                    TokenVerifier::from_spki_pem(&text, issuer, audience).map_err(|e| {
                        KeysError::File {
                            path: path.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                (verifier, None)
            }
            KeySource::JwksUrl(url) => {
                (TokenVerifier::new([], issuer, audience), Some(url.clone()))
            }
        };
        let keys = Self {
            verifier: RwLock::new(verifier),
            jwks_url,
            issuer: issuer.into(),
            audience: audience.into(),
            http,
            last_fetch: Mutex::new(None),
        };
        if keys.jwks_url.is_some()
            && let Err(e) = keys.fetch().await
        {
            tracing::warn!(error = %e, "JWKS not reachable yet; will retry when a token arrives");
        }
        Ok(keys)
    }

    /// Keys fixed in code, for a process that mints its own tokens (the
    /// single-process mode).
    pub fn fixed(verifier: TokenVerifier) -> Self {
        Self {
            verifier: RwLock::new(verifier),
            jwks_url: None,
            issuer: String::new(),
            audience: String::new(),
            http: reqwest::Client::new(),
            last_fetch: Mutex::new(None),
        }
    }

    /// Whether the keys come from a JWKS (and so can be refreshed).
    pub fn from_jwks(&self) -> bool {
        self.jwks_url.is_some()
    }

    /// Fetches the JWKS again and trusts exactly the keys it lists now. On
    /// failure the keys in use stay.
    pub async fn refresh(&self) -> Result<(), KeysError> {
        self.fetch().await
    }

    async fn fetch(&self) -> Result<(), KeysError> {
        let Some(url) = &self.jwks_url else {
            return Ok(());
        };
        let err = |reason: String| KeysError::Jwks {
            url: url.clone(),
            reason,
        };
        let body = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| err(e.to_string()))?
            .bytes()
            .await
            .map_err(|e| err(e.to_string()))?;
        let jwks = keys::read_jwks(&body).map_err(|e| err(e.to_string()))?;
        let verifier = TokenVerifier::from_jwks(&jwks, &self.issuer, &self.audience);
        tracing::info!(
            keys = verifier.key_count(),
            "loaded room-token keys from JWKS"
        );
        *self.verifier.write().unwrap_or_else(|e| e.into_inner()) = verifier;
        Ok(())
    }

    /// Whether a fetch is allowed now (and records it).
    fn may_fetch(&self) -> bool {
        let mut last = self.last_fetch.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < JWKS_REFRESH_MIN_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    fn verify_now(&self, token: &str, now: u64) -> Result<RoomClaims, VerifyError> {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify(token, now)
    }

    /// Verifies a room token, re-fetching the JWKS once for an unknown key.
    pub async fn verify(&self, token: &str, now: u64) -> Result<RoomClaims, VerifyError> {
        match self.verify_now(token, now) {
            Err(VerifyError::UnknownKey(kid)) if self.jwks_url.is_some() && self.may_fetch() => {
                if let Err(e) = self.fetch().await {
                    tracing::warn!(error = %e, "JWKS refresh failed");
                    return Err(VerifyError::UnknownKey(kid));
                }
                self.verify_now(token, now)
            }
            other => other,
        }
    }
}

/// Seconds since the epoch.
pub(crate) fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
