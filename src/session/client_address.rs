//! The client address the login throttle counts against: the TCP peer, or —
//! only when the peer is one of `trusted_proxies` — what those proxies wrote
//! in `client_address_header`.
//!
//! `X-Forwarded-For` is read from the right (each proxy appends the address
//! it saw): the client is the nearest entry that is not itself a trusted
//! proxy, so entries the client wrote further left change nothing. An entry
//! that is not an address stops the walk at the last trusted hop. A request
//! without a known peer (a tower embedder that sets no
//! [`crate::connection::ConnectionInfo`]) has no address: the header alone is
//! never believed.

use std::net::{IpAddr, SocketAddr};

use http::header::GetAll;
use http::HeaderValue;

/// An address block (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x:y::z/n` or a single address. The error says
    /// what is wrong, for the configuration's problem list.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("{s:?} is not an address or CIDR block (\"10.0.0.0/8\", \"fd00::/8\")")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        // An IPv4-mapped block is the IPv4 block (peers are compared as IPv4).
        let (network, prefix) = match addr {
            IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - 96),
                None => (addr, prefix),
            },
            _ => (addr, prefix),
        };
        let cidr = Self { network, prefix };
        if cidr.masked(network) != bits(network) {
            return Err(format!(
                "{s:?} has bits set past its prefix; write {}/{prefix}",
                cidr.network_address()
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in this block (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.masked(ip) == self.masked(self.network)
    }

    /// `ip` (of this block's family) with the bits past the prefix cleared.
    fn masked(&self, ip: IpAddr) -> u128 {
        let width: u32 = if self.network.is_ipv4() { 32 } else { 128 };
        let host = width - u32::from(self.prefix);
        bits(ip).checked_shr(host).map_or(0, |b| b << host)
    }

    fn network_address(&self) -> IpAddr {
        let m = self.masked(self.network);
        match self.network {
            IpAddr::V4(_) => IpAddr::from(u32::try_from(m).unwrap_or(0).to_be_bytes()),
            IpAddr::V6(_) => IpAddr::from(m.to_be_bytes()),
        }
    }
}

/// The address as a number.
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

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

    #[test]
    fn blocks_parse_and_match() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::a01:203")), "IPv6 is not IPv4");
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.1")) && !all.contains(ip("::1")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(mapped, ten);
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "fd00::/129",
            "10.0.0/8",
            "example.com",
            "10.0.0.0/8/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?}");
        }
        let e = Cidr::parse("10.1.2.3/8").unwrap_err();
        assert!(e.contains("write 10.0.0.0/8"), "{e}");
        let e = Cidr::parse("fd00::1/8").unwrap_err();
        assert!(e.contains("write fd00::/8"), "{e}");
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
