//! Facts about the client connection: its peer address and whether it came
//! over TLS, and the address blocks ([`Cidr`]) peers are trusted by. The server inserts a [`ConnectionInfo`] into every request's
//! extensions; the front doors read it (the sidecar for `X-Forwarded-*`,
//! sessions for the client address and the `Secure` cookie checks).
//!
//! A leaf: it imports nothing of the crate.

use std::net::{IpAddr, SocketAddr};

/// Facts about the client connection, inserted into request extensions by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
