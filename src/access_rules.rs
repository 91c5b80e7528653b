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
        .application_credential()
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
        if !(path.as_bytes()).starts_with(&self.source.as_bytes()[..self.prefix]) {
            return None;
        }
        let mut out = Vec::new();
        let mut search = Search::new(&self.pieces, path, Some(&mut out));
        search.from(self.prefix, self.prefix).then_some(out)
    }
}

/// A depth-first match of pieces against a path, taking each choice in
/// [`Pattern::captures`]'s order (a segment longest first, `**` shortest
/// first) and remembering which (piece, position) states cannot match, so
/// a state is tried at most once: linear in the path for the usual
/// pattern, never exponential, and without the full pattern × path table
/// that dynamic programming fills.
struct Search<'s, 'p, 'o> {
    pieces: &'s [Piece],
    path: &'p str,
    /// Where named segments go (`None`: only whether it matches).
    out: Option<&'o mut Vec<(&'s str, &'p str)>>,
    /// Bit `i * (len + 1) + j`: `pieces[i..]` cannot match `path[j..]`.
    /// Allocated at the first dead end (most matches meet none).
    dead: Vec<u64>,
    /// Per piece: where a `**` there is known to fail from (a `**` at `j`
    /// covers every later start, so it fails from `j` on). Allocated with
    /// `dead`; absent means nothing known.
    dead_from: Vec<usize>,
    /// Calls: what the complexity test counts.
    #[cfg(test)]
    steps: usize,
}

impl<'s, 'p, 'o> Search<'s, 'p, 'o> {
    fn new(
        pieces: &'s [Piece],
        path: &'p str,
        out: Option<&'o mut Vec<(&'s str, &'p str)>>,
    ) -> Self {
        Self {
            pieces,
            path,
            out,
            dead: Vec::new(),
            dead_from: Vec::new(),
            #[cfg(test)]
            steps: 0,
        }
    }

    /// Whether `pieces[i..]` match `path[j..]` (recording named segments).
    fn from(&mut self, mut i: usize, mut j: usize) -> bool {
        #[cfg(test)]
        {
            self.steps += 1;
        }
        let (pieces, p) = (self.pieces, self.path.as_bytes());
        // A literal run has one way to match: no state, no recursion.
        let piece = loop {
            match pieces.get(i) {
                None => return j == p.len(),
                Some(Piece::Literal(c)) if p.get(j) == Some(c) => (i, j) = (i + 1, j + 1),
                Some(Piece::Literal(_)) => return false,
                Some(piece) => break piece,
            }
        };
        let state = i * (p.len() + 1) + j;
        if self
            .dead
            .get(state / 64)
            .is_some_and(|w| w >> (state % 64) & 1 == 1)
        {
            return false;
        }
        let mark = self.out.as_ref().map_or(0, |o| o.len());
        let found = match piece {
            Piece::Segment(name) => {
                // Non-empty, within one segment; an end on a character
                // boundary first, so a named segment is a whole string.
                let end = segment_end(p, j);
                let path = self.path;
                let ends = (j + 1..=end).rev();
                let boundaries = ends.clone().filter(|&k| path.is_char_boundary(k));
                let inside = ends.filter(|&k| !path.is_char_boundary(k));
                boundaries.chain(inside).any(|k| {
                    if let (Some(name), Some(segment), Some(out)) =
                        (name, path.get(j..k), self.out.as_mut())
                    {
                        out.push((&**name, segment));
                    }
                    self.from(i + 1, k) || {
                        self.unrecord(mark);
                        false
                    }
                })
            }
            // `**` (a literal is never here: runs are matched above). A
            // scan stops where an earlier one at this piece failed: every
            // start there was tried, so each `**` is one pass over the path,
            // whatever the path (an attacker's) holds.
            _ => {
                let stop = (self.dead_from.get(i).copied()).unwrap_or(usize::MAX);
                (j..=p.len())
                    .take_while(|&k| k < stop)
                    .any(|k| self.from(i + 1, k))
            }
        };
        if !found {
            self.unrecord(mark);
            if self.dead.is_empty() {
                self.dead = vec![0; (self.pieces.len() + 1) * (p.len() + 1) / 64 + 1];
                self.dead_from = vec![usize::MAX; self.pieces.len()];
            }
            self.dead[state / 64] |= 1 << (state % 64);
            if matches!(piece, Piece::Anything) {
                self.dead_from[i] = self.dead_from[i].min(j);
            }
        }
        found
    }

    fn unrecord(&mut self, mark: usize) {
        if let Some(out) = self.out.as_mut() {
            out.truncate(mark);
        }
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

/// Whether `path` matches `pattern` as a whole (a memoised depth-first
/// search: no backtracking blow-up).
pub fn path_matches(path: &str, pattern: &str) -> bool {
    matches_pieces(&compile(pattern), path)
}

fn matches_pieces(pieces: &[Piece], path: &str) -> bool {
    Search::new(pieces, path, None).from(0, 0)
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

    /// The dynamic-programming matcher this module used before the
    /// memoised search: the whole pieces × path table, then the captures
    /// read off it left to right. The reference the search must agree with.
    fn table_captures<'s, 'p>(
        pieces: &'s [super::Piece],
        path: &'p str,
    ) -> Option<Vec<(&'s str, &'p str)>> {
        use super::{segment_end, Piece};
        let p = path.as_bytes();
        let (n, w) = (pieces.len(), p.len() + 1);
        let mut can = vec![false; (n + 1) * w];
        can[n * w + p.len()] = true;
        for i in (0..n).rev() {
            for j in (0..=p.len()).rev() {
                let next = |k: usize| can[(i + 1) * w + k];
                can[i * w + j] = match &pieces[i] {
                    Piece::Literal(c) => p.get(j) == Some(c) && next(j + 1),
                    Piece::Anything => next(j) || (j < p.len() && can[i * w + j + 1]),
                    Piece::Segment(_) => (j + 1..=segment_end(p, j)).any(next),
                };
            }
        }
        if !can[0] {
            return None;
        }
        let (mut out, mut j) = (Vec::new(), 0);
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

    #[test]
    fn search_agrees_with_the_full_table_on_every_short_path() {
        let patterns = [
            "**",
            "*",
            "/{a}",
            "/**",
            "/a/**",
            "/**/b",
            "/**a**",
            "/{x}/**/{y}",
            "/{x}{y}",
            "/{x}a{y}/**",
            "/*/{x}",
            "/a{x}",
            "/{x}.b",
            "/é{x}",
            "/{x}é",
            "/**/{x}/**/b",
            "{x}/{y}/{z}",
            "/a/b",
            "/**{x}",
            "{x}**",
            "/{x}**{y}",
        ];
        let alphabet = ["a", "b", "/", ".", "é"];
        let mut paths = vec![String::new()];
        let mut last = paths.clone();
        for _ in 0..5 {
            last = (last.iter())
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            paths.extend(last.iter().cloned());
        }
        let mut matched = 0;
        for pattern in patterns {
            let compiled = super::Pattern::new(pattern);
            for path in &paths {
                let expected = table_captures(&compiled.pieces, path);
                assert_eq!(compiled.captures(path), expected, "{path:?} {pattern:?}");
                assert_eq!(
                    compiled.matches(path),
                    expected.is_some(),
                    "{path:?} {pattern:?}"
                );
                assert_eq!(path_matches(path, pattern), expected.is_some());
                matched += usize::from(expected.is_some());
            }
        }
        // The paths exercise both outcomes for these patterns.
        assert!(
            matched > 1000 && matched < patterns.len() * paths.len() / 2,
            "{matched}"
        );
    }

    #[test]
    fn an_attackers_long_path_costs_linear_work_not_quadratic() {
        // Every `**` could end at every position and none leads to a match:
        // the search must not retry a `**` from each start.
        let pieces = super::compile("/**/a/**/b/**/c");
        let path = format!("/{}", "a/".repeat(4000));
        let mut search = super::Search::new(&pieces, &path, None);
        assert!(!search.from(0, 0));
        let len = path.len();
        assert!(
            search.steps <= 4 * len,
            "{} calls for {len} bytes",
            search.steps
        );
        // Still finds the match when there is one, at the far end.
        let path = format!("{path}b/x/c");
        assert!(super::Search::new(&pieces, &path, None).from(0, 0));
    }

    #[test]
    fn dots_are_literal_not_regex() {
        assert!(!path_matches("/v2x1/servers", "/v2.1/servers"));
    }
}
