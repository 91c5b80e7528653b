//! Per-route authorization with oslo.policy rules (`[authorization]`).
//!
//! Each `[[authorization.rules]]` entry names methods, a path pattern (the
//! `[routes]` syntax, matched on the same canonical decoded path) and a check
//! in oslo.policy's language ([`check`]), which may use the named rules of a
//! service's own policy file ([`file`](mod@file)). The first entry whose method and
//! path match decides the request; when none does, `default` decides.
//! Named path segments (`/v1/{project_id}/**`) are the target
//! (`%(project_id)s`, also `%(target.project_id)s`).
//!
//! The decision ([`Policy::decide`]) is computed on the identity the
//! validator already holds ([`eval::IdentityCredentials`], oslo.context's
//! `to_policy_values()`), with no Keystone call and no allocation beyond the
//! captures. Evaluation follows `oslo_policy._checks` ([`eval`]); what
//! oslo.policy would raise on is a denial.

pub mod check;
pub mod eval;
pub mod file;
pub mod settings;

use http::Method;

use crate::access_rules::Pattern;
pub use check::Check;
pub use eval::{Credentials, EvalError, IdentityCredentials, Rules, Target};
pub use settings::{RuleSection, Section};

/// The label of the decision taken when no rule matches.
pub const DEFAULT_LABEL: &str = "default";

/// What an unmatched request gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultDecision {
    /// Allowed (authentication is all it needs).
    Allow,
    /// Denied (403).
    Deny,
}

/// One `[[authorization.rules]]` entry, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The name decisions are counted and refused under.
    pub name: String,
    /// The methods it applies to (`None`: every method).
    pub methods: Option<Vec<Method>>,
    /// The path pattern, on the canonical decoded path.
    pub pattern: Pattern,
    /// The check, parsed.
    pub check: Check,
}

impl Rule {
    /// The target when the entry applies to `method` + `path` (its captures).
    fn applies<'r, 'p>(
        &'r self,
        method: &Method,
        path: &'p str,
    ) -> Option<Vec<(&'r str, &'p str)>> {
        if !self.methods.as_ref().is_none_or(|m| m.contains(method)) {
            return None;
        }
        if self.pattern.has_captures() {
            self.pattern.captures(path)
        } else {
            self.pattern.matches(path).then(Vec::new)
        }
    }
}

/// The compiled `[authorization]` section.
#[derive(Debug, Clone)]
pub struct Policy {
    /// What unmatched requests get.
    pub default: DefaultDecision,
    /// The entries, in order: the first that matches decides.
    pub rules: Vec<Rule>,
    /// The named rules of the policy file (empty without one).
    pub named: Rules,
}

/// A decision, with the name of the rule that took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'p> {
    /// The request may proceed.
    Allow {
        /// The rule's name, or [`DEFAULT_LABEL`].
        rule: &'p str,
    },
    /// The request is refused (403).
    Deny {
        /// The rule's name, or [`DEFAULT_LABEL`].
        rule: &'p str,
        /// Why the check could not be evaluated, when it could not.
        error: Option<EvalError>,
    },
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    /// The name of the rule that decided.
    pub fn rule(&self) -> &str {
        match self {
            Decision::Allow { rule } | Decision::Deny { rule, .. } => rule,
        }
    }
}

impl Policy {
    /// Decides `method` + `path` (the canonical decoded path) for `creds`.
    pub fn decide(&self, creds: &dyn Credentials, method: &Method, path: &str) -> Decision<'_> {
        self.decide_traced(creds, method, path, &mut eval::NoTrace, &mut |_, _| {})
    }

    fn decide_traced(
        &self,
        creds: &dyn Credentials,
        method: &Method,
        path: &str,
        trace: &mut impl eval::Trace,
        tried: &mut impl FnMut(&Rule, bool),
    ) -> Decision<'_> {
        // A forward-auth request without its original path (or method)
        // cannot be matched: it is refused whatever `default` says.
        if !path.starts_with('/') {
            return Decision::Deny {
                rule: DEFAULT_LABEL,
                error: Some(EvalError::Unsupported(
                    "the request's original path is unknown".into(),
                )),
            };
        }
        let Some((rule, captures)) = self.rules.iter().find_map(|r| {
            let applies = r.applies(method, path);
            tried(r, applies.is_some());
            applies.map(|c| (r, c))
        }) else {
            return match self.default {
                DefaultDecision::Allow => Decision::Allow {
                    rule: DEFAULT_LABEL,
                },
                DefaultDecision::Deny => Decision::Deny {
                    rule: DEFAULT_LABEL,
                    error: None,
                },
            };
        };
        let target = Target {
            captures: &captures,
        };
        match eval::evaluate(&rule.check, &target, creds, &self.named, trace) {
            Ok(true) => Decision::Allow { rule: &rule.name },
            Ok(false) => Decision::Deny {
                rule: &rule.name,
                error: None,
            },
            Err(e) => Decision::Deny {
                rule: &rule.name,
                error: Some(e),
            },
        }
    }

    /// Decides as [`Policy::decide`] and says why, line by line, as
    /// `oslopolicy-checker` does: each entry tried and whether its method
    /// and path matched, then each check of the deciding one with its result.
    pub fn explain(&self, creds: &dyn Credentials, method: &Method, path: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut trace = Lines::default();
        let decision = self.decide_traced(creds, method, path, &mut trace, &mut |r, applies| {
            let methods = r.methods.as_ref().map_or("*".to_owned(), |m| {
                m.iter().map(Method::as_str).collect::<Vec<_>>().join(",")
            });
            let why = if applies {
                let captures = r.pattern.captures(path).unwrap_or_default();
                let target: Vec<String> =
                    captures.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!(
                    "matches; target {{{}}}; check: {}",
                    target.join(", "),
                    r.check
                )
            } else if !r.methods.as_ref().is_none_or(|m| m.contains(method)) {
                format!("method {method} is not one of {methods}")
            } else {
                format!("path {path} does not match {}", r.pattern.as_str())
            };
            lines.push(format!(
                "rule {:?} ({methods} {}): {why}",
                r.name,
                r.pattern.as_str()
            ));
        });
        lines.extend(trace.lines.into_iter().map(|(depth, text, result)| {
            format!(
                "  {}{text} -> {}",
                "  ".repeat(depth),
                result.unwrap_or_default()
            )
        }));
        lines.push(match &decision {
            Decision::Allow { rule } if *rule == DEFAULT_LABEL => {
                "decision: allow (no rule matches; default = \"allow\")".to_owned()
            }
            Decision::Deny { rule, .. } if *rule == DEFAULT_LABEL => {
                "decision: deny (no rule matches; default = \"deny\")".to_owned()
            }
            Decision::Allow { rule } => format!("decision: allow (rule {rule:?})"),
            Decision::Deny { rule, error: None } => format!("decision: deny (rule {rule:?})"),
            Decision::Deny {
                rule,
                error: Some(e),
            } => format!("decision: deny (rule {rule:?}: {e})"),
        });
        lines
    }
}

/// The checks evaluated, for [`Policy::explain`].
#[derive(Default)]
struct Lines {
    lines: Vec<(usize, String, Option<String>)>,
}

impl eval::Trace for Lines {
    fn enter(&mut self, depth: usize, check: &Check, resolved: Option<&str>) -> usize {
        let text = match (check, resolved) {
            (Check::Rule(name), Some(r)) if r != name => format!("{check} (unknown: rule:{r})"),
            (Check::Rule(_), None) => format!("{check} (unknown rule)"),
            _ => check.to_string(),
        };
        self.lines.push((depth, text, None));
        self.lines.len() - 1
    }

    fn exit(&mut self, slot: usize, result: &Result<bool, EvalError>) {
        if let Some(line) = self.lines.get_mut(slot) {
            line.2 = Some(match result {
                Ok(b) => b.to_string(),
                Err(e) => format!("error ({e})"),
            });
        }
    }
}

#[cfg(test)]
mod tests;
