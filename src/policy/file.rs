//! A service's policy file (`policy.yaml`, or the older `policy.json`),
//! read as `oslo_policy.policy.Rules.load` reads it: YAML (a superset of
//! JSON), a mapping of rule names to rules, each a check string, or the old
//! list-of-lists syntax; a `null` rule is `@` (oslo.policy's empty list);
//! an empty file has no rules.

use std::collections::HashMap;

use super::{
    check::{self, Check, ListItem},
    eval::Rules,
};

/// Why a policy file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read {path:?}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Not YAML/JSON, not a mapping, or a rule that is neither a string nor a list.
    #[error("{0}")]
    Invalid(String),
}

/// A loaded policy file: its rules, and each rule oslo.policy would only
/// log about (malformed checks, parse failures, cycles), by rule name.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The rules.
    pub rules: Rules,
    /// `(rule name, what is wrong)`, sorted by name.
    pub notes: Vec<(String, String)>,
}

/// Reads the policy file at `path`.
pub fn load(path: &str) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    parse(&text)
}

/// Parses a policy file's text.
pub fn parse(text: &str) -> Result<Loaded, Error> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).map_err(|e| Error::Invalid(e.to_string()))?;
    let map = match doc {
        serde_yaml_ng::Value::Null => serde_yaml_ng::Mapping::new(),
        serde_yaml_ng::Value::Mapping(m) => m,
        _ => {
            return Err(Error::Invalid(
                "is not a mapping of rule names to rules".into(),
            ))
        }
    };
    let mut rules = HashMap::with_capacity(map.len());
    let mut notes = Vec::new();
    for (k, v) in map {
        let name = match k {
            serde_yaml_ng::Value::String(s) => s,
            other => {
                return Err(Error::Invalid(format!(
                    "rule name {other:?} is not a string"
                )))
            }
        };
        let mut rule_notes = Vec::new();
        let check = rule(&name, v, &mut rule_notes)?;
        notes.extend(rule_notes.into_iter().map(|n| (name.clone(), n)));
        rules.insert(name, check);
    }
    let rules = Rules::new(rules);
    for name in rules.cycles() {
        notes.push((
            name.to_owned(),
            "is part of a cyclical reference (rule:...): a request that reaches the cycle is denied"
                .into(),
        ));
    }
    notes.sort();
    Ok(Loaded { rules, notes })
}

fn rule(name: &str, v: serde_yaml_ng::Value, notes: &mut Vec<String>) -> Result<Check, Error> {
    use serde_yaml_ng::Value;
    let not_a_rule = || {
        Error::Invalid(format!(
            "rule {name:?} is neither a check string nor a list of checks"
        ))
    };
    Ok(match v {
        Value::String(s) => {
            let parsed = check::parse(&s);
            notes.extend(parsed.notes);
            parsed.check
        }
        Value::Null => Check::True,
        Value::Sequence(items) => {
            let mut list = Vec::with_capacity(items.len());
            for item in items {
                list.push(match item {
                    Value::String(s) => ListItem::One(s),
                    Value::Sequence(inner) => ListItem::All(
                        inner
                            .into_iter()
                            .map(|s| match s {
                                Value::String(s) => Ok(s),
                                _ => Err(not_a_rule()),
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    _ => return Err(not_a_rule()),
                });
            }
            check::parse_list(&list, notes)
        }
        _ => return Err(not_a_rule()),
    })
}
