//! Application-credential access rules, enforced as keystonemiddleware does
//! (`validate_allowed_request`, `_path_matches`): a token restricted by rules
//! may only call `method` + `path` combinations of this service that a rule allows.
//!
//! Pattern syntax: `*` and `{name}` match one path segment (`[^/]+`), `**`
//! matches anything (`.*`). Deviation, on purpose: keystonemiddleware pastes the
//! other characters into a regex unescaped (so `.` matches any character);
//! stonegate matches them literally, which is never more permissive.

use crate::identity::{AccessRule, Identity};

/// Whether the request may proceed under the token's access rules.
///
/// `path` is the request's canonical decoded path ([`crate::path::Canonical::decoded`]):
/// no dot segment or encoded separator is left in it, so it names the resource
/// the upstream serves. `service_type` is this service's catalog type; `service_token_valid` is
/// whether the request carries a valid service token (keystonemiddleware only
/// checks for presence; stonegate requires validity).
pub fn allowed(
    identity: &Identity,
    method: &str,
    path: &str,
    service_type: Option<&str>,
    service_token_valid: bool,
) -> bool {
    let Some(rules) = identity
        .application_credential
        .as_ref()
        .and_then(|a| a.access_rules.as_ref())
    else {
        return true;
    };
    let Some(service_type) = service_type else {
        return false;
    };
    if service_type == "identity" && method == "GET" && path.ends_with("/v3/auth/tokens") {
        return true;
    }
    if !identity
        .catalog_types()
        .iter()
        .any(|t| **t == *service_type)
    {
        return false;
    }
    if service_token_valid {
        return true;
    }
    rules
        .iter()
        .any(|r| rule_matches(r, method, path, service_type))
}

fn rule_matches(rule: &AccessRule, method: &str, path: &str, service_type: &str) -> bool {
    rule.method == method && rule.service == service_type && path_matches(path, &rule.path)
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(u8),
    /// One segment; `{name}` names it (a capture).
    Segment(Option<Box<str>>),
    Anything,
}

/// A compiled path pattern (`*`/`{x}` one segment, `**` anything, the rest literal).
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pieces: Vec<Piece>,
    source: String,
    /// Bytes of `source` before its first `*` or `{x}`: a path must start with them.
    prefix: usize,
}

impl Pattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> Self {
        let pieces = compile(pattern);
        let prefix = (pieces.iter())
            .take_while(|p| matches!(p, Piece::Literal(_)))
            .count();
        Self {
            pieces,
            source: pattern.to_owned(),
            prefix,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` matches as a whole.
    pub fn matches(&self, path: &str) -> bool {
        // Literal-only patterns (the usual public route) need no DP.
        if self.prefix == self.pieces.len() {
            return self.source.as_bytes() == path.as_bytes();
        }
        // Most patterns start with a literal (`/v2.1/`): most paths fail there.
        if !path
            .as_bytes()
            .starts_with(&self.source.as_bytes()[..self.prefix])
        {
            return false;
        }
        matches_pieces(&self.pieces, path)
    }

    /// Whether the pattern names any segment (`{name}`).
    pub fn has_captures(&self) -> bool {
        (self.pieces.iter()).any(|p| matches!(p, Piece::Segment(Some(_))))
    }

    /// The named segments (`{name}`) of `path` when it matches as a whole,
    /// each `(name, segment)`; where a path could match in several ways,
    /// each named segment takes as much as it can, from the left, and `**`
    /// as little.
    pub fn captures<'s, 'p>(&'s self, path: &'p str) -> Option<Vec<(&'s str, &'p str)>> {
        let (pieces, p) = (&self.pieces, path.as_bytes());
        if !p.starts_with(&self.source.as_bytes()[..self.prefix]) {
            return None;
        }
        let (n, w) = (pieces.len(), p.len() + 1);
        // can[i * w + j]: pieces[i..] match p[j..].
        let mut can = vec![false; (n + 1) * w];
        can[n * w + p.len()] = true;
        for i in (0..n).rev() {
            for j in (0..=p.len()).rev() {
                let next = |k: usize| can[(i + 1) * w + k];
                can[i * w + j] = match &pieces[i] {
                    Piece::Literal(c) => p.get(j) == Some(c) && next(j + 1),
                    Piece::Anything => next(j) || (j < p.len() && can[i * w + j + 1]),
                    Piece::Segment(_) => (j + 1..=segment_end(p, j))
                        .take_while(|&k| k <= p.len())
                        .any(next),
                };
            }
        }
        if !can[0] {
            return None;
        }
        let mut out = Vec::new();
        let mut j = 0;
        for (i, piece) in pieces.iter().enumerate() {
            let next = |k: usize| can[(i + 1) * w + k];
            match piece {
                Piece::Literal(_) => j += 1,
                Piece::Anything => j = (j..=p.len()).find(|&k| next(k))?,
                Piece::Segment(name) => {
                    let ends = || (j + 1..=segment_end(p, j)).rev().filter(|&k| next(k));
                    let k =
                        (ends().find(|&k| path.is_char_boundary(k))).or_else(|| ends().next())?;
                    if let (Some(name), Some(segment)) = (name, path.get(j..k)) {
                        out.push((&**name, segment));
                    }
                    j = k;
                }
            }
        }
        Some(out)
    }
}

/// Where the segment starting at `j` ends (the next `/`, or the end).
fn segment_end(p: &[u8], j: usize) -> usize {
    (j..p.len()).find(|&k| p[k] == b'/').unwrap_or(p.len())
}

fn compile(pattern: &str) -> Vec<Piece> {
    let b = pattern.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'*' if b.get(i + 1) == Some(&b'*') => {
                out.push(Piece::Anything);
                i += 2;
            }
            b'*' => {
                out.push(Piece::Segment(None));
                i += 1;
            }
            b'{' => match b[i..].iter().position(|&c| c == b'}') {
                Some(end) => {
                    let name = &pattern[i + 1..i + end];
                    out.push(Piece::Segment((!name.is_empty()).then(|| name.into())));
                    i += end + 1;
                }
                None => {
                    out.push(Piece::Literal(b'{'));
                    i += 1;
                }
            },
            c => {
                out.push(Piece::Literal(c));
                i += 1;
            }
        }
    }
    out
}

/// Whether `path` matches `pattern` as a whole (dynamic programming: linear in
/// pattern × path, no backtracking blow-up).
pub fn path_matches(path: &str, pattern: &str) -> bool {
    matches_pieces(&compile(pattern), path)
}

fn matches_pieces(pieces: &[Piece], path: &str) -> bool {
    let p = path.as_bytes();
    // ok[j]: the pieces so far can match p[..j].
    let mut ok = vec![false; p.len() + 1];
    ok[0] = true;
    // Two rows, reused: no allocation per piece.
    let mut next = vec![false; p.len() + 1];
    for piece in pieces {
        next.fill(false);
        match piece {
            Piece::Literal(c) => {
                for (j, &byte) in p.iter().enumerate() {
                    if ok[j] && byte == *c {
                        next[j + 1] = true;
                    }
                }
            }
            Piece::Anything => {
                let mut reach = false;
                for (n, &o) in next.iter_mut().zip(&ok) {
                    reach |= o;
                    *n = reach;
                }
            }
            Piece::Segment(_) => {
                for (j, _) in ok.iter().enumerate().take(p.len()).filter(|(_, &o)| o) {
                    let mut k = j;
                    while k < p.len() && p[k] != b'/' {
                        k += 1;
                        next[k] = true;
                    }
                }
            }
        }
        std::mem::swap(&mut ok, &mut next);
    }
    ok[p.len()]
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn patterns_match_like_keystonemiddleware() {
        assert!(path_matches("/v2.1/servers", "/v2.1/servers"));
        assert!(!path_matches("/v2.1/servers/x", "/v2.1/servers"));
        assert!(path_matches("/v2.1/servers/abc", "/v2.1/servers/*"));
        assert!(path_matches(
            "/v2.1/servers/abc",
            "/v2.1/servers/{server_id}"
        ));
        assert!(!path_matches("/v2.1/servers/abc/action", "/v2.1/servers/*"));
        assert!(!path_matches("/v2.1/servers/", "/v2.1/servers/*"));
        assert!(path_matches("/v2.1/servers/abc/action", "/v2.1/servers/**"));
        assert!(path_matches("/v2.1/servers/", "/v2.1/servers/**"));
        assert!(path_matches("/a/x/b/y", "/a/*/b/{id}"));
        assert!(path_matches("/anything/at/all", "**"));
    }

    #[test]
    fn compiled_patterns_agree_with_path_matches() {
        for (path, pattern) in [
            ("/healthz", "/healthz"),
            ("/healthz/", "/healthz"),
            ("/v2.1/servers/abc", "/v2.1/servers/*"),
            ("/a/b/c", "/a/**"),
            ("/x", "/{id}"),
        ] {
            assert_eq!(
                super::Pattern::new(pattern).matches(path),
                path_matches(path, pattern),
                "{path} {pattern}"
            );
        }
    }

    #[test]
    fn captures_name_the_segments_of_a_match() {
        let p = super::Pattern::new("/v1/{project_id}/servers/{id}/**");
        assert!(p.has_captures());
        assert_eq!(
            p.captures("/v1/p1/servers/s9/action"),
            Some(vec![("project_id", "p1"), ("id", "s9")])
        );
        assert_eq!(p.captures("/v1/p1/servers/"), None);
        assert_eq!(p.captures("/v2/p1/servers/s9/x"), None);
        let p = super::Pattern::new("/a/*/{b}");
        assert_eq!(p.captures("/a/x/y"), Some(vec![("b", "y")]));
        assert_eq!(super::Pattern::new("/h").captures("/h"), Some(vec![]));
        // Every match agrees with `matches`, captures or not.
        for (path, pattern) in [
            ("/a/b/c", "/a/**"),
            ("/x", "/{id}"),
            ("/x/", "/{id}"),
            ("/éé/x", "/{a}{b}/x"),
            ("/v1/p/x.json", "/v1/{p}/{f}.json"),
        ] {
            let c = super::Pattern::new(pattern);
            assert_eq!(
                c.captures(path).is_some(),
                c.matches(path),
                "{path} {pattern}"
            );
        }
    }

    #[test]
    fn dots_are_literal_not_regex() {
        assert!(!path_matches("/v2x1/servers", "/v2.1/servers"));
    }
}
