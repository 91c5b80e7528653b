//! Access-rule path matching (`stonegate::access_rules`) against
//! keystonemiddleware's `_path_matches`, rebuilt here as it is written:
//! `{tag}` and a single `*` become `[^/]+`, `**` becomes `.*`, anything else
//! is itself, anchored at both ends — with one documented difference: a
//! literal is matched literally (keystonemiddleware pastes it into the regex
//! unescaped, so `.` matches any character; README: Access rules), so here
//! it is `regex::escape`d.
//!
//! Input: pattern NUL path. Patterns with an unbalanced `{`/`}` are skipped
//! (keystonemiddleware's tokenizer drops the brace, stonegate keeps it as a
//! literal: neither is a rule Keystone would store). Paths are the decoded
//! paths stonegate decides on: no control characters (refused as ambiguous
//! before any rule is looked at).
//!
//! Invariants: `path_matches` agrees with the reference; a compiled
//! `Pattern` agrees with `path_matches`; when `captures` returns segments,
//! the path matches and each captured segment is non-empty and holds no `/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stonegate::access_rules::{path_matches, Pattern};

/// keystonemiddleware's translation (auth_token/__init__.py `_path_matches`),
/// literals escaped.
fn reference(pattern: &str) -> Option<regex::Regex> {
    let mut re = String::from("(?s)^");
    let b: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            '{' => {
                let end = b[i..].iter().position(|&c| c == '}')?;
                re.push_str("[^/]+");
                i += end + 1;
            }
            '}' => return None,
            '*' if b.get(i + 1) == Some(&'*') => {
                re.push_str(".*");
                i += 2;
            }
            '*' => {
                re.push_str("[^/]+");
                i += 1;
            }
            c => {
                re.push_str(&regex::escape(&c.to_string()));
                i += 1;
            }
        }
    }
    re.push('$');
    regex::Regex::new(&re).ok()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((pattern, path)) = text.split_once('\0') else {
        return;
    };
    if pattern.len() > 256 || path.len() > 1024 || path.chars().any(char::is_control) {
        return;
    }
    // A `{` inside a tag is keystonemiddleware's literal-less `[^}]*`.
    let Some(want) = reference(pattern) else {
        return;
    };
    let got = path_matches(path, pattern);
    assert_eq!(got, want.is_match(path), "pattern {pattern:?} path {path:?}");
    let compiled = Pattern::new(pattern);
    assert_eq!(compiled.matches(path), got, "Pattern::matches differs from path_matches");
    if let Some(caps) = compiled.captures(path) {
        assert!(got, "captures without a match");
        for (name, seg) in caps {
            assert!(!seg.is_empty() && !seg.contains('/'), "{{{name}}} captured {seg:?}");
        }
    } else {
        assert!(!got, "a match without captures");
    }
});
