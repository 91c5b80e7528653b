//! The oslo.config INI reader with `$` substitution
//! (`config::oslo::sections`, `config::oslo::group_values`: what
//! `--oslo-config` reads), seeded with the golden files of
//! `tests/fixtures/oslo-golden/` (whose oslo.config results the unit test
//! `group_values_agree_with_oslo_config_on_the_golden_files` compares).
//!
//! Invariants:
//! - substitution agrees with CPython's `string.Template` as oslo.config
//!   uses it, written out here with its own pattern (`\$(?:(\$)|(id)|\{(id)\}|())`,
//!   `id = [_a-z][._a-z0-9]*`, case-insensitive) and oslo.config's lookup
//!   (`StrSubWrapper`: the value's own group, then `[DEFAULT]`; `g.name`
//!   in group `g`; the value found substituted in turn; `\$` read as `$$`):
//!   whatever stonegate reads is what oslo.config reads, and where
//!   oslo.config fails or keeps a `$` that starts no name, stonegate refuses;
//! - round trip: every value read, written back with `$` doubled, quoted
//!   and continued on indented lines, reads back unchanged.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use stonegate::config::oslo::{group_values, sections};

type Sections = Vec<(String, Vec<(String, String)>)>;

fn template() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        let id = r"[_a-z][\._a-z0-9]*";
        regex::Regex::new(&format!(r"(?i)\$(?:(\$)|({id})|\{{({id})\}}|())")).unwrap()
    })
}

/// What oslo.config returns for a value of `group`: `Some(value)`, or
/// `None` where it raises or leaves a `$` (both refusals for stonegate).
fn oslo(value: &str, group: &str, all: &Sections, depth: usize) -> Option<String> {
    if depth > 16 {
        return None;
    }
    let value = value.replace(r"\$", "$$");
    let mut out = String::new();
    let mut last = 0;
    for c in template().captures_iter(&value) {
        let m = c.get(0).unwrap();
        out.push_str(&value[last..m.start()]);
        last = m.end();
        if c.get(1).is_some() {
            out.push('$');
            continue;
        }
        let name = c.get(2).or(c.get(3))?.as_str(); // invalid: kept as `$` by oslo
        let get = |g: &str, o: &str| {
            let (_, entries) = all.iter().find(|(n, _)| n == g)?;
            entries.iter().rev().find(|(k, _)| k == o).map(|(_, v)| (g.to_owned(), v.clone()))
        };
        let found = match name.split_once('.') {
            Some((g, o)) => get(g, o),
            None => get(group, name),
        }
        .or_else(|| get("DEFAULT", name))?;
        out.push_str(&oslo(&found.1, &found.0, all, depth + 1)?);
    }
    out.push_str(&value[last..]);
    Some(out)
}

/// An INI line that writes `value` back: `$` doubled, quoted, later lines
/// of the value indented.
fn render(key: &str, value: &str) -> String {
    let v = value.replace('$', "$$");
    let mut lines = v.split('\n');
    let mut out = format!("{key} = \"{}\"\n", lines.next().unwrap_or_default());
    for l in lines {
        out.push_str(&format!("  {l}\n"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (Ok(all), Ok(values)) = (sections(text), group_values(text)) else {
        assert!(sections(text).is_err() && group_values(text).is_err(), "{text:?}");
        return;
    };
    let entries = all.iter().find(|(n, _)| n == "keystone_authtoken").map(|(_, e)| e.clone()).unwrap_or_default();
    let mut last: BTreeMap<&str, &str> = BTreeMap::new();
    for (k, v) in &entries {
        last.insert(k, v);
    }
    assert_eq!(values.keys().map(String::as_str).collect::<Vec<_>>(), last.keys().copied().collect::<Vec<_>>());
    for (key, raw) in &last {
        let reference = oslo(raw, "keystone_authtoken", &all, 0);
        match (&values[*key], &reference) {
            (Ok(v), _) => assert_eq!(Some(v), reference.as_ref(), "{key} = {raw:?} in {text:?}"),
            (Err(why), Some(r)) => panic!("{key} = {raw:?}: refused ({why}), oslo.config reads {r:?}"),
            (Err(_), None) => {}
        }
    }
    // Round trip of every value read (a `\` before `$` cannot be written
    // back in oslo.config's syntax: `\$` always reads as `$$`).
    let mut back = String::from("[keystone_authtoken]\n");
    let mut expect = BTreeMap::new();
    for (key, v) in &values {
        let Ok(v) = v else { continue };
        if v.contains('\\') || key.starts_with(|c: char| c == '[' || c.is_whitespace()) {
            continue;
        }
        back.push_str(&render(key, v));
        expect.insert(key.clone(), v.clone());
    }
    let again = group_values(&back).unwrap_or_else(|e| panic!("{back:?}: {e}"));
    for (key, v) in &expect {
        assert_eq!(again.get(key).and_then(|r| r.as_ref().ok()), Some(v), "{key} from {back:?}");
    }
});
