//! The one canonical request path, computed once per request: public routes
//! and access rules are decided on it, and the upstream receives exactly it.
//!
//! A path is refused ([`Ambiguous`], answered 400) when a server behind or in
//! front of stonegate could resolve it to another resource than the one
//! decided on: uWSGI, nginx, Apache, Tomcat and Werkzeug resolve dot segments,
//! decode `%2F`, read `\` as `/`, stop at NUL, drop `;` parameters (`..;` is
//! `..` for Tomcat and Jetty) and merge `//` (nginx `merge_slashes`, Apache
//! `MergeSlashes`). So a path is refused when it is not origin-form (`*`,
//! authority-form, relative), or holds:
//!
//! - a dot segment (`.` or `..`), raw or percent-encoded in any case
//!   (`%2e`, `.%2E`...), alone or with a `;` parameter (`..;`, `.;x`);
//! - an encoded `/` or `\` (`%2F`, `%5C`), or a raw `\`;
//! - a control character, raw or encoded (`%00`, `%0A`, `%7F`);
//! - an empty segment (`//`, or `/;x` which is one once parameters are
//!   dropped; a trailing `/` is fine);
//! - a malformed escape (`%`, `%2`, `%zz`), or escapes that do not decode to UTF-8;
//! - a double-encoded `.`, `/`, `\`, `;` or control character (`%252e`,
//!   `%253b`), which a server that decodes twice would resolve (a `;` that
//!   starts a segment once decoded twice empties it, as `/;x` does).
//!
//! Otherwise the path has two views: [`Canonical::decoded`], percent-decoded
//! (what a WSGI application sees as `PATH_INFO`, so what access rules and
//! public routes match), and [`Canonical::forward`], the same path with its
//! escapes normalised (RFC 3986 §6.2.2: unreserved characters decoded, other
//! escapes in upper case), which is what the upstream receives. Since nothing
//! is left to resolve, RFC 3986 §5.2.4 leaves the path as it is, and every
//! upstream decodes the forwarded path to the decided one. An ordinary path
//! (no `%`) is checked in one pass without allocating.

use std::borrow::Cow;

use http::{uri::PathAndQuery, Uri};

/// Why a request path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguous {
    /// Not a path starting with `/` (`OPTIONS *`, authority-form, a fragment).
    #[error("not an origin-form path")]
    NotOriginForm,
    /// A `.` or `..` segment, raw, encoded or followed by `;` parameters.
    #[error("dot segment")]
    DotSegment,
    /// `%2F` or `%5C`.
    #[error("encoded slash or backslash")]
    EncodedSeparator,
    /// A raw `\`.
    #[error("backslash")]
    Backslash,
    /// A control character (NUL...), raw or encoded.
    #[error("control character")]
    ControlCharacter,
    /// `//`.
    #[error("empty segment")]
    EmptySegment,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape")]
    MalformedEscape,
    /// The decoded path is not UTF-8.
    #[error("not UTF-8 once decoded")]
    NotUtf8,
    /// A percent-encoded escape of a character refused above (`%252e`).
    #[error("double-encoded separator, dot or control character")]
    DoubleEncoded,
}

impl Ambiguous {
    /// A short label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            Ambiguous::NotOriginForm => "not_origin_form",
            Ambiguous::DotSegment => "dot_segment",
            Ambiguous::EncodedSeparator => "encoded_separator",
            Ambiguous::Backslash => "backslash",
            Ambiguous::ControlCharacter => "control_character",
            Ambiguous::EmptySegment => "empty_segment",
            Ambiguous::MalformedEscape => "malformed_escape",
            Ambiguous::NotUtf8 => "not_utf8",
            Ambiguous::DoubleEncoded => "double_encoded",
        }
    }
}

/// A request path that passed the checks of the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical<'a> {
    decoded: Cow<'a, str>,
    forward: Cow<'a, str>,
}

impl<'a> Canonical<'a> {
    /// Checks `path` (the path only: no query; see [`target_path`] for a
    /// whole request target).
    pub fn parse(path: &'a str) -> Result<Self, Ambiguous> {
        if !path.starts_with('/') {
            return Err(Ambiguous::NotOriginForm);
        }
        // One pass over the bytes; a virtual `/` at the end closes the last segment.
        let b = path.as_bytes();
        let mut escaped = false;
        let mut start = 1;
        for i in 1..=b.len() {
            match b.get(i).copied().unwrap_or(b'/') {
                b'/' => {
                    let segment = &b[start..i];
                    // `;x` is an empty segment once parameters are dropped (Tomcat).
                    if (segment.is_empty() && i < b.len()) || segment.first() == Some(&b';') {
                        return Err(Ambiguous::EmptySegment);
                    }
                    if segment.first() == Some(&b'.') && is_dot_segment(segment) {
                        return Err(Ambiguous::DotSegment);
                    }
                    start = i + 1;
                }
                b'%' => escaped = true,
                b'\\' => return Err(Ambiguous::Backslash),
                b'#' => return Err(Ambiguous::NotOriginForm),
                c if c < 0x20 || c == 0x7f => return Err(Ambiguous::ControlCharacter),
                _ => {}
            }
        }
        if !escaped {
            return Ok(Self {
                decoded: Cow::Borrowed(path),
                forward: Cow::Borrowed(path),
            });
        }
        let (decoded, forward) = decode(path)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Ambiguous::NotUtf8)?;
        for segment in segments(&decoded) {
            if segment.starts_with(';') {
                return Err(Ambiguous::EmptySegment);
            }
            if is_dot_segment(segment.as_bytes()) {
                return Err(Ambiguous::DotSegment);
            }
            if double_encoded(segment.as_bytes()) {
                return Err(Ambiguous::DoubleEncoded);
            }
        }
        Ok(Self {
            decoded: Cow::Owned(decoded),
            forward: Cow::Owned(forward),
        })
    }

    /// The percent-decoded path: what access rules and public routes match.
    pub fn decoded(&self) -> &str {
        &self.decoded
    }

    /// The path the upstream receives.
    pub fn forward(&self) -> &str {
        &self.forward
    }

    /// The decoded and forwarded paths, each `None` when it is the input itself.
    pub fn into_changes(self) -> (Option<String>, Option<String>) {
        let owned = |c: Cow<'a, str>| match c {
            Cow::Owned(s) => Some(s),
            Cow::Borrowed(_) => None,
        };
        (owned(self.decoded), owned(self.forward))
    }
}

/// The path of a request target as an ingress reports it (`X-Original-URI`,
/// `X-Forwarded-Uri`): origin-form `/p?q`, or absolute-form `http://h/p?q`.
/// The query is dropped; anything else is [`Ambiguous::NotOriginForm`].
pub fn target_path(target: &str) -> Result<&str, Ambiguous> {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let before_query = &target[..end];
    if before_query.starts_with('/') {
        return Ok(before_query);
    }
    // absolute-form: scheme "://" authority path
    let Some((scheme, rest)) = before_query.split_once("://") else {
        return Err(Ambiguous::NotOriginForm);
    };
    let scheme_ok = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    if !scheme_ok {
        return Err(Ambiguous::NotOriginForm);
    }
    match rest.find('/') {
        Some(i) => Ok(&rest[i..]),
        None => Ok("/"),
    }
}

/// `uri` with its path replaced by `path` (scheme, authority and query kept);
/// `None` if that is not a valid URI.
pub fn with_path(uri: &Uri, path: &str) -> Option<Uri> {
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(pq).ok()?);
    Uri::from_parts(parts).ok()
}

/// The segments after the leading `/`.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').skip(1)
}

/// Percent-decodes `raw` once; the decoded bytes and the normalised forward form.
fn decode(raw: &str) -> Result<(Vec<u8>, String), Ambiguous> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut forward = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('%') {
        let (run, tail) = rest.split_at(i);
        decoded.extend_from_slice(run.as_bytes());
        forward.push_str(run);
        let t = tail.as_bytes();
        let (Some(h), Some(l)) = (
            t.get(1).copied().and_then(hex),
            t.get(2).copied().and_then(hex),
        ) else {
            return Err(Ambiguous::MalformedEscape);
        };
        let byte = h << 4 | l;
        match byte {
            b'/' | b'\\' => return Err(Ambiguous::EncodedSeparator),
            b if b < 0x20 || b == 0x7f => return Err(Ambiguous::ControlCharacter),
            _ => {}
        }
        decoded.push(byte);
        if is_unreserved(byte) {
            forward.push(char::from(byte));
        } else {
            forward.push('%');
            forward.push(char::from(HEX[usize::from(byte >> 4)]));
            forward.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        // '%' and two hex digits: three ASCII bytes, a char boundary after.
        rest = tail.get(3..).unwrap_or_default();
    }
    decoded.extend_from_slice(rest.as_bytes());
    forward.push_str(rest);
    Ok((decoded, forward))
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 `unreserved`.
fn is_unreserved(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
}

/// `.` or `..`, possibly followed by `;` parameters.
fn is_dot_segment(segment: &[u8]) -> bool {
    let head = match segment.iter().position(|&c| c == b';') {
        Some(i) => &segment[..i],
        None => segment,
    };
    head == b"." || head == b".."
}

/// Whether a decoded segment still holds an escape of a refused character.
fn double_encoded(segment: &[u8]) -> bool {
    segment.windows(3).any(|w| {
        w[0] == b'%'
            && match (hex(w[1]), hex(w[2])) {
                (Some(h), Some(l)) => {
                    let b = h << 4 | l;
                    matches!(b, b'.' | b'/' | b'\\' | b'%' | b';') || b < 0x20 || b == 0x7f
                }
                _ => false,
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_borrowed_as_they_are() {
        for p in [
            "/",
            "/v2.1/servers",
            "/v2.1/servers/",
            "/v2.1/servers/4a0b7c1e/action",
            "/a/..x/x../.../.x;y/x;.",
            "/v1/AUTH_x/c/obj.tar.gz",
            "/caf\u{e9}/\u{1f600}",
        ] {
            let c = Canonical::parse(p).unwrap();
            assert!(matches!(c.decoded, Cow::Borrowed(_)), "{p}");
            assert!(matches!(c.forward, Cow::Borrowed(_)), "{p}");
            assert_eq!((c.decoded(), c.forward()), (p, p));
        }
    }

    #[test]
    fn escapes_decode_for_matching_and_normalise_for_forwarding() {
        for (p, decoded, forward) in [
            ("/v2.1/serv%65rs", "/v2.1/servers", "/v2.1/servers"),
            ("/a%2eb", "/a.b", "/a.b"),
            ("/%2e%2e%2e", "/...", "/..."),
            ("/%2ex", "/.x", "/.x"),
            ("/a%20b", "/a b", "/a%20b"),
            ("/a%3fb%3Bc", "/a?b;c", "/a%3Fb%3Bc"),
            ("/caf%C3%A9", "/caf\u{e9}", "/caf%C3%A9"),
            ("/caf%c3%a9/x", "/caf\u{e9}/x", "/caf%C3%A9/x"),
            ("/%7euser", "/~user", "/~user"),
            ("/100%25", "/100%", "/100%25"),
        ] {
            let c = Canonical::parse(p).unwrap();
            assert_eq!((c.decoded(), c.forward()), (decoded, forward), "{p}");
        }
    }

    #[test]
    fn every_spelling_a_server_could_resolve_differently_is_refused() {
        use Ambiguous::*;
        for (p, why) in [
            ("", NotOriginForm),
            ("*", NotOriginForm),
            ("relative/x", NotOriginForm),
            ("example.com:443", NotOriginForm),
            ("/a#b", NotOriginForm),
            ("/..", DotSegment),
            ("/.", DotSegment),
            ("/a/../b", DotSegment),
            ("/a/./b", DotSegment),
            ("/a/..", DotSegment),
            ("/a/.", DotSegment),
            ("/a/..;/b", DotSegment),
            ("/a/..;x=1/b", DotSegment),
            ("/a/.;x/b", DotSegment),
            ("/a/;/b", EmptySegment),
            ("/a/;x", EmptySegment),
            ("/a/%3bx/b", EmptySegment),
            ("/a/%2e%2e/b", DotSegment),
            ("/a/%2E%2E/b", DotSegment),
            ("/a/%2E%2e/b", DotSegment),
            ("/a/.%2e/b", DotSegment),
            ("/a/%2e./b", DotSegment),
            ("/a/%2e/b", DotSegment),
            ("/a/%2e%2e;/b", DotSegment),
            ("/a/%2e%2e%3b/b", DotSegment),
            ("/a/..%2fb", EncodedSeparator),
            ("/a/..%2Fb", EncodedSeparator),
            ("/a%2fb", EncodedSeparator),
            ("/a/..%5cb", EncodedSeparator),
            ("/a/..%5Cb", EncodedSeparator),
            ("/a/..\\b", Backslash),
            ("/a\\b", Backslash),
            ("/a%00", ControlCharacter),
            ("/a%00/../b", DotSegment),
            ("/a%0a", ControlCharacter),
            ("/a%0D%0Ax", ControlCharacter),
            ("/a%7f", ControlCharacter),
            ("/a\tb", ControlCharacter),
            ("/a\u{7f}", ControlCharacter),
            ("//a", EmptySegment),
            ("/a//b", EmptySegment),
            ("/a/b//", EmptySegment),
            ("/a%", MalformedEscape),
            ("/a%2", MalformedEscape),
            ("/a%zz", MalformedEscape),
            ("/a%%32e", MalformedEscape),
            ("/a%u002e", MalformedEscape),
            ("/a%ff", NotUtf8),
            ("/a%c3", NotUtf8),
            ("/a%c0%ae", NotUtf8),
            ("/a/%252e%252e/b", DoubleEncoded),
            ("/a%252fb", DoubleEncoded),
            ("/static/%253b.x", DoubleEncoded),
            ("/a%255cb", DoubleEncoded),
            ("/a%2500", DoubleEncoded),
            ("/a%25252e", DoubleEncoded),
        ] {
            assert_eq!(Canonical::parse(p), Err(why), "{p:?}");
        }
    }

    /// Every path of up to four pieces from an alphabet of the tricky ones:
    /// an accepted path leaves nothing to resolve and is stable.
    #[test]
    fn accepted_paths_leave_nothing_to_resolve() {
        const PIECES: &[&str] = &[
            "/", "a", ".", "..", "%2e", "%2E", ";", ";x", "%3b", "%2f", "%5c", "\\", "%00", "%25",
            "%252e", "%ff", "%c3%a9", "%", "%2", "%41", "#", "~",
        ];
        let mut accepted = 0;
        let mut stack: Vec<(String, usize)> = vec![("/".into(), 0)];
        while let Some((p, depth)) = stack.pop() {
            if let Ok(c) = Canonical::parse(&p) {
                accepted += 1;
                for v in [c.decoded(), c.forward()] {
                    assert!(!v.contains("//"), "{p:?}");
                    for seg in v.split('/').skip(1) {
                        let head = seg.split(';').next().unwrap_or_default();
                        assert!(head != "." && head != "..", "{p:?} -> {v:?}");
                    }
                }
                let redecoded = percent_encoding::percent_decode_str(c.forward()).decode_utf8();
                assert_eq!(redecoded.unwrap(), c.decoded(), "{p:?}");
                let again = Canonical::parse(c.forward()).unwrap();
                assert_eq!(
                    (again.decoded(), again.forward()),
                    (c.decoded(), c.forward())
                );
            }
            if depth < 4 {
                stack.extend(
                    PIECES
                        .iter()
                        .map(|piece| (format!("{p}{piece}"), depth + 1)),
                );
            }
        }
        assert!(accepted > 1000, "{accepted}");
    }

    #[test]
    fn changes_are_only_what_differs_from_the_input() {
        assert_eq!(
            Canonical::parse("/a/b").unwrap().into_changes(),
            (None, None)
        );
        assert_eq!(
            Canonical::parse("/a%62").unwrap().into_changes(),
            (Some("/ab".into()), Some("/ab".into()))
        );
    }

    #[test]
    fn targets_lose_their_query_and_absolute_form() {
        assert_eq!(target_path("/a/b?x=/../y"), Ok("/a/b"));
        assert_eq!(target_path("/a#f"), Ok("/a"));
        assert_eq!(target_path("http://h:80/a/b?q"), Ok("/a/b"));
        assert_eq!(target_path("HTTPS://h"), Ok("/"));
        assert_eq!(target_path("http://h?q"), Ok("/"));
        assert_eq!(target_path("*"), Err(Ambiguous::NotOriginForm));
        assert_eq!(target_path("ftp://h/a"), Err(Ambiguous::NotOriginForm));
        assert_eq!(target_path("h:443"), Err(Ambiguous::NotOriginForm));
        assert_eq!(target_path(""), Err(Ambiguous::NotOriginForm));
    }

    #[test]
    fn with_path_keeps_scheme_authority_and_query() {
        let u: Uri = "http://h:8/a%62?x=%2e".parse().unwrap();
        assert_eq!(with_path(&u, "/ab").unwrap(), "http://h:8/ab?x=%2e");
        let u: Uri = "/a%62".parse().unwrap();
        assert_eq!(with_path(&u, "/ab").unwrap(), "/ab");
    }
}
