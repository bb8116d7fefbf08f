//! The login in progress, kept in the browser rather than on the server.
//!
//! `/login` must remember `state`, `nonce`, the PKCE verifier, `next` and
//! the start time until the provider sends the browser back. Kept in a
//! Redis session, that costs a key per request to anyone who repeats
//! `/login`, which only a per-address lock-out could bound, and a lock-out
//! per address is a lock-out of a whole office behind one NAT address. So
//! the [`PendingLogin`] travels in a cookie of its own instead, and a
//! flood of `/login` writes nothing anywhere:
//!
//! - **encrypted and authenticated** with AES-256-GCM under a key only
//!   chat-web has (derived from the room-token signing key,
//!   [`chat_core::token::TokenSigner::derive_secret`], so every replica
//!   opens what another sealed); each cookie is sealed under its own key,
//!   derived with HKDF from that key and 16 random bytes carried in the
//!   cookie, so no (key, nonce) pair is ever used twice; the cookie's name
//!   is the associated data;
//! - **bound to the browser**: only the browser that started the login
//!   holds the cookie, and the callback's `state` must equal the one sealed
//!   in it (compared in constant time);
//! - `HttpOnly`, `SameSite=Lax` (it must come back on the provider's
//!   redirect, a top-level cross-site navigation), `Path=/` (both `/login`
//!   and the callback see it), `Max-Age` = [`LOGIN_MAX_AGE_S`] (which the
//!   callback enforces again from the sealed start time), and with an https
//!   `PUBLIC_URL` `Secure` and a name starting `__Host-`, which browsers
//!   accept only from this very origin (no sibling subdomain can plant one).
//!
//! **Several logins at once.** Each login has its own cookie, named after a
//! hash of its `state`, so logins started in several tabs each complete,
//! in any order (each sign-in cycles the session id again; the last one is
//! the session the browser keeps). A browser carries at most
//! [`MAX_PENDING_LOGINS`]: the next `/login` drops the oldest (or any it
//! cannot open). A callback consumes its own cookie, whatever the outcome;
//! a callback whose `state` names none of the browser's logins (a forged or
//! injected answer) drops them all.

use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::{digest, hkdf};
use subtle::ConstantTimeEq as _;
use thiserror::Error;
use tower_sessions::cookie::{Cookie, SameSite};

use crate::oidc::{LOGIN_MAX_AGE_S, LoginError, PendingLogin};

/// Every pending-login cookie's name starts so; the rest names its `state`.
pub const COOKIE_PREFIX: &str = "chat_login_";
/// The same, when cookies are `Secure` (https `PUBLIC_URL`).
pub const SECURE_COOKIE_PREFIX: &str = "__Host-chat_login_";
/// How many logins one browser may have in progress at once.
pub const MAX_PENDING_LOGINS: usize = 4;
/// What the cookie key is derived for, from the signing key.
pub const KEY_PURPOSE: &str = "chat-web: pending-login cookies v1";

/// Random bytes at the head of each cookie, from which its own key is derived.
const SALT_LEN: usize = 16;
/// At most this many of a request's pending-login cookies are looked at
/// (a request stuffed with made-up ones costs no more than this).
const CARRIED_MAX: usize = 2 * MAX_PENDING_LOGINS;

/// Why a pending login could not be put in a cookie.
#[derive(Debug, Error)]
pub enum LoginCookieError {
    /// The pending login could not be encoded or sealed.
    #[error("could not seal the pending login")]
    Seal,
    /// The cookie is not a valid header value.
    #[error("could not write the pending login cookie")]
    Header,
}

/// Seals pending logins into cookies and opens them again.
pub struct LoginCookies {
    key: hkdf::Prk,
    secure: bool,
}

impl std::fmt::Debug for LoginCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginCookies")
            .field("secure", &self.secure)
            .finish_non_exhaustive()
    }
}

impl LoginCookies {
    /// Cookies sealed under `key` (32 secret bytes), `Secure` when `secure`.
    pub fn new(key: &[u8; 32], secure: bool) -> Self {
        Self {
            key: hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, key),
            secure,
        }
    }

    /// The `Set-Cookie` values that start `pending`: its own cookie and,
    /// when `request` already carries [`MAX_PENDING_LOGINS`], the removal of
    /// the oldest (unreadable and expired ones first).
    pub fn remember(
        &self,
        pending: &PendingLogin,
        request: &HeaderMap,
        now: u64,
    ) -> Result<Vec<HeaderValue>, LoginCookieError> {
        let mut carried: Vec<(String, u64)> = self
            .carried(request)
            .map(|(name, value)| {
                let started = self
                    .open(&name, &value)
                    .map(|p| p.started_at)
                    .filter(|at| at.saturating_add(LOGIN_MAX_AGE_S) > now)
                    .unwrap_or(0);
                (name, started)
            })
            .collect();
        carried.sort_by_key(|(_, started)| *started);
        let excess = carried.len().saturating_sub(MAX_PENDING_LOGINS - 1);
        let mut headers: Vec<HeaderValue> = carried
            .iter()
            .take(excess)
            .map(|(name, _)| self.removal(name))
            .collect::<Result<_, _>>()?;
        let name = self.cookie_name(&pending.state);
        let value = self.seal(&name, pending)?;
        let cookie = self
            .cookie(name, value)
            .max_age(time::Duration::seconds(LOGIN_MAX_AGE_S as i64))
            .build();
        headers.push(header_value(&cookie)?);
        Ok(headers)
    }

    /// The pending login that `state` names, if `request` carries it intact
    /// and its sealed `state` is `state` (compared in constant time). Without
    /// any pending login the error is [`LoginError::NoPendingLogin`]; with
    /// others only, [`LoginError::StateMismatch`].
    pub fn find(&self, request: &HeaderMap, state: &str) -> Result<PendingLogin, LoginError> {
        let wanted = self.cookie_name(state);
        let mut carries_any = false;
        for (name, value) in self.carried(request) {
            carries_any = true;
            if name != wanted {
                continue;
            }
            // Tampered with, or sealed under a key since replaced.
            let pending = self.open(&name, &value).ok_or(LoginError::NoPendingLogin)?;
            if !bool::from(pending.state.as_bytes().ct_eq(state.as_bytes())) {
                return Err(LoginError::StateMismatch);
            }
            return Ok(pending);
        }
        Err(if carries_any {
            LoginError::StateMismatch
        } else {
            LoginError::NoPendingLogin
        })
    }

    /// The `Set-Cookie` value that removes the login `state` names.
    pub fn forget(&self, state: &str) -> Result<HeaderValue, LoginCookieError> {
        self.removal(&self.cookie_name(state))
    }

    /// The `Set-Cookie` values that remove every pending login `request` carries.
    pub fn forget_all(&self, request: &HeaderMap) -> Result<Vec<HeaderValue>, LoginCookieError> {
        self.carried(request)
            .map(|(name, _)| self.removal(&name))
            .collect()
    }

    /// The cookie of the login whose `state` this is: the prefix and 16 hex
    /// digits of the state's SHA-256.
    pub fn cookie_name(&self, state: &str) -> String {
        let hash = digest::digest(&digest::SHA256, state.as_bytes());
        let mut name = self.prefix().to_owned();
        for byte in &hash.as_ref()[..8] {
            name.push_str(&format!("{byte:02x}"));
        }
        name
    }

    fn prefix(&self) -> &'static str {
        if self.secure {
            SECURE_COOKIE_PREFIX
        } else {
            COOKIE_PREFIX
        }
    }

    /// The pending-login cookies `request` carries (at most [`CARRIED_MAX`]),
    /// as (name, value).
    fn carried<'a>(&self, request: &'a HeaderMap) -> impl Iterator<Item = (String, String)> + 'a {
        let prefix = self.prefix();
        request
            .get_all(COOKIE)
            .iter()
            .filter_map(|line| line.to_str().ok())
            .flat_map(Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(move |c| c.name().starts_with(prefix))
            .map(|c| (c.name().to_owned(), c.value().to_owned()))
            .take(CARRIED_MAX)
    }

    fn cookie(
        &self,
        name: String,
        value: String,
    ) -> tower_sessions::cookie::CookieBuilder<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
    }

    fn removal(&self, name: &str) -> Result<HeaderValue, LoginCookieError> {
        let mut cookie = self.cookie(name.to_owned(), String::new()).build();
        cookie.make_removal();
        header_value(&cookie)
    }

    /// The key that seals the one cookie whose random head is `salt`.
    fn cookie_key(&self, salt: &[u8]) -> Option<LessSafeKey> {
        let info = [salt];
        let okm = self.key.expand(&info, &AES_256_GCM).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }

    fn seal(&self, name: &str, pending: &PendingLogin) -> Result<String, LoginCookieError> {
        let mut salt = [0u8; SALT_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut salt);
        let key = self.cookie_key(&salt).ok_or(LoginCookieError::Seal)?;
        let mut sealed = serde_json::to_vec(pending).map_err(|_| LoginCookieError::Seal)?;
        // A key of its own for each cookie: the all-zero nonce is used once per key.
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
            Aad::from(name.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| LoginCookieError::Seal)?;
        let mut value = salt.to_vec();
        value.append(&mut sealed);
        Ok(URL_SAFE_NO_PAD.encode(value))
    }

    fn open(&self, name: &str, value: &str) -> Option<PendingLogin> {
        let mut bytes = URL_SAFE_NO_PAD.decode(value).ok()?;
        if bytes.len() <= SALT_LEN {
            return None;
        }
        let mut sealed = bytes.split_off(SALT_LEN);
        let key = self.cookie_key(&bytes)?;
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key([0u8; NONCE_LEN]),
                Aad::from(name.as_bytes()),
                &mut sealed,
            )
            .ok()?;
        serde_json::from_slice(plain).ok()
    }
}

fn header_value(cookie: &Cookie<'_>) -> Result<HeaderValue, LoginCookieError> {
    HeaderValue::from_str(&cookie.to_string()).map_err(|_| LoginCookieError::Header)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn pending(state: &str, started_at: u64) -> PendingLogin {
        PendingLogin {
            state: state.into(),
            nonce: "n".into(),
            pkce_verifier: "v".repeat(43),
            next: "/chat/General".into(),
            started_at,
        }
    }

    /// The request a browser sends back with the cookies of `set` (name=value only).
    fn request_with(set: &[HeaderValue]) -> HeaderMap {
        let pairs: Vec<String> = set
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next().map(str::to_owned))
            .filter(|pair| !pair.ends_with('='))
            .collect();
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&pairs.join("; ")) {
            headers.insert(COOKIE, value);
        }
        headers
    }

    fn cookies() -> LoginCookies {
        LoginCookies::new(&[7u8; 32], true)
    }

    #[test]
    fn a_sealed_login_opens_for_its_own_state_only() -> Result<(), LoginCookieError> {
        let jar = cookies();
        let set = jar.remember(&pending("s1", NOW), &HeaderMap::new(), NOW)?;
        assert_eq!(set.len(), 1);
        let line = set[0].to_str().unwrap_or_default();
        for attribute in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=600",
        ] {
            assert!(line.contains(attribute), "{attribute} in {line}");
        }
        assert!(line.starts_with(SECURE_COOKIE_PREFIX), "{line}");
        assert!(
            !line.contains("/chat/General"),
            "the content is not readable: {line}"
        );
        let request = request_with(&set);
        let found = jar.find(&request, "s1").expect("found");
        assert_eq!(found.next, "/chat/General");
        assert!(matches!(
            jar.find(&request, "s2"),
            Err(LoginError::StateMismatch)
        ));
        assert!(matches!(
            jar.find(&HeaderMap::new(), "s1"),
            Err(LoginError::NoPendingLogin)
        ));
        Ok(())
    }

    #[test]
    fn over_plain_http_the_cookie_is_neither_secure_nor_host_prefixed()
    -> Result<(), LoginCookieError> {
        let jar = LoginCookies::new(&[7u8; 32], false);
        let set = jar.remember(&pending("s1", NOW), &HeaderMap::new(), NOW)?;
        let line = set[0].to_str().unwrap_or_default();
        assert!(line.starts_with(COOKIE_PREFIX), "{line}");
        assert!(!line.contains("Secure"), "{line}");
        assert!(jar.find(&request_with(&set), "s1").is_ok());
        Ok(())
    }

    #[test]
    fn another_key_or_a_changed_byte_opens_nothing() -> Result<(), LoginCookieError> {
        let set = cookies().remember(&pending("s1", NOW), &HeaderMap::new(), NOW)?;
        let request = request_with(&set);
        let other = LoginCookies::new(&[8u8; 32], true);
        assert!(matches!(
            other.find(&request, "s1"),
            Err(LoginError::NoPendingLogin)
        ));
        let text = request
            .get(COOKIE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let (name, value) = text.split_once('=').unwrap_or_default();
        let flipped = if value.ends_with('A') { 'B' } else { 'A' };
        let tampered = format!("{name}={}{flipped}", &value[..value.len() - 1]);
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_str(&tampered).map_err(|_| LoginCookieError::Header)?,
        );
        assert!(matches!(
            cookies().find(&headers, "s1"),
            Err(LoginError::NoPendingLogin)
        ));
        Ok(())
    }

    #[test]
    fn parallel_logins_each_open_and_the_oldest_goes_past_the_limit() -> Result<(), LoginCookieError>
    {
        let jar = cookies();
        let mut all = Vec::new();
        for i in 0..MAX_PENDING_LOGINS as u64 {
            let set = jar.remember(
                &pending(&format!("s{i}"), NOW + i),
                &request_with(&all),
                NOW,
            )?;
            assert_eq!(set.len(), 1, "no removal below the limit");
            all.extend(set);
        }
        let request = request_with(&all);
        for i in 0..MAX_PENDING_LOGINS {
            assert!(jar.find(&request, &format!("s{i}")).is_ok(), "login {i}");
        }
        let set = jar.remember(&pending("newest", NOW + 100), &request, NOW + 100)?;
        assert_eq!(set.len(), 2, "one removal and the new cookie");
        let removed = set[0].to_str().unwrap_or_default();
        assert!(
            removed.starts_with(&format!("{}=;", jar.cookie_name("s0"))),
            "{removed}"
        );
        assert!(removed.contains("Max-Age=0"), "{removed}");
        assert_eq!(jar.forget_all(&request)?.len(), MAX_PENDING_LOGINS);
        Ok(())
    }
}
