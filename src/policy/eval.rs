//! Evaluating a [`Check`] as `oslo_policy._checks` does: `rule:` looks the
//! name up in the policy file (an unknown name falls back to the rule named
//! `default` when there is one, else fails, as `Rules.__missing__`),
//! `role:` compares case-insensitively, a generic `kind:match` compares
//! `match` (with `%(name)s` taken from the target) to the credential at the
//! dotted path `kind` (`GenericCheck._find_in_dict`: a list matches when any
//! element does), or to `kind` itself when it is a Python literal (`True`,
//! `'admin'`, `1`).
//!
//! Values compare as Python's `str()` renders them (`True`, `None`, `1`), so
//! `is_admin_project:True` and `domain_id:None` mean what they mean to
//! oslo.policy. A missing target key or credential fails the check; what
//! oslo.policy would raise on (a rule cycle, indexing into a string, a
//! format it cannot apply) is an [`EvalError`], and the whole decision is
//! a denial, never the check's negation.

use std::{borrow::Cow, collections::HashMap};

use super::check::Check;
use crate::identity::{Identity, Scope};

/// What oslo.policy would raise on: the request is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A rule that refers back to itself (Python: `RecursionError`).
    #[error("rule {0:?} refers to itself (a cycle)")]
    Cycle(String),
    /// A check stonegate cannot evaluate (`http:`, an unknown literal, a format spec).
    #[error("{0}")]
    Unsupported(String),
    /// A credential path that goes through a string, number or null (Python: `TypeError`).
    #[error("{0}")]
    Type(String),
}

/// A credential value, borrowed from an identity or a JSON document.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    /// `None`.
    Null,
    /// `True` / `False`.
    Bool(bool),
    /// A string.
    Str(&'a str),
    /// A list of strings (roles).
    Strs(&'a [std::sync::Arc<str>]),
    /// Any JSON value (credentials given as JSON).
    Json(&'a serde_json::Value),
}

/// The credentials a check reads (`creds` of oslo.policy: a dict).
pub trait Credentials {
    /// The top-level value named `key`, `None` when there is no such key.
    fn get(&self, key: &str) -> Option<Value<'_>>;
}

/// The credential keys of oslo.context's `to_policy_values()`, as a
/// keystonemiddleware-protected service builds them from the headers
/// stonegate injects (`RequestContext.from_environ`), plus `system`, which
/// `Enforcer.enforce` copies from `system_scope`.
pub const CREDENTIAL_KEYS: [&str; 14] = [
    "user_id",
    "user_domain_id",
    "system_scope",
    "domain_id",
    "project_id",
    "project_domain_id",
    "roles",
    "is_admin_project",
    "service_user_id",
    "service_user_domain_id",
    "service_project_id",
    "service_project_domain_id",
    "service_roles",
    "system",
];

/// The credentials of a request, read from its validated identities
/// without copying: the user token's and, when a valid service token came
/// with it, the service token's.
#[derive(Debug, Clone, Copy)]
pub struct IdentityCredentials<'a> {
    /// The user token's identity (`None`: no valid user token, under
    /// `delay_auth_decision`).
    pub user: Option<&'a Identity>,
    /// The valid service token's identity.
    pub service: Option<&'a Identity>,
}

const NO_ROLES: &[std::sync::Arc<str>] = &[];

fn opt(v: Option<&str>) -> Value<'_> {
    v.map_or(Value::Null, Value::Str)
}

fn project(id: Option<&Identity>) -> Option<&crate::identity::Project> {
    match id.map(|i| &i.scope) {
        Some(Scope::Project(p)) => Some(p),
        _ => None,
    }
}

impl Credentials for IdentityCredentials<'_> {
    fn get(&self, key: &str) -> Option<Value<'_>> {
        let (u, s) = (self.user, self.service);
        let system = matches!(u.map(|i| &i.scope), Some(Scope::System));
        Some(match key {
            "user_id" => opt(u.and_then(|i| i.user.id.as_deref())),
            "user_domain_id" => opt(u.and_then(|i| i.user_domain.id.as_deref())),
            "system_scope" => opt(system.then_some("all")),
            "system" if system => Value::Str("all"),
            "domain_id" => match u.map(|i| &i.scope) {
                Some(Scope::Domain(d)) => opt(d.id.as_deref()),
                _ => Value::Null,
            },
            "project_id" => opt(project(u).and_then(|p| p.project.id.as_deref())),
            "project_domain_id" => opt(project(u).and_then(|p| p.domain.id.as_deref())),
            "roles" => Value::Strs(u.map_or(NO_ROLES, |i| &i.roles)),
            // Without an identity oslo.context assumes the admin project
            // (no X-Is-Admin-Project header); stonegate does not.
            "is_admin_project" => Value::Bool(u.is_some_and(|i| i.is_admin_project)),
            "service_user_id" => opt(s.and_then(|i| i.user.id.as_deref())),
            "service_user_domain_id" => opt(s.and_then(|i| i.user_domain.id.as_deref())),
            "service_project_id" => opt(project(s).and_then(|p| p.project.id.as_deref())),
            "service_project_domain_id" => opt(project(s).and_then(|p| p.domain.id.as_deref())),
            "service_roles" => Value::Strs(s.map_or(NO_ROLES, |i| &i.roles)),
            _ => return None,
        })
    }
}

/// Credentials given as a JSON object (`stonegate policy check --credentials`).
impl Credentials for serde_json::Map<String, serde_json::Value> {
    fn get(&self, key: &str) -> Option<Value<'_>> {
        match self.get(key) {
            Some(v) => Some(Value::Json(v)),
            // `enforce` copies a true `system_scope` to `system`.
            None if key == "system" => match self.get("system_scope") {
                Some(v) if json_truthy(v) => Some(Value::Json(v)),
                _ => None,
            },
            None => None,
        }
    }
}

fn json_truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
    }
}

/// The target of a decision: the path captures of the matched route
/// (`/v1/{project_id}/**`), each readable as `%(project_id)s` and as
/// `%(target.project_id)s` (Keystone's spelling).
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    /// Capture name and the (decoded) path segment it matched.
    pub captures: &'a [(&'a str, &'a str)],
}

impl<'a> Target<'a> {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        let bare = key.strip_prefix("target.");
        self.captures
            .iter()
            .find(|(name, _)| *name == key || Some(*name) == bare)
            .map(|(_, v)| *v)
    }
}

/// The named rules of a policy file, with oslo.policy's default rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    rules: HashMap<String, Check>,
}

/// The rule an unknown `rule:` name falls back to (oslo.policy's
/// `policy_default_rule`).
pub const DEFAULT_RULE: &str = "default";

impl Rules {
    /// A store of `rules`.
    pub fn new(rules: HashMap<String, Check>) -> Self {
        Self { rules }
    }

    /// The rule `name` resolves to, and the name it was found under
    /// (`Rules.__missing__`: an unknown name is the `default` rule when there is one).
    pub fn resolve<'s>(&'s self, name: &'s str) -> Option<(&'s str, &'s Check)> {
        match self.rules.get_key_value(name) {
            Some((k, c)) => Some((k.as_str(), c)),
            None if name != DEFAULT_RULE => self
                .rules
                .get_key_value(DEFAULT_RULE)
                .map(|(k, c)| (k.as_str(), c)),
            None => None,
        }
    }

    /// Whether a rule named `name` is defined.
    pub fn contains(&self, name: &str) -> bool {
        self.rules.contains_key(name)
    }

    /// The rules, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Check)> {
        self.rules.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Names of the rules that take part in a cycle (`Enforcer._cycle_check`),
    /// sorted: oslo.policy warns about them; evaluating one that recurses is
    /// a denial.
    pub fn cycles(&self) -> Vec<&str> {
        let mut out: Vec<&str> = (self.rules.iter())
            .filter(|(_, c)| self.cycle_from(c, &mut Vec::new()))
            .map(|(k, _)| k.as_str())
            .collect();
        out.sort_unstable();
        out
    }

    fn cycle_from<'s>(&'s self, check: &'s Check, seen: &mut Vec<&'s str>) -> bool {
        match check {
            Check::Rule(name) => {
                if seen.contains(&name.as_str()) {
                    return true;
                }
                seen.push(name);
                self.rules
                    .get(name)
                    .is_some_and(|c| self.cycle_from(c, seen))
            }
            Check::Not(c) => self.cycle_from(c, seen),
            Check::And(cs) | Check::Or(cs) => {
                cs.iter().any(|c| self.cycle_from(c, &mut seen.clone()))
            }
            Check::True
            | Check::False
            | Check::Role(_)
            | Check::Generic { .. }
            | Check::External { .. } => false,
        }
    }
}

/// Receives each check evaluated, for `stonegate policy check`; the
/// request path uses [`NoTrace`].
pub trait Trace {
    /// A check at `depth` is about to be evaluated; returns its slot.
    fn enter(&mut self, depth: usize, check: &Check, resolved: Option<&str>) -> usize;
    /// The check in `slot` gave `result`.
    fn exit(&mut self, slot: usize, result: &Result<bool, EvalError>);
}

/// No trace (the request path).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTrace;

impl Trace for NoTrace {
    #[inline]
    fn enter(&mut self, _: usize, _: &Check, _: Option<&str>) -> usize {
        0
    }
    #[inline]
    fn exit(&mut self, _: usize, _: &Result<bool, EvalError>) {}
}

/// Evaluates `check` for `creds` on `target`, with `rules` for `rule:` names.
pub fn evaluate(
    check: &Check,
    target: &Target<'_>,
    creds: &dyn Credentials,
    rules: &Rules,
    trace: &mut impl Trace,
) -> Result<bool, EvalError> {
    let mut stack = Vec::new();
    Eval {
        target,
        creds,
        rules,
    }
    .check(check, 0, &mut stack, trace)
}

struct Eval<'e, 't> {
    target: &'e Target<'t>,
    creds: &'e dyn Credentials,
    rules: &'e Rules,
}

impl<'e> Eval<'e, '_> {
    fn check(
        &self,
        check: &'e Check,
        depth: usize,
        stack: &mut Vec<&'e str>,
        trace: &mut impl Trace,
    ) -> Result<bool, EvalError> {
        let resolved = match check {
            Check::Rule(name) => self.rules.resolve(name),
            _ => None,
        };
        let slot = trace.enter(depth, check, resolved.map(|(n, _)| n));
        let result = match check {
            Check::True => Ok(true),
            Check::False => Ok(false),
            Check::Not(c) => self.check(c, depth + 1, stack, trace).map(|b| !b),
            Check::And(cs) => {
                let mut all = Ok(true);
                for c in cs {
                    match self.check(c, depth + 1, stack, trace) {
                        Ok(true) => {}
                        other => {
                            all = other;
                            break;
                        }
                    }
                }
                all
            }
            Check::Or(cs) => {
                let mut any = Ok(false);
                for c in cs {
                    match self.check(c, depth + 1, stack, trace) {
                        Ok(false) => {}
                        other => {
                            any = other;
                            break;
                        }
                    }
                }
                any
            }
            Check::Rule(_) => match resolved {
                None => Ok(false),
                Some((name, _)) if stack.contains(&name) => Err(EvalError::Cycle(name.into())),
                Some((name, rule)) => {
                    stack.push(name);
                    let r = self.check(rule, depth + 1, stack, trace);
                    stack.pop();
                    r
                }
            },
            Check::Role(m) => self.role(m),
            Check::Generic { kind, matched } => self.generic(kind, matched),
            Check::External { kind, .. } => Err(EvalError::Unsupported(format!(
                "{kind}: checks are not supported"
            ))),
        };
        trace.exit(slot, &result);
        result
    }

    /// `RoleCheck`.
    fn role(&self, m: &str) -> Result<bool, EvalError> {
        let Some(m) = format(m, self.target)? else {
            return Ok(false);
        };
        let m = m.to_lowercase();
        Ok(match self.creds.get("roles") {
            None => false,
            Some(Value::Strs(roles)) => roles.iter().any(|r| lower_eq(r, &m)),
            Some(Value::Str(s)) => s.chars().any(|c| c.to_lowercase().eq(m.chars())),
            Some(Value::Json(v)) => match v {
                serde_json::Value::Array(a) => {
                    let mut found = false;
                    for r in a {
                        match r.as_str() {
                            Some(r) => found |= r.to_lowercase() == m,
                            None => return Err(type_error("roles holds a non-string")),
                        }
                    }
                    found
                }
                serde_json::Value::String(s) => s.chars().any(|c| c.to_lowercase().eq(m.chars())),
                serde_json::Value::Object(o) => o.keys().any(|r| r.to_lowercase() == m),
                _ => return Err(type_error("roles is not a list")),
            },
            Some(Value::Null | Value::Bool(_)) => return Err(type_error("roles is not a list")),
        })
    }

    /// `GenericCheck`.
    fn generic(&self, kind: &str, m: &str) -> Result<bool, EvalError> {
        let Some(m) = format(m, self.target)? else {
            return Ok(false);
        };
        match kind_of(kind).map_err(EvalError::Unsupported)? {
            Kind::Literal(value) => Ok(*m == value),
            Kind::Path => {
                let mut segments = kind.split('.');
                let first = segments.next().unwrap_or_default();
                let rest: Vec<&str> = segments.collect();
                match self.creds.get(first) {
                    None => Ok(false),
                    Some(Value::Strs(list)) => {
                        for v in list {
                            if find(Value::Str(v), &rest, &m)? {
                                return Ok(true);
                            }
                        }
                        Ok(false)
                    }
                    Some(Value::Json(serde_json::Value::Array(list))) => {
                        for v in list {
                            if find(Value::Json(v), &rest, &m)? {
                                return Ok(true);
                            }
                        }
                        Ok(false)
                    }
                    Some(v) => find(v, &rest, &m),
                }
            }
        }
    }
}

/// `r.lower() == m` for an already lower-cased `m`, without allocating for ASCII.
fn lower_eq(r: &str, m: &str) -> bool {
    if r.is_ascii() && m.is_ascii() {
        r.eq_ignore_ascii_case(m)
    } else {
        r.to_lowercase() == m
    }
}

fn type_error(what: &str) -> EvalError {
    EvalError::Type(what.into())
}

/// `GenericCheck._find_in_dict` below the top level.
fn find(value: Value<'_>, path: &[&str], m: &str) -> Result<bool, EvalError> {
    let Some((key, rest)) = path.split_first() else {
        return Ok(m == py_str(value));
    };
    let next = match value {
        Value::Json(serde_json::Value::Object(o)) => match o.get(*key) {
            None => return Ok(false),
            Some(v) => v,
        },
        Value::Null | Value::Bool(_) | Value::Str(_) | Value::Strs(_) | Value::Json(_) => {
            return Err(type_error(&format!(
                "credential path goes through a value that is not a dict at {key:?}"
            )))
        }
    };
    match next {
        serde_json::Value::Array(list) => {
            for v in list {
                if find(Value::Json(v), rest, m)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        v => find(Value::Json(v), rest, m),
    }
}

/// `key = value` for each credential of [`CREDENTIAL_KEYS`] that `creds`
/// has, values as Python's `str()` shows them (for `stonegate policy check`).
pub fn describe(creds: &dyn Credentials) -> Vec<String> {
    CREDENTIAL_KEYS
        .iter()
        .filter_map(|k| creds.get(k).map(|v| format!("{k} = {}", py_str(v))))
        .collect()
}

/// Python's `str()` of a credential value.
fn py_str(value: Value<'_>) -> Cow<'_, str> {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Str(s) => s.into(),
        Value::Strs(list) => {
            let items: Vec<String> = list.iter().map(|s| py_repr_str(s)).collect();
            format!("[{}]", items.join(", ")).into()
        }
        Value::Json(v) => match v {
            serde_json::Value::String(s) => s.as_str().into(),
            v => py_repr(v).into(),
        },
    }
}

fn py_repr(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "None".into(),
        serde_json::Value::Bool(true) => "True".into(),
        serde_json::Value::Bool(false) => "False".into(),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => py_float(f),
            (None, None, None) => n.to_string(),
        },
        serde_json::Value::String(s) => py_repr_str(s),
        serde_json::Value::Array(a) => {
            let items: Vec<String> = a.iter().map(py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        serde_json::Value::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr_str(k), py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python's `repr()` of a string (quotes chosen as Python does).
fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr()` of a float.
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Shortest round-trip digits and the decimal exponent, as Python's repr.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.unsigned_abs())
    }
}

/// What a generic check's kind is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A dotted credential path (`user_id`, `token.roles.name`).
    Path,
    /// A Python literal, rendered as `str()` would (`True`, `admin`, `1`).
    Literal(String),
}

const PY_KEYWORDS: [&str; 32] = [
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "finally", "for", "from", "global", "if", "import", "in", "is", "lambda",
    "nonlocal", "not", "or", "pass", "raise", "return", "try", "while", "with", "yield",
];

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
        && !PY_KEYWORDS.contains(&s)
        && !matches!(s, "True" | "False" | "None")
}

fn is_decimal(s: &str) -> bool {
    s == "0"
        || (s.starts_with(|c: char| c.is_ascii_digit() && c != '0')
            && !s.ends_with('_')
            && !s.contains("__")
            && s.chars().all(|c| c.is_ascii_digit() || c == '_'))
}

/// Classifies a generic check's kind as `ast.literal_eval` would: a
/// literal, a name path (Python raises `ValueError`, and oslo.policy looks
/// the path up), or neither (Python raises `SyntaxError`, or stonegate
/// does not know the literal).
pub fn kind_of(kind: &str) -> Result<Kind, String> {
    match kind {
        "True" | "False" | "None" => return Ok(Kind::Literal(kind.to_owned())),
        _ => {}
    }
    // Name paths: identifiers joined by `.`, each maybe `-`-joined with
    // identifiers or integers (`a-b.c` is a Python expression, not a literal).
    let path = kind.split('.').all(|seg| {
        let mut parts = seg.split('-');
        parts.next().is_some_and(is_identifier) && parts.all(|p| is_identifier(p) || is_decimal(p))
    });
    if path {
        return Ok(Kind::Path);
    }
    let (sign, unsigned) = match kind.as_bytes().first() {
        Some(b'-') => ("-", &kind[1..]),
        Some(b'+') => ("", &kind[1..]),
        _ => ("", kind),
    };
    if is_decimal(unsigned) {
        let digits: String = unsigned.chars().filter(|c| *c != '_').collect();
        let sign = if digits == "0" { "" } else { sign };
        return Ok(Kind::Literal(format!("{sign}{digits}")));
    }
    if let Some(f) = float_literal(unsigned) {
        return Ok(Kind::Literal(py_float(if sign == "-" { -f } else { f })));
    }
    if sign.is_empty() && !kind.starts_with('+') {
        if let Some(s) = string_literal(kind) {
            return Ok(Kind::Literal(s));
        }
    }
    Err(format!(
        "{kind:?} is neither a credential name (user_id, token.a.b) nor a literal stonegate knows (True, False, None, an integer, a float, a quoted string)"
    ))
}

fn float_literal(s: &str) -> Option<f64> {
    let (mant, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let mant_ok = match mant.split_once('.') {
        Some((a, b)) => (digits(a) || a.is_empty()) && (digits(b) || b.is_empty()) && mant != ".",
        None => exp.is_some() && digits(mant),
    };
    let exp_ok = exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    if mant_ok && exp_ok {
        s.parse().ok()
    } else {
        None
    }
}

fn string_literal(s: &str) -> Option<String> {
    let s = s.strip_prefix(['u', 'U']).unwrap_or(s);
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(quote)?.strip_suffix(quote)?;
    if s.len() < 2 {
        return None;
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                _ => return None,
            },
            c if c == quote => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Whether `match % target` is a format stonegate applies (`%(name)s`, `%%`).
pub fn format_ok(m: &str) -> Result<(), String> {
    substitute(m, |_| Some(""))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `match % target`: `%(name)s` substituted, `%%` a `%`; `Ok(None)` when a
/// name is not in the target (Python's `KeyError`, the check fails).
fn format<'m>(m: &'m str, target: &Target<'_>) -> Result<Option<Cow<'m, str>>, EvalError> {
    substitute(m, |k| target.get(k))
}

fn substitute<'m, 'v>(
    m: &'m str,
    lookup: impl Fn(&str) -> Option<&'v str>,
) -> Result<Option<Cow<'m, str>>, EvalError> {
    if !m.contains('%') {
        return Ok(Some(Cow::Borrowed(m)));
    }
    let unsupported = || {
        EvalError::Unsupported(format!(
            "{m:?}: only %(name)s and %% substitutions are supported"
        ))
    };
    let mut out = String::with_capacity(m.len());
    let mut rest = m;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            out.push('%');
            rest = r;
            continue;
        }
        let r = rest.strip_prefix('(').ok_or_else(unsupported)?;
        // The key runs to the matching `)` (Python counts nested parentheses).
        let mut depth = 1;
        let end = r
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .ok_or_else(unsupported)?;
        let key = &r[..end];
        // Python looks the key up before it reads the conversion.
        let Some(value) = lookup(key) else {
            return Ok(None);
        };
        rest = r[end + 1..].strip_prefix('s').ok_or_else(unsupported)?;
        out.push_str(value);
    }
    out.push_str(rest);
    Ok(Some(Cow::Owned(out)))
}
