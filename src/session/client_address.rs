//! The client address the login throttle counts against: the TCP peer, or —
//! only when the peer is one of `trusted_proxies` — what those proxies wrote
//! in `client_address_header`.
//!
//! `X-Forwarded-For` is read from the right (each proxy appends the address
//! it saw): the client is the nearest entry that is not itself a trusted
//! proxy, so entries the client wrote further left change nothing. An entry
//! that is not an address stops the walk at the last trusted hop. A request
//! without a known peer (a tower embedder that sets no
//! `connection::ConnectionInfo`) has no address: the header alone is
//! never believed.

use std::net::{IpAddr, SocketAddr};

use http::header::GetAll;
use http::HeaderValue;

pub use crate::connection::Cidr;

/// One header entry: an address, `a.b.c.d:port` or `[v6]:port`.
fn entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client of a request from `peer` carrying `values` of the client
/// address header (see the module docs).
pub fn resolve(
    peer: Option<IpAddr>,
    values: GetAll<'_, HeaderValue>,
    trusted: &[Cidr],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let mut client = peer?.to_canonical();
    if !is_trusted(client) {
        return Some(client);
    }
    for value in values.iter().rev() {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        for e in text.rsplit(',') {
            let Some(ip) = entry(e) else {
                return Some(client);
            };
            client = ip;
            if !is_trusted(ip) {
                return Some(ip);
            }
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn client(peer: &str, values: &[&str], trusted: &[&str]) -> Option<IpAddr> {
        let trusted: Vec<Cidr> = trusted.iter().map(|c| Cidr::parse(c).unwrap()).collect();
        let h = headers(values);
        resolve(Some(ip(peer)), h.get_all("x-forwarded-for"), &trusted)
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let proxies = ["10.0.0.0/8"];
        // Not from a proxy: the peer, whatever the header says.
        assert_eq!(
            client("192.0.2.1", &["203.0.113.5"], &proxies),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            client("192.0.2.1", &["203.0.113.5"], &[]),
            Some(ip("192.0.2.1"))
        );
        // From a proxy: the nearest address that is not a proxy.
        assert_eq!(
            client("10.0.0.1", &["203.0.113.5"], &proxies),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client(
                "10.0.0.1",
                &["198.51.100.1, 203.0.113.5, 10.9.9.9"],
                &proxies
            ),
            Some(ip("203.0.113.5")),
            "a forged leftmost entry is ignored, a second proxy skipped"
        );
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1", "203.0.113.5"], &proxies),
            Some(ip("203.0.113.5")),
            "the last header line is the nearest"
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.5:4711"], &proxies),
            Some(ip("203.0.113.5"))
        );
        assert_eq!(
            client("10.0.0.1", &["[2001:db8::5]:4711"], &proxies),
            Some(ip("2001:db8::5"))
        );
        // Garbage or nothing: the last trusted hop.
        assert_eq!(
            client("10.0.0.1", &["unknown"], &proxies),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.5, junk, 10.2.2.2"], &proxies),
            Some(ip("10.2.2.2"))
        );
        assert_eq!(client("10.0.0.1", &[], &proxies), Some(ip("10.0.0.1")));
        assert_eq!(
            client("10.0.0.1", &["10.3.3.3"], &proxies),
            Some(ip("10.3.3.3")),
            "only proxies: the farthest one"
        );
        // No peer known: no address, the header alone is not believed.
        let h = headers(&["203.0.113.5"]);
        let trusted = [Cidr::parse("0.0.0.0/0").unwrap()];
        assert_eq!(resolve(None, h.get_all("x-forwarded-for"), &trusted), None);
    }
}
