//! Per-client budgets on what anyone can make the service spend: a sign-in
//! (the OIDC callback of a login started in that browser: a code exchange
//! at the identity provider, a Redis session) has the login budget, and
//! `POST /api/rooms/{room}/token` (a session read, a signature) the token
//! budget. `/login` has none: it writes nothing and calls nobody
//! ([`crate::login_cookie`]), so flooding it locks nobody out.
//!
//! Budgets are `governor` token buckets keyed by client address (see
//! [`crate::client_addr`] for which address that is behind a proxy). Many
//! people share one address behind an office's NAT, so they are coarse
//! guards sized for that (hundreds a minute), not per-person limits. A
//! request past its budget is refused before it touches the session store
//! or the provider: 429 with `Retry-After`, as the plain error page or, for
//! the token endpoint, `{ "error": "rate_limited" }`. Buckets are counted per
//! process; addresses whose bucket is full again are forgotten once a minute,
//! so the limiter's memory follows the number of recently active clients.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_addr::{TrustedProxies, budget_key};
use crate::config::{Config, Rate};
use crate::error::{ApiError, AppError};
use crate::metrics_names;

/// How often addresses with a full bucket are dropped from a budget.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Every budget of the service, and how to tell clients apart.
#[derive(Debug)]
pub struct RateLimits {
    login: Budget,
    token: Budget,
    trusted: TrustedProxies,
}

impl RateLimits {
    /// The budgets configured in `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            login: Budget::new("login", config.login_rate),
            token: Budget::new("token", config.token_rate),
            trusted: config.trusted_proxies.clone(),
        }
    }

    /// The address a request with these parts is counted against.
    fn client_of(&self, extensions: &Extensions, headers: &HeaderMap) -> IpAddr {
        // A router served without connect info (the single-process mode)
        // has no peer address: all its clients share one budget.
        let peer = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        self.trusted.client_ip(peer, headers)
    }

    /// Spends one sign-in of `client`'s login budget, or refuses with 429.
    pub fn spend_sign_in(&self, client: Client) -> Result<(), AppError> {
        self.login
            .spend(client.0)
            .map_err(|wait| AppError::RateLimited {
                retry_after_s: refused(&self.login, client.0, wait),
            })
    }
}

/// The address a request is counted against: the TCP peer, or the client a
/// trusted proxy forwards ([`crate::client_addr`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

impl<S> FromRequestParts<S> for Client
where
    S: Send + Sync,
    Arc<RateLimits>: FromRef<S>,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let limits = Arc::<RateLimits>::from_ref(state);
        Ok(Self(limits.client_of(&parts.extensions, &parts.headers)))
    }
}

/// One token bucket per client address.
struct Budget {
    name: &'static str,
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    last_sweep: Mutex<Instant>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("name", &self.name)
            .field("clients", &self.limiter.len())
            .finish()
    }
}

impl Budget {
    fn new(name: &'static str, rate: Rate) -> Self {
        let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(nonzero(rate.per_minute)).allow_burst(nonzero(rate.burst));
        Self {
            name,
            limiter: RateLimiter::keyed(quota),
            last_sweep: Mutex::new(Instant::now()),
        }
    }

    /// Spends one request of `client`'s budget, or says how long until the
    /// next one is allowed.
    fn spend(&self, client: IpAddr) -> Result<(), Duration> {
        self.sweep_now_and_then();
        self.limiter
            .check_key(&budget_key(client))
            .map_err(|refused| refused.wait_time_from(DefaultClock::default().now()))
    }

    fn sweep_now_and_then(&self) {
        let mut last = self.last_sweep.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= SWEEP_EVERY {
            *last = Instant::now();
            drop(last);
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
    }
}

/// `Retry-After` in whole seconds, at least 1.
fn retry_after_seconds(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

fn refused(budget: &Budget, client: IpAddr, wait: Duration) -> u64 {
    metrics::counter!(metrics_names::RATE_LIMITED, "budget" => budget.name).increment(1);
    // Debug only: a flood must not become a log flood.
    tracing::debug!(budget = budget.name, %client, "request over its rate limit refused");
    retry_after_seconds(wait)
}

/// Middleware for the room token endpoint: the token budget, refused with
/// `{ "error": "rate_limited" }`.
pub async fn limit_tokens(
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let client = limits.client_of(request.extensions(), request.headers());
    match limits.token.spend(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::rate_limited(refused(&limits.token, client, wait)).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_refuses_past_its_burst_per_client() {
        let budget = Budget::new(
            "test",
            Rate {
                per_minute: 1,
                burst: 2,
            },
        );
        let (a, b) = (
            IpAddr::from([203, 0, 113, 1]),
            IpAddr::from([203, 0, 113, 2]),
        );
        assert!(budget.spend(a).is_ok());
        assert!(budget.spend(a).is_ok());
        let wait = budget.spend(a).expect_err("over the burst");
        assert!(wait <= Duration::from_secs(60), "{wait:?}");
        assert!(budget.spend(b).is_ok(), "another client has its own budget");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_seconds(Duration::from_millis(10)), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_seconds(Duration::from_secs(60)), 60);
    }
}
