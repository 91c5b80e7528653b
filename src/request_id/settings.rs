//! `[request_id]`: whose `X-OpenStack-Request-ID` is believed, as written
//! ([`Section`]) and checked ([`Settings`]).

use std::net::IpAddr;

use serde::Deserialize;

use crate::{
    connection::Cidr,
    settings::{problem, Problem},
};

/// `[request_id]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Peers (addresses or CIDR blocks) whose well-formed request id is kept.
    #[serde(default)]
    pub trusted_peers: Vec<String>,
}

/// `[request_id]` checked.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Peers whose well-formed request id is kept; empty: every id is new.
    pub trusted_peers: Vec<Cidr>,
}

impl Section {
    /// Checks the peers, recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Settings {
        let mut trusted_peers = Vec::new();
        for (i, c) in self.trusted_peers.iter().enumerate() {
            match Cidr::parse(c) {
                Ok(c) => trusted_peers.push(c),
                Err(e) => problem(p, &format!("request_id.trusted_peers[{i}]"), &e),
            }
        }
        Settings { trusted_peers }
    }
}

impl Settings {
    /// Whether a request from `peer` may bring its own id (an unknown peer,
    /// e.g. an embedder that sets no connection facts, may not).
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_peers.iter().any(|c| c.contains(ip)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_peers_are_trusted() {
        let mut p = Vec::new();
        let s = Section {
            trusted_peers: vec!["10.0.0.0/8".into(), "::1".into()],
        }
        .build(&mut p);
        assert!(p.is_empty());
        assert!(s.trusts(Some("10.2.3.4".parse().unwrap())));
        assert!(s.trusts(Some("::1".parse().unwrap())));
        assert!(!s.trusts(Some("192.0.2.1".parse().unwrap())));
        assert!(!s.trusts(None));
        assert!(!Settings::default().trusts(Some("10.2.3.4".parse().unwrap())));

        let mut p = Vec::new();
        Section {
            trusted_peers: vec!["10.0.0.1/8".into()],
        }
        .build(&mut p);
        assert_eq!(p[0].key, "request_id.trusted_peers[0]");
        assert!(
            p[0].message.contains("write 10.0.0.0/8"),
            "{}",
            p[0].message
        );
    }
}
