//! Forward-auth's reading of the original request target (nginx
//! `X-Original-URI`, Traefik `X-Forwarded-Uri`: `path::target_path`, then
//! `path::Canonical`), and Envoy's endpoint prefix (`Endpoint::matches`).
//!
//! Invariants:
//! - `target_path` agrees with an RFC 3986 §3 reader written out here
//!   (origin-form `/path?query`, absolute-form `http(s)://authority/path`;
//!   the path ends at `?` or `#`), and with `http::Uri` (what hyper, so the
//!   upstream, parses) wherever that parses the target;
//! - the path decided on is the one the upstream serves: when stonegate
//!   accepts the target, the upstream's path (`http::Uri`), percent-decoded,
//!   is the decoded path stonegate matched routes and rules on;
//! - an Envoy prefix endpoint matches its path and whole segments below it,
//!   never a longer segment (`/authx` for `/auth`).
#![no_main]

#[path = "reference/percent.rs"]
mod percent;

use http::{StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use percent::percent_decode;
use stonegate::forward_auth::{Endpoint, Flavor};
use stonegate::path::{target_path, Canonical};

/// RFC 3986 §3: the path of an origin-form or http(s) absolute-form target.
fn reference(target: &str) -> Option<&str> {
    let end = target.find(|c| c == '?' || c == '#').unwrap_or(target.len());
    let t = &target[..end];
    if t.starts_with('/') {
        return Some(t);
    }
    let colon = t.find(':')?;
    let scheme = &t[..colon];
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return None;
    }
    let hier = t[colon + 1..].strip_prefix("//")?;
    Some(hier.find('/').map_or("/", |i| &hier[i..]))
}

fuzz_target!(|data: &[u8]| {
    let Ok(target) = std::str::from_utf8(data) else {
        return;
    };
    let ours = target_path(target).ok();
    assert_eq!(ours, reference(target), "{target:?}");

    let uri = target.parse::<Uri>().ok();
    let upstream = uri.as_ref().filter(|u| {
        u.scheme_str().is_none_or(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            && (u.scheme().is_some() || target.starts_with('/'))
    });
    if let Some(u) = upstream {
        assert_eq!(ours, Some(u.path()), "{target:?}: hyper reads {:?}", u.path());
    }
    if let (Some(path), Some(u)) = (ours, upstream) {
        if let Ok(c) = Canonical::parse(path) {
            assert_eq!(percent_decode(u.path().as_bytes()), c.decoded().as_bytes(), "{target:?}");
        }
    }

    // Envoy: the endpoint prefix is the text before the first `?`.
    let prefix = target.split('?').next().unwrap_or_default().trim_end_matches('/');
    if prefix.starts_with('/') && prefix.len() > 1 {
        let ep = Endpoint {
            flavor: Flavor::Envoy,
            path: prefix.to_owned(),
            unavailable_status: StatusCode::SERVICE_UNAVAILABLE,
        };
        assert!(ep.matches(prefix));
        assert!(ep.matches(&format!("{prefix}/")));
        assert!(ep.matches(&format!("{prefix}/v2.1/servers")));
        assert!(!ep.matches(&format!("{prefix}x")));
        assert!(!ep.matches(&format!("{prefix}x/y")));
        let shorter = &prefix[..prefix.char_indices().last().map_or(0, |(i, _)| i)];
        assert!(!ep.matches(shorter) || shorter.is_empty());
    }
});
