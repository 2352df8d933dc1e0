//! Where a webhook may point: http(s) only, and never into loopback, private,
//! link-local or other internal ranges unless the operator allowed that
//! network. Names are resolved at send time and the connection is pinned to
//! the checked address (a name that later resolves elsewhere cannot reach
//! an internal service), and redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::Url;

use crate::api::ratelimit::IpRange;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("not a URL: {0}")]
    NotUrl(String),
    #[error("only http and https URLs are accepted")]
    Scheme,
    #[error("the URL must not carry a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    NoHost,
    #[error(
        "{0} is in a loopback, private or internal range; targets there are refused unless RITMA_ALERT_ALLOWED_NETWORKS allows them"
    )]
    Internal(IpAddr),
    #[error("{0} does not resolve: {1}")]
    Resolve(String, String),
}

/// A URL checked for shape (not yet resolved).
pub fn parse(raw: &str) -> Result<Url, TargetError> {
    let url = Url::parse(raw.trim()).map_err(|e| TargetError::NotUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(TargetError::Scheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(TargetError::NoHost);
    }
    Ok(url)
}

/// What people may see of a URL: scheme, host and port, never the path or
/// query (where Slack-style URLs keep their secret).
pub fn redacted(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// True for addresses a notification must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] == 0x64 && seg[1] == 0xff9b) // NAT64 to anything
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1)
        }
    }
}

fn internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16: cloud metadata
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240
}

/// Check one address against the defaults and the operator's allow-list.
pub fn permitted(ip: IpAddr, allowed: &[IpRange]) -> Result<(), TargetError> {
    if is_internal(ip) && !allowed.iter().any(|r| r.contains(ip)) {
        return Err(TargetError::Internal(ip));
    }
    Ok(())
}

/// Resolve the URL's host; every address it resolves to must be permitted
/// (one bad answer refuses the lot). The address to connect to.
pub async fn resolve(url: &Url, allowed: &[IpRange]) -> Result<SocketAddr, TargetError> {
    let host = url.host_str().ok_or(TargetError::NoHost)?;
    let port = url.port_or_known_default().unwrap_or(443);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| TargetError::Resolve(host.into(), e.to_string()))?
            .collect(),
    };
    let first = *addrs
        .first()
        .ok_or_else(|| TargetError::Resolve(host.into(), "no addresses".into()))?;
    for a in &addrs {
        permitted(a.ip(), allowed)?;
    }
    Ok(first)
}

/// Refuse at creation what can be refused without resolving (an internal
/// address literal); names are checked at every send.
pub fn check_literal(url: &Url, allowed: &[IpRange]) -> Result<(), TargetError> {
    let host = url.host_str().ok_or(TargetError::NoHost)?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        permitted(ip, allowed)?;
    }
    if bare.eq_ignore_ascii_case("localhost") || bare.ends_with(".localhost") {
        permitted(IpAddr::V4(Ipv4Addr::LOCALHOST), allowed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn internal_ranges_are_refused_unless_allowed() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(ip(bad)), "{bad}");
            assert!(permitted(ip(bad), &[]).is_err(), "{bad}");
        }
        for good in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(!is_internal(ip(good)), "{good}");
        }
        let loopback: IpRange = "127.0.0.0/8".parse().unwrap();
        assert!(permitted(ip("127.0.0.1"), std::slice::from_ref(&loopback)).is_ok());
        assert!(permitted(ip("10.0.0.1"), &[loopback]).is_err());
    }

    #[test]
    fn urls_are_checked_for_shape_and_redacted() {
        assert_eq!(parse("ftp://x/y"), Err(TargetError::Scheme));
        assert_eq!(parse("https://u:p@x/y"), Err(TargetError::Credentials));
        assert!(matches!(parse("not a url"), Err(TargetError::NotUrl(_))));
        let url = parse("https://hooks.example.com/services/T0/B0/SECRET?x=1").unwrap();
        assert_eq!(redacted(&url), "https://hooks.example.com/…");
        let url = parse("http://127.0.0.1:9/h").unwrap();
        assert_eq!(redacted(&url), "http://127.0.0.1:9/…");
        assert!(check_literal(&url, &[]).is_err());
        assert!(check_literal(&parse("http://localhost:9/").unwrap(), &[]).is_err());
        assert!(check_literal(&parse("https://example.com/").unwrap(), &[]).is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_send_time() {
        let url = parse("http://localhost:9/hook").unwrap();
        assert!(matches!(
            resolve(&url, &[]).await,
            Err(TargetError::Internal(_))
        ));
        let loopback: Vec<IpRange> = vec!["127.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()];
        assert!(resolve(&url, &loopback).await.is_ok());
    }
}
