//! Who is asking: the client address that rate limits are counted against.
//!
//! Without `TRUSTED_PROXIES` the client is the TCP peer and every forwarding
//! header is ignored, since anyone can send one. When the peer is one of the
//! trusted proxies, the client is the right-most address of
//! `X-Forwarded-For` that is not itself a trusted proxy: each proxy appends
//! the address it saw, so everything left of the last untrusted hop was
//! written by the client and proves nothing. `X-Real-IP` is never read (a
//! single value that a proxy chain cannot extend). The shipped nginx
//! (`$proxy_add_x_forwarded_for`) and Kubernetes ingress-nginx both append to
//! `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma- or space-separated list of addresses and networks
    /// (`10.0.0.0/8, 192.168.1.7, fd00::/8`); an empty list trusts nobody.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split([',', ' '])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                IpNet::from_str(s)
                    .or_else(|_| IpAddr::from_str(s).map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or a network such as 10.0.0.0/8"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client address of a request from `peer` carrying `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.contains(peer) {
            return peer;
        }
        // Every X-Forwarded-For line, in order, as one list of hops.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage that a trusted hop passed on: the last good hop is
                // as far as the chain can be believed.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, optionally with a port
/// (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    IpAddr::from_str(hop)
        .or_else(|_| SocketAddr::from_str(hop).map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The key a client's budget is kept under: its IPv4 address, or the /64 of
/// its IPv6 address (one host usually holds a whole /64, so counting single
/// IPv6 addresses would let it rotate through them).
pub fn budget_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn forwarded(lines: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", HeaderValue::from_static(line));
        }
        headers
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        let headers = forwarded(&["203.0.113.9"]);
        assert_eq!(none.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_proxy_forwards_the_right_most_untrusted_hop() {
        let trusted = TrustedProxies::parse("10.0.0.0/8, 192.168.0.5").expect("parse");
        let peer = ip("10.1.2.3");
        assert_eq!(
            trusted.client_ip(peer, &forwarded(&["203.0.113.9"])),
            ip("203.0.113.9")
        );
        // The client wrote the left part; the proxies appended the rest.
        assert_eq!(
            trusted.client_ip(
                peer,
                &forwarded(&["198.51.100.1, 203.0.113.9", "192.168.0.5"])
            ),
            ip("203.0.113.9")
        );
        assert_eq!(
            trusted.client_ip(peer, &forwarded(&["[2001:db8::1]:443", "10.9.9.9"])),
            ip("2001:db8::1")
        );
        // Nothing forwarded, or only garbage: the proxy itself.
        assert_eq!(trusted.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(trusted.client_ip(peer, &forwarded(&["unknown"])), peer);
        // An untrusted peer's header is ignored.
        assert_eq!(
            trusted.client_ip(ip("203.0.113.50"), &forwarded(&["198.51.100.1"])),
            ip("203.0.113.50")
        );
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let trusted = TrustedProxies::parse("127.0.0.1").expect("parse");
        assert!(trusted.contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("nginx").is_err());
        assert!(TrustedProxies::parse(" ").expect("empty").is_empty());
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        assert_eq!(
            budget_key(ip("2001:db8:1:2:aaaa::1")),
            budget_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            budget_key(ip("2001:db8:1:2::1")),
            budget_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(budget_key(ip("203.0.113.9")), ip("203.0.113.9"));
    }
}
