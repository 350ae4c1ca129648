//! The shopper's address as the card-testing defence counts it: the TCP peer, or — only when
//! the peer is a configured trusted proxy (`KAKEHASHI_TRUSTED_PROXIES`) — the nearest address
//! in `Forwarded` / `X-Forwarded-For` that is not itself a trusted proxy. Headers from any other
//! peer are ignored: a client could write anything there.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// One CIDR block (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }
}

impl Cidr {
    /// Whether `ip` lies in this block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// Parses a comma- or space-separated list of CIDR blocks.
pub fn parse_list(s: &str) -> Result<Vec<Cidr>, String> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(Cidr::from_str)
        .collect()
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Whether `ip` is one of the configured trusted proxies (its headers may be believed).
pub fn trusted(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// One address from a `Forwarded` `for=` value or an `X-Forwarded-For` entry: quotes, an IPv6
/// bracket and a port are dropped; obfuscated identifiers (`_hidden`, `unknown`) give `None`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.parse::<SocketAddr>().ok().map(|a| a.ip())
}

/// The hops the proxies recorded, nearest the client first. `Forwarded` (RFC 7239) wins over
/// `X-Forwarded-For` when both are present. An unparsable hop is kept as `None`.
fn hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|el| {
                el.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| parse_hop(v))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(parse_hop)
        .collect()
}

/// The client address: walks from the peer back through trusted proxies and stops at the first
/// address that is not one. A proxy's own address is never the answer unless no header names
/// anyone else (then the peer itself is all we know).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted(trusted_proxies, peer) {
        return peer;
    }
    let mut last = peer;
    for hop in hops(headers).into_iter().rev() {
        match hop.map(canonical) {
            Some(ip) if trusted(trusted_proxies, ip) => last = ip,
            Some(ip) => return ip,
            // A hop we cannot read: everything before it is unverifiable.
            None => break,
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &'static str, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, v.parse().unwrap());
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_contains() {
        let c: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(c.contains(ip("10.1.200.3")));
        assert!(!c.contains(ip("10.2.0.1")));
        assert!(c.contains(ip("::ffff:10.1.0.9")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")) && !v6.contains(ip("2001:db9::1")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy".parse::<Cidr>().is_err());
        assert_eq!(parse_list("127.0.0.1, 10.0.0.0/8").unwrap().len(), 2);
    }

    #[test]
    fn headers_only_from_trusted_peers() {
        let t = parse_list("10.0.0.0/8").unwrap();
        let xff = h("x-forwarded-for", "203.0.113.7");
        assert_eq!(client_ip(ip("198.51.100.1"), &xff, &t), ip("198.51.100.1"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff, &t), ip("203.0.113.7"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), &HeaderMap::new(), &t),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let t = parse_list("10.0.0.0/8").unwrap();
        // The client wrote a fake first entry; the proxies appended the real ones.
        let xff = h("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.5");
        assert_eq!(client_ip(ip("10.0.0.2"), &xff, &t), ip("203.0.113.7"));
        let fwd = h(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https, for=10.0.0.5",
        );
        assert_eq!(client_ip(ip("10.0.0.2"), &fwd, &t), ip("2001:db8::7"));
        let hidden = h("forwarded", "for=_hidden, for=10.0.0.5");
        assert_eq!(client_ip(ip("10.0.0.2"), &hidden, &t), ip("10.0.0.5"));
    }
}
