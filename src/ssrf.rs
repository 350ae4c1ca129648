//! SSRF guard for merchant-supplied webhook URLs: URL shape checks, forbidden IP
//! ranges, and resolve-time checks (DNS rebinding defence).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Which destinations a delivery may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlPolicy {
    /// Live merchants: https only, public addresses only.
    Production,
    /// Test-mode merchants: http also allowed (local tunnels, quick trials), still public only.
    TestMode,
    /// Server setting for local development and the test suite: http allowed and
    /// loopback (127/8, ::1, localhost) reachable. Private ranges stay forbidden.
    AllowLoopback,
}

impl UrlPolicy {
    fn allows_http(self) -> bool {
        matches!(self, UrlPolicy::TestMode | UrlPolicy::AllowLoopback)
    }
    fn allows_loopback(self) -> bool {
        matches!(self, UrlPolicy::AllowLoopback)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("scheme {0:?} not allowed")]
    SchemeNotAllowed(String),
    #[error("credentials in URL not allowed")]
    UserinfoNotAllowed,
    #[error("destination address not allowed: {0}")]
    ForbiddenAddress(String),
    #[error("host could not be resolved: {0}")]
    Unresolvable(String),
}

impl SsrfError {
    /// Stable machine-readable code for API errors and delivery logs.
    pub fn code(&self) -> &'static str {
        match self {
            SsrfError::InvalidUrl(_) => "invalid_url",
            SsrfError::SchemeNotAllowed(_) => "scheme_not_allowed",
            SsrfError::UserinfoNotAllowed => "userinfo_not_allowed",
            SsrfError::ForbiddenAddress(_) => "forbidden_address",
            SsrfError::Unresolvable(_) => "unresolvable",
        }
    }
}

/// Static checks on a webhook URL (at registration and again before each
/// delivery). Host names are not resolved here; see [`resolve_checked`].
///
/// IPv4 spellings such as `2130706433`, `0x7f000001`, `0177.0.0.1` and `127.1`
/// are normalised to dotted-quad by the WHATWG parser in the `url` crate for
/// http/https, so they arrive here as `Host::Ipv4` (see tests).
pub fn check_url(url: &str, policy: UrlPolicy) -> Result<Url, SsrfError> {
    let parsed = Url::parse(url.trim()).map_err(|e| SsrfError::InvalidUrl(e.to_string()))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allows_http() => {}
        other => return Err(SsrfError::SchemeNotAllowed(other.to_string())),
    }
    // Credentials in URLs leak into logs and enable `https://good@evil` confusion.
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(SsrfError::UserinfoNotAllowed);
    }
    match parsed.host() {
        None => return Err(SsrfError::InvalidUrl("host required".into())),
        Some(Host::Ipv4(v4)) => check_ip(IpAddr::V4(v4), policy)?,
        Some(Host::Ipv6(v6)) => check_ip(IpAddr::V6(v6), policy)?,
        Some(Host::Domain(d)) => {
            // `localhost.` (trailing dot) is the same name; RFC 6761 reserves *.localhost.
            let name = d.trim_end_matches('.');
            if name.is_empty() {
                return Err(SsrfError::InvalidUrl("empty host".into()));
            }
            let is_localhost = name == "localhost" || name.ends_with(".localhost");
            if is_localhost && !policy.allows_loopback() {
                return Err(SsrfError::ForbiddenAddress(name.to_string()));
            }
        }
    }
    Ok(parsed)
}

fn check_ip(ip: IpAddr, policy: UrlPolicy) -> Result<(), SsrfError> {
    if ip_forbidden(ip, policy) {
        Err(SsrfError::ForbiddenAddress(ip.to_string()))
    } else {
        Ok(())
    }
}

/// True if a webhook must not connect to `ip`. Loopback is allowed only under
/// [`UrlPolicy::AllowLoopback`]; everything else listed stays forbidden under
/// every policy.
pub fn ip_forbidden(ip: IpAddr, policy: UrlPolicy) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_forbidden(v4, policy),
        IpAddr::V6(v6) => v6_forbidden(v6, policy),
    }
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    (u32::from(ip) & mask) == (u32::from(Ipv4Addr::from(net)) & mask)
}

fn v4_forbidden(ip: Ipv4Addr, policy: UrlPolicy) -> bool {
    if ip.is_loopback() {
        return !policy.allows_loopback();
    }
    const DENY: &[([u8; 4], u32)] = &[
        ([0, 0, 0, 0], 8),       // "this network", incl. 0.0.0.0 (often = localhost)
        ([10, 0, 0, 0], 8),      // private
        ([100, 64, 0, 0], 10),   // CGNAT
        ([169, 254, 0, 0], 16),  // link-local, cloud metadata 169.254.169.254
        ([172, 16, 0, 0], 12),   // private
        ([192, 0, 0, 0], 24),    // IETF protocol assignments
        ([192, 0, 2, 0], 24),    // TEST-NET-1
        ([192, 88, 99, 0], 24),  // 6to4 relay anycast (deprecated)
        ([192, 168, 0, 0], 16),  // private
        ([198, 18, 0, 0], 15),   // benchmarking
        ([198, 51, 100, 0], 24), // TEST-NET-2
        ([203, 0, 113, 0], 24),  // TEST-NET-3
        ([224, 0, 0, 0], 4),     // multicast
        ([240, 0, 0, 0], 4),     // reserved + 255.255.255.255 broadcast
    ];
    DENY.iter().any(|(net, p)| v4_in(ip, *net, *p))
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    (u128::from(ip) & mask) == (u128::from(net) & mask)
}

fn v6_forbidden(ip: Ipv6Addr, policy: UrlPolicy) -> bool {
    let bits = u128::from(ip);
    if ip.is_unspecified() {
        return true;
    }
    if ip.is_loopback() {
        return !policy.allows_loopback();
    }
    let low32 = Ipv4Addr::from(bits as u32);
    // Forms that embed an IPv4 address and reach it (or are treated as it by the
    // OS): judge them by the embedded address, so ::ffff:127.0.0.1 ≡ 127.0.0.1.
    if v6_in(ip, Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96) // IPv4-mapped
        || v6_in(ip, Ipv6Addr::UNSPECIFIED, 96) // IPv4-compatible (deprecated)
        || v6_in(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96)
    // NAT64 well-known prefix
    {
        return v4_forbidden(low32, policy);
    }
    if v6_in(ip, Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16) {
        // 6to4: the IPv4 address sits in bits 16..48.
        let v4 = Ipv4Addr::from((bits >> 80) as u32);
        return v4_forbidden(v4, policy);
    }
    // Only global unicast 2000::/3 is reachable on the public internet; this
    // rejects fc00::/7 (ULA), fe80::/10 (link-local), fec0::/10, ff00::/8
    // (multicast), 100::/64 (discard), 64:ff9b:1::/48 and the rest.
    if !v6_in(ip, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3) {
        return true;
    }
    const DENY: &[(Ipv6Addr, u32)] = &[
        (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments incl. Teredo
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
        (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation (RFC 9637)
    ];
    DENY.iter().any(|(net, p)| v6_in(ip, *net, *p))
}

/// Resolve `host` and refuse if ANY address is forbidden: a name that mixes
/// public and private records is hostile (or broken) either way, and refusing
/// the whole set means the connector cannot fall back to the bad address.
pub async fn resolve_host_checked(
    host: &str,
    port: u16,
    policy: UrlPolicy,
) -> Result<Vec<SocketAddr>, SsrfError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| SsrfError::Unresolvable(format!("{host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(SsrfError::Unresolvable(host.to_string()));
    }
    if let Some(bad) = addrs.iter().find(|a| ip_forbidden(a.ip(), policy)) {
        return Err(SsrfError::ForbiddenAddress(format!(
            "{host} -> {}",
            bad.ip()
        )));
    }
    Ok(addrs)
}

/// Connect-time check for a URL already accepted by [`check_url`]: the addresses
/// returned are the only ones the connection may use (pin them).
pub async fn resolve_checked(url: &Url, policy: UrlPolicy) -> Result<Vec<SocketAddr>, SsrfError> {
    let port = url
        .port_or_known_default()
        .ok_or_else(|| SsrfError::InvalidUrl("no port".into()))?;
    match url.host() {
        None => Err(SsrfError::InvalidUrl("host required".into())),
        Some(Host::Ipv4(v4)) => {
            check_ip(IpAddr::V4(v4), policy)?;
            Ok(vec![SocketAddr::new(IpAddr::V4(v4), port)])
        }
        Some(Host::Ipv6(v6)) => {
            check_ip(IpAddr::V6(v6), policy)?;
            Ok(vec![SocketAddr::new(IpAddr::V6(v6), port)])
        }
        Some(Host::Domain(d)) => resolve_host_checked(d, port, policy).await,
    }
}

/// The address policy for a merchant's callback URL: live merchants need https on public
/// addresses; test-mode merchants may use http; loopback only when the server allows it.
pub fn policy_for(config: &crate::config::Config, mode: crate::domain::Mode) -> UrlPolicy {
    if config.allow_loopback_callbacks {
        UrlPolicy::AllowLoopback
    } else {
        match mode {
            crate::domain::Mode::Live => UrlPolicy::Production,
            crate::domain::Mode::Test => UrlPolicy::TestMode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UrlPolicy::*;

    fn code(url: &str, p: UrlPolicy) -> &'static str {
        match check_url(url, p) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn url_crate_normalises_ipv4_spellings() {
        for s in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://127.000.000.001/",
            "http://１２７.０.０.１/",
        ] {
            let u = Url::parse(s).unwrap();
            assert_eq!(u.host(), Some(Host::Ipv4(Ipv4Addr::LOCALHOST)), "{s}");
        }
        let u = Url::parse("http://[::ffff:7f00:1]/").unwrap();
        assert_eq!(u.host_str(), Some("[::ffff:7f00:1]"));
        let u = Url::parse("http://%6c%6f%63%61%6c%68%6f%73%74/").unwrap();
        assert_eq!(u.host_str(), Some("localhost"));
    }

    #[test]
    fn refused_urls() {
        let cases: &[(&str, &str)] = &[
            ("https://127.0.0.1/", "forbidden_address"),
            ("https://2130706433/", "forbidden_address"),
            ("https://0x7f000001/", "forbidden_address"),
            ("https://0177.0.0.1/", "forbidden_address"),
            ("https://127.1/", "forbidden_address"),
            ("https://127.255.255.254/", "forbidden_address"),
            ("https://１２７.０.０.１/", "forbidden_address"),
            ("https://[::1]/", "forbidden_address"),
            ("https://[::ffff:127.0.0.1]/", "forbidden_address"),
            ("https://[::ffff:7f00:1]/", "forbidden_address"),
            ("https://[::127.0.0.1]/", "forbidden_address"),
            ("https://[64:ff9b::7f00:1]/", "forbidden_address"),
            ("https://[64:ff9b::a00:1]/", "forbidden_address"),
            ("https://[2002:7f00:1::]/", "forbidden_address"),
            ("https://[::]/", "forbidden_address"),
            ("https://0.0.0.0/", "forbidden_address"),
            ("https://0/", "forbidden_address"),
            ("https://10.0.0.1/", "forbidden_address"),
            ("https://172.16.0.1/", "forbidden_address"),
            ("https://172.31.255.255/", "forbidden_address"),
            ("https://192.168.1.1/", "forbidden_address"),
            (
                "https://169.254.169.254/latest/meta-data/",
                "forbidden_address",
            ),
            ("https://[::ffff:169.254.169.254]/", "forbidden_address"),
            ("https://100.64.0.1/", "forbidden_address"),
            ("https://192.0.2.10/", "forbidden_address"),
            ("https://198.51.100.1/", "forbidden_address"),
            ("https://203.0.113.1/", "forbidden_address"),
            ("https://224.0.0.1/", "forbidden_address"),
            ("https://255.255.255.255/", "forbidden_address"),
            ("https://[fe80::1]/", "forbidden_address"),
            ("https://[fc00::1]/", "forbidden_address"),
            ("https://[fd12:3456::1]/", "forbidden_address"),
            ("https://[ff02::1]/", "forbidden_address"),
            ("https://[2001:db8::1]/", "forbidden_address"),
            ("https://localhost/", "forbidden_address"),
            ("https://LOCALHOST./", "forbidden_address"),
            ("https://api.localhost/", "forbidden_address"),
            ("https://%6c%6f%63%61%6c%68%6f%73%74/", "forbidden_address"),
            ("http://example.com/hook", "scheme_not_allowed"),
            ("ftp://example.com/", "scheme_not_allowed"),
            ("file:///etc/passwd", "scheme_not_allowed"),
            ("gopher://example.com/", "scheme_not_allowed"),
            ("javascript:alert(1)", "scheme_not_allowed"),
            ("https://user:pass@example.com/", "userinfo_not_allowed"),
            ("https://127.0.0.1:443@example.com/", "userinfo_not_allowed"),
            ("https://example.com@127.0.0.1/", "userinfo_not_allowed"),
            ("not a url", "invalid_url"),
            ("https://", "invalid_url"),
            ("https://[fe80::1%25eth0]/", "invalid_url"),
            ("https://exa mple.com/", "invalid_url"),
            ("https://256.0.0.1/", "invalid_url"),
        ];
        assert!(cases.len() >= 25);
        for (url, want) in cases {
            assert_eq!(code(url, Production), *want, "{url}");
        }
    }

    #[test]
    fn accepted_urls() {
        for url in [
            "https://example.com/webhooks",
            "https://shop.example.co.jp:8443/notify?x=1",
            "https://93.184.215.14/hook",
            "https://[2606:4700::1111]/hook",
            "https://例え.jp/hook",
            "https://localhost.example.com/",
            "https://example.com#@127.0.0.1",
        ] {
            assert_eq!(code(url, Production), "ok", "{url}");
        }
        assert_eq!(code("http://example.com/", TestMode), "ok");
        assert_eq!(code("https://example.com#@127.0.0.1", Production), "ok");
        assert_eq!(
            check_url("https://example.com#@127.0.0.1", Production)
                .unwrap()
                .host_str(),
            Some("example.com")
        );
    }

    #[test]
    fn policies() {
        assert_eq!(
            code("http://127.0.0.1:8080/", TestMode),
            "forbidden_address"
        );
        assert_eq!(
            code("http://localhost:8080/", TestMode),
            "forbidden_address"
        );
        assert_eq!(code("http://127.0.0.1:8080/", AllowLoopback), "ok");
        assert_eq!(code("http://[::1]:8080/", AllowLoopback), "ok");
        assert_eq!(code("http://[::ffff:127.0.0.1]/", AllowLoopback), "ok");
        assert_eq!(code("http://localhost:8080/", AllowLoopback), "ok");
        assert_eq!(code("http://a.localhost/", AllowLoopback), "ok");
        // Loopback only: private, link-local and metadata stay forbidden.
        assert_eq!(code("http://10.1.2.3/", AllowLoopback), "forbidden_address");
        assert_eq!(
            code("http://169.254.169.254/", AllowLoopback),
            "forbidden_address"
        );
        assert_eq!(code("http://0.0.0.0/", AllowLoopback), "forbidden_address");
        assert_eq!(code("http://[::]/", AllowLoopback), "forbidden_address");
    }

    #[test]
    fn ip_ranges() {
        let bad = [
            "0.1.2.3",
            "10.255.255.255",
            "100.127.255.255",
            "127.0.0.1",
            "169.254.0.1",
            "172.16.0.0",
            "172.31.0.1",
            "192.0.0.8",
            "192.168.255.255",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "239.255.255.250",
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::",
            "fdff::1",
            "ff0e::1",
            "2001:db8::",
            "2001::1",
            "3fff::1",
            "100::1",
            "64:ff9b:1::1",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::c0a8:101",
            "2002:a00:1::1",
        ];
        for s in bad {
            let ip: IpAddr = s.parse().unwrap();
            assert!(ip_forbidden(ip, Production), "{s} should be forbidden");
        }
        let good = [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ];
        for s in good {
            let ip: IpAddr = s.parse().unwrap();
            assert!(!ip_forbidden(ip, Production), "{s} should be allowed");
        }
        assert!(!ip_forbidden("127.0.0.1".parse().unwrap(), AllowLoopback));
        assert!(!ip_forbidden("::1".parse().unwrap(), AllowLoopback));
        assert!(!ip_forbidden(
            "64:ff9b::7f00:1".parse().unwrap(),
            AllowLoopback
        ));
        assert!(ip_forbidden("192.168.0.1".parse().unwrap(), AllowLoopback));
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(SsrfError::InvalidUrl(String::new()).code(), "invalid_url");
        assert_eq!(
            SsrfError::SchemeNotAllowed(String::new()).code(),
            "scheme_not_allowed"
        );
        assert_eq!(SsrfError::UserinfoNotAllowed.code(), "userinfo_not_allowed");
        assert_eq!(
            SsrfError::ForbiddenAddress(String::new()).code(),
            "forbidden_address"
        );
        assert_eq!(
            SsrfError::Unresolvable(String::new()).code(),
            "unresolvable"
        );
    }

    #[tokio::test]
    async fn resolve_checked_refuses_names_pointing_at_loopback() {
        // No network needed: localhost comes from the hosts file.
        let u = Url::parse("http://localhost:9/").unwrap();
        let err = resolve_checked(&u, TestMode).await.unwrap_err();
        assert_eq!(err.code(), "forbidden_address");
        let ok = resolve_checked(&u, AllowLoopback).await.unwrap();
        assert!(ok.iter().all(|a| a.ip().is_loopback() && a.port() == 9));
    }

    #[tokio::test]
    async fn resolve_checked_ip_literals_and_failures() {
        let u = Url::parse("https://10.0.0.1/").unwrap();
        assert_eq!(
            resolve_checked(&u, AllowLoopback).await.unwrap_err().code(),
            "forbidden_address"
        );
        let u = Url::parse("https://93.184.215.14/").unwrap();
        assert_eq!(
            resolve_checked(&u, Production).await.unwrap(),
            vec!["93.184.215.14:443".parse().unwrap()]
        );
        // .invalid is guaranteed never to resolve (RFC 6761).
        let u = Url::parse("https://no-such-host.invalid/").unwrap();
        assert_eq!(
            resolve_checked(&u, Production).await.unwrap_err().code(),
            "unresolvable"
        );
    }
}
