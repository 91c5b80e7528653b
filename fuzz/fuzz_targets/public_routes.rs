//! Public-route decisions on arbitrary request paths, as the layer makes
//! them: `path::Canonical::parse`, then `routes::PublicRoutes::is_public`
//! on the decoded path. Checked against a straightforward reference written
//! out here, straight from the rules of `src/path.rs`'s docs (decode every
//! escape once, then refuse what any server could resolve differently) and
//! of the README's public routes (`*`/`{x}` one segment, `**` anything).
//!
//! Invariants:
//! - the canonical path agrees with the reference: refused exactly when it
//!   refuses, and the same decoded and forwarded paths when accepted;
//! - public exactly when the reference matches a route on the decoded path;
//! - no spelling of a protected path passes: whatever a lenient server does
//!   to a path that was found public (resolve dot segments, merge `//`, read
//!   `\` as `/`, drop `;` parameters, decode once more), it still reads a
//!   public path.
//!
//! Input: the request path (UTF-8), as the request line carries it.
#![no_main]

use http::{HeaderMap, Method};
use libfuzzer_sys::fuzz_target;
use stonegate::path::Canonical;
use stonegate::routes::{PublicRoute, PublicRoutes};

/// Public routes of real deployments: version documents, health checks,
/// static assets, a one-segment placeholder.
const ROUTES: &[&str] = &[
    "/",
    "/healthz",
    "/v2.1/",
    "/v3",
    "/static/**",
    "/v1/{account}/info",
    "/image/*/thumbnail",
];

fn routes() -> &'static PublicRoutes {
    static R: std::sync::OnceLock<PublicRoutes> = std::sync::OnceLock::new();
    R.get_or_init(|| {
        PublicRoutes::new(ROUTES.iter().map(|p| PublicRoute::new(Method::GET, p)).collect(), false)
    })
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// `%XX` escapes at `i`, if any.
fn escape_at(b: &[u8], i: usize) -> Option<u8> {
    (b.get(i) == Some(&b'%')).then_some(())?;
    Some(hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?)
}

/// The reference canonical path: `Some((decoded, forward))`, or `None`
/// when refused.
fn reference(raw: &str) -> Option<(String, String)> {
    let b = raw.as_bytes();
    if !raw.starts_with('/') || raw.contains('#') || raw.contains('\\') {
        return None;
    }
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return None;
    }
    // Decode every escape once; a malformed one, an encoded separator or
    // control character is refused. The forwarded path spells each escape
    // in the normalised way (RFC 3986 §6.2.2) and keeps the rest as it came.
    let (mut decoded, mut forward) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let c = escape_at(b, i)?;
            if c == b'/' || c == b'\\' || c < 0x20 || c == 0x7f {
                return None;
            }
            decoded.push(c);
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                forward.push(c);
            } else {
                forward.extend_from_slice(format!("%{c:02X}").as_bytes());
            }
            i += 3;
        } else {
            decoded.push(b[i]);
            forward.push(b[i]);
            i += 1;
        }
    }
    let decoded = String::from_utf8(decoded).ok()?;
    let forward = String::from_utf8(forward).ok()?;
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    for (n, seg) in segments.iter().enumerate() {
        let last = n + 1 == segments.len();
        if (seg.is_empty() && !last) || seg.starts_with(';') {
            return None;
        }
        let head = seg.split(';').next().unwrap_or_default();
        if head == "." || head == ".." {
            return None;
        }
        // Double-encoded `.`, `/`, `\`, `%`, `;` or control character.
        let sb = seg.as_bytes();
        for j in 0..sb.len() {
            if let Some(c) = escape_at(sb, j) {
                if b"./\\%;".contains(&c) || c < 0x20 || c == 0x7f {
                    return None;
                }
            }
        }
    }
    Some((decoded, forward))
}

/// The README's route patterns, matched segment by segment.
fn route_matches(pattern: &str, path: &str) -> bool {
    fn go(p: &[u8], s: &[u8]) -> bool {
        match p {
            [] => s.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=s.len()).any(|k| go(rest, &s[k..])),
            [b'*', rest @ ..] => one_segment(rest, s),
            [b'{', ..] if p.contains(&b'}') => {
                let close = p.iter().position(|&c| c == b'}').unwrap();
                one_segment(&p[close + 1..], s)
            }
            [c, rest @ ..] => s.first() == Some(c) && go(rest, &s[1..]),
        }
    }
    /// A non-empty run without `/`, then the rest of the pattern.
    fn one_segment(rest: &[u8], s: &[u8]) -> bool {
        let end = s.iter().position(|&c| c == b'/').unwrap_or(s.len());
        (1..=end).any(|k| go(rest, &s[k..]))
    }
    go(pattern.as_bytes(), path.as_bytes())
}

fn reference_public(decoded: &str) -> bool {
    ROUTES.iter().any(|r| route_matches(r, decoded))
}

/// What a lenient server could make of a path: the variants an attacker
/// hopes differ from what was decided on.
fn lenient_readings(forwarded: &str) -> Vec<String> {
    let decode = |s: &str| {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if let Some(c) = escape_at(b, i) {
                out.push(c);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let resolve = |s: &str| {
        let s = s.replace('\\', "/");
        let mut out: Vec<&str> = Vec::new();
        for seg in s.split('/').skip(1) {
            let head = seg.split(';').next().unwrap_or_default();
            match head {
                "" | "." => {}
                ".." => {
                    out.pop();
                }
                _ => out.push(head),
            }
        }
        let trailing = s.ends_with('/') && !out.is_empty();
        format!("/{}{}", out.join("/"), if trailing { "/" } else { "" })
    };
    let once = decode(forwarded);
    vec![resolve(&once), resolve(&decode(&once)), resolve(forwarded)]
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let ours = Canonical::parse(raw).ok();
    let expected = reference(raw);
    assert_eq!(
        ours.as_ref().map(|c| (c.decoded().to_owned(), c.forward().to_owned())),
        expected,
        "{raw:?}"
    );
    let Some(c) = ours else {
        return;
    };
    let public = routes().is_public(&Method::GET, c.decoded(), &HeaderMap::new());
    assert_eq!(public, reference_public(c.decoded()), "{raw:?} -> {:?}", c.decoded());
    assert!(!routes().is_public(&Method::POST, c.decoded(), &HeaderMap::new()));
    if public {
        // What the upstream receives is the forwarded path.
        for reading in lenient_readings(c.forward()) {
            assert!(
                reference_public(&reading),
                "{raw:?} decided public as {:?}, a server may read it as protected {reading:?}",
                c.decoded()
            );
        }
    }
});
