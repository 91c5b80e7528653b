//! `[authorization]`: per-route oslo.policy rules, as written ([`Section`])
//! and checked (the [`Policy`] itself).

use http::Method;
use serde::Deserialize;

use super::{check, file, DefaultDecision, Policy, Rule, Rules, DEFAULT_LABEL};
use crate::{
    access_rules::Pattern,
    settings::{problem, Problem},
};

/// `[authorization]`: who may call which route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `allow` or `deny`: what a request no rule matches gets.
    pub default: String,
    /// A service's `policy.yaml` (or `policy.json`): its named rules are
    /// usable as `rule:<name>`.
    pub policy_file: Option<String>,
    /// The rules, in order: the first whose methods and path match decides.
    #[serde(default)]
    pub rules: Vec<RuleSection>,
}

/// One `[[authorization.rules]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// The name decisions are counted and refused under (default `rules[<index>]`).
    pub name: Option<String>,
    /// HTTP methods (default: every method).
    pub methods: Option<Vec<String>>,
    /// Path pattern (`*`/`{x}` one segment, `**` anything; `{x}` is the target's `x`).
    pub path: String,
    /// An oslo.policy check string (`role:admin`, `rule:<name>`, ...).
    pub check: String,
}

impl Section {
    /// Checks the section, recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Option<Policy> {
        let before = p.len();
        let default = match self.default.as_str() {
            "allow" => DefaultDecision::Allow,
            "deny" => DefaultDecision::Deny,
            other => {
                problem(
                    p,
                    "authorization.default",
                    &format!("{other:?} is neither \"allow\" nor \"deny\""),
                );
                DefaultDecision::Deny
            }
        };
        let named = match &self.policy_file {
            None => Rules::default(),
            Some(path) => match file::load(path) {
                Ok(loaded) => {
                    for (rule, note) in &loaded.notes {
                        problem(
                            p,
                            "authorization.policy_file",
                            &format!("{path:?}: rule {rule:?} {note}; fix the rule in the file"),
                        );
                    }
                    loaded.rules
                }
                Err(e) => {
                    problem(
                        p,
                        "authorization.policy_file",
                        &format!("{e}: name a readable policy.yaml or policy.json"),
                    );
                    Rules::default()
                }
            },
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        for (i, r) in self.rules.iter().enumerate() {
            if let Some(rule) = r.build(i, &named, p) {
                if rules.iter().any(|o: &Rule| o.name == rule.name) {
                    problem(
                        p,
                        &format!("authorization.rules[{i}].name"),
                        &format!(
                            "{:?} names an earlier rule too: give each rule its own name",
                            rule.name
                        ),
                    );
                }
                rules.push(rule);
            }
        }
        (p.len() == before).then_some(Policy {
            default,
            rules,
            named,
        })
    }
}

impl RuleSection {
    fn build(&self, i: usize, named: &Rules, p: &mut Vec<Problem>) -> Option<Rule> {
        let key = format!("authorization.rules[{i}]");
        let before = p.len();
        let name = self.name.clone().unwrap_or_else(|| format!("rules[{i}]"));
        if name == DEFAULT_LABEL || name.is_empty() || name.len() > 64 {
            problem(
                p,
                &format!("{key}.name"),
                &format!("{name:?}: a rule name is 1 to 64 characters and not {DEFAULT_LABEL:?} (the unmatched requests' label)"),
            );
        }
        let methods = match &self.methods {
            None => None,
            Some(m) if m.is_empty() => {
                problem(
                    p,
                    &format!("{key}.methods"),
                    "is empty: list methods, or leave methods out for every method",
                );
                None
            }
            Some(m) => {
                let mut out = Vec::with_capacity(m.len());
                for (j, s) in m.iter().enumerate() {
                    match Method::from_bytes(s.to_ascii_uppercase().as_bytes()) {
                        Ok(method) => out.push(method),
                        Err(_) => problem(
                            p,
                            &format!("{key}.methods[{j}]"),
                            &format!("{s:?} is not an HTTP method"),
                        ),
                    }
                }
                Some(out)
            }
        };
        if !self.path.starts_with('/') {
            problem(
                p,
                &format!("{key}.path"),
                "must start with / (e.g. \"/v1/{project_id}/**\")",
            );
        }
        let parsed = check::parse(&self.check);
        for note in &parsed.notes {
            problem(
                p,
                &format!("{key}.check"),
                &format!("{:?}: {note}", self.check),
            );
        }
        for r in parsed.check.rule_refs() {
            if !named.contains(r) {
                problem(
                    p,
                    &format!("{key}.check"),
                    &format!(
                        "rule:{r} is not defined{}: define it in authorization.policy_file, or write the check itself",
                        if named.contains(super::eval::DEFAULT_RULE) {
                            " (oslo.policy would use the rule \"default\")"
                        } else {
                            " (oslo.policy would deny)"
                        }
                    ),
                );
            }
        }
        (p.len() == before).then(|| Rule {
            name,
            methods,
            pattern: Pattern::new(&self.path),
            check: parsed.check,
        })
    }
}
