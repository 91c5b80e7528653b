//! Arbitrary request paths through `path::Canonical::parse`. A path that is
//! accepted must leave nothing for any server to resolve, checked against
//! oracles written out here: RFC 3986 §5.2.4 `remove_dot_segments` and
//! slash merging (nginx `merge_slashes`) change neither the decoded path nor
//! the forwarded one; the forwarded path percent-decodes to the decoded one,
//! holds no escaped `/`, `\` or control byte, and is accepted again
//! unchanged; the decoded path has no `\`, control character or `;`-dot
//! segment; and a path without `%` is forwarded exactly as it came.
#![no_main]

#[path = "reference/percent.rs"]
mod percent;

use libfuzzer_sys::fuzz_target;
use percent::percent_decode;
use stonegate::path::Canonical;

/// RFC 3986 §5.2.4, step by step.
fn remove_dot_segments(input: &str) -> String {
    let mut input = input.to_owned();
    let mut out = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../").or_else(|| input.strip_prefix("./")) {
            input = rest.to_owned();
        } else if input.starts_with("/./") {
            input.replace_range(..3, "/");
        } else if input == "/." {
            input = "/".into();
        } else if input.starts_with("/../") {
            input.replace_range(..4, "/");
            let cut = out.rfind('/').unwrap_or(0);
            out.truncate(cut);
        } else if input == "/.." {
            input = "/".into();
            let cut = out.rfind('/').unwrap_or(0);
            out.truncate(cut);
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |i| i + start);
            out.push_str(&input[..end]);
            input.replace_range(..end, "");
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Canonical::parse(raw) else {
        return;
    };
    let (decoded, forward) = (c.decoded(), c.forward());
    for p in [decoded, forward] {
        assert!(p.starts_with('/'), "{raw:?}");
        assert_eq!(remove_dot_segments(p), p, "dot segments left in {p:?} from {raw:?}");
        assert!(!p.contains("//"), "empty segment in {p:?} from {raw:?}");
        assert!(
            !p.contains('\\') && !p.chars().any(|ch| ch.is_ascii_control()),
            "{p:?} from {raw:?}"
        );
        for seg in p.split('/') {
            let head = seg.split(';').next().unwrap_or_default();
            assert!(head != "." && head != "..", "{seg:?} in {p:?} from {raw:?}");
            assert!(!seg.starts_with(';'), "{seg:?} in {p:?} from {raw:?}");
        }
    }
    assert_eq!(percent_decode(forward.as_bytes()), decoded.as_bytes(), "{raw:?}");
    let lower = forward.to_ascii_lowercase();
    for bad in ["%2f", "%5c", "%00", "%2e"] {
        assert!(!lower.contains(bad), "{bad} in {forward:?} from {raw:?}");
    }
    let again = Canonical::parse(forward).expect("the forwarded path is accepted again");
    assert_eq!((again.decoded(), again.forward()), (decoded, forward), "{raw:?}");
    if !raw.contains('%') {
        assert_eq!((decoded, forward), (raw, raw));
    }
});
