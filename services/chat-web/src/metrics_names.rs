//! Names of the web service's Prometheus metrics, in one place.

/// Requests, by `method`, `route` and `status` class ([`crate::labels`]).
pub const HTTP_REQUESTS: &str = "chat_web_http_requests_total";
/// Sign-ins, by `outcome` (`success` or why not).
pub const LOGINS: &str = "chat_web_logins_total";
/// Room tokens minted.
pub const ROOM_TOKENS: &str = "chat_web_room_tokens_total";
/// Sessions ended by logout.
pub const LOGOUTS: &str = "chat_web_logouts_total";
/// Requests refused over a rate limit, by `budget` (`login`, `token`).
pub const RATE_LIMITED: &str = "chat_web_rate_limited_total";
