//! The INI dialect of oslo.config (`oslo_config/iniparser.py`) and of
//! paste.deploy files, read as data: sections of `key = value` entries, each
//! with the line it came from.
//!
//! What oslo.config does, done the same way:
//! - `#` and `;` start a comment only at the beginning of a line (a `#` later
//!   in a line is part of the value);
//! - `key = value` or `key: value` (whichever separator comes first);
//!   surrounding whitespace is dropped, and one pair of matching quotes
//!   around the whole value is removed;
//! - an indented line continues the previous value (joined with `\n`);
//! - a section or key may repeat: sections merge, and for single-valued
//!   options the last value wins (both are kept here, in order).

use std::fmt;

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as written (trimmed).
    pub key: String,
    /// The value, unquoted; continuation lines joined with `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// A section with its entries in file order (repeated sections merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The name between the brackets.
    pub name: String,
    /// Entries in file order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The last value given for `key`, with its entry.
    pub fn last(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }
}

/// A parse error: the line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Parses INI text into its sections, in order of first appearance.
pub fn parse(text: &str) -> Result<Vec<Section>, ParseError> {
    let mut sections: Vec<Section> = Vec::new();
    let mut current: Option<usize> = None;
    // Whether the previous line was an assignment an indented line may continue.
    let mut continuable = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end();
        if line.trim().is_empty() {
            continuable = false;
            continue;
        }
        let first = line.as_bytes()[0];
        if first == b'#' || first == b';' {
            continuable = false;
            continue;
        }
        if first == b' ' || first == b'\t' {
            let entry = current
                .filter(|_| continuable)
                .and_then(|s| sections[s].entries.last_mut());
            match entry {
                Some(e) => {
                    if !e.value.is_empty() {
                        e.value.push('\n');
                    }
                    e.value.push_str(line.trim());
                    continue;
                }
                None => {
                    return Err(ParseError {
                        line: line_no,
                        message: "indented line continues no value".into(),
                    })
                }
            }
        }
        if first == b'[' {
            let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                return Err(ParseError {
                    line: line_no,
                    message: format!("invalid section header {line:?}"),
                });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(ParseError {
                    line: line_no,
                    message: "empty section name".into(),
                });
            }
            current = Some(match sections.iter().position(|s| s.name == name) {
                Some(at) => at,
                None => {
                    sections.push(Section {
                        name: name.to_owned(),
                        entries: Vec::new(),
                    });
                    sections.len() - 1
                }
            });
            continuable = false;
            continue;
        }
        let Some(at) = current else {
            return Err(ParseError {
                line: line_no,
                message: "assignment before any [section]".into(),
            });
        };
        let (key, value) = split_assignment(line).ok_or_else(|| ParseError {
            line: line_no,
            // Not repeated: the line may hold (part of) a secret.
            message: "not a section, comment or `key = value`".into(),
        })?;
        if key.is_empty() {
            return Err(ParseError {
                line: line_no,
                message: "empty key".into(),
            });
        }
        sections[at].entries.push(Entry {
            key: key.to_owned(),
            value,
            line: line_no,
        });
        continuable = true;
    }
    Ok(sections)
}

/// `key = value` / `key: value`, split at the first separator; the value
/// trimmed and unquoted as oslo.config does.
fn split_assignment(line: &str) -> Option<(&str, String)> {
    let at = match (line.find('='), line.find(':')) {
        (None, None) => return None,
        (Some(e), None) => e,
        (None, Some(c)) => c,
        (Some(e), Some(c)) => e.min(c),
    };
    let key = line[..at].trim();
    let mut value = line[at + 1..].trim();
    let b = value.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[0] == b[b.len() - 1] {
        value = &value[1..value.len() - 1];
    }
    Some((key, value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sections_comments_quotes_and_continuations() {
        let text = "\
# a comment
[DEFAULT]
debug = true

[keystone_authtoken]
; another comment
auth_url = http://keystone:5000/v3
password = \"p#ss = word\"
memcached_servers = a:11211,
    b:11211
www_authenticate_uri: http://public:5000
[DEFAULT]
log_dir=/var/log
";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "DEFAULT");
        assert_eq!(s[0].entries.len(), 2, "repeated sections merge");
        let k = &s[1];
        assert_eq!(k.last("password").unwrap().value, "p#ss = word");
        assert_eq!(k.last("password").unwrap().line, 8);
        assert_eq!(
            k.last("memcached_servers").unwrap().value,
            "a:11211,\nb:11211"
        );
        assert_eq!(
            k.last("www_authenticate_uri").unwrap().value,
            "http://public:5000"
        );
    }

    #[test]
    fn first_separator_wins_and_last_value_wins() {
        let s = parse("[s]\nurl = http://h:1/x\nurl = http://h:2/y\nk: v=w\n").unwrap();
        assert_eq!(s[0].last("url").unwrap().value, "http://h:2/y");
        assert_eq!(s[0].last("k").unwrap().value, "v=w");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("key = v\n").unwrap_err().line, 1);
        assert_eq!(parse("[s]\n\n  stray\n").unwrap_err().line, 3);
        assert_eq!(parse("[s]\njust words\n").unwrap_err().line, 2);
        assert_eq!(parse("[s\n").unwrap_err().line, 1);
    }
}
