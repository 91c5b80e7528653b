//! oslo.policy's check language, parsed exactly as `oslo_policy._parser`
//! does: the same tokenizer (whitespace split, leading `(` and trailing `)`
//! peeled off, `and`/`or`/`not` in any case, quoted strings), the same greedy
//! shift-reduce parser (so `a or b and c` is `a or (b and c)`, `not` binds
//! tightest), the same fall-backs (a check without `:` is `!`, a rule that
//! does not reduce is `!`, the empty rule is `@`), and the same printed form
//! (`BaseCheck.__str__`), so parse → print → parse is stable.
//!
//! Where oslo.policy only logs (a malformed check, a rule that does not
//! parse, a check stonegate cannot evaluate), [`parse`] also returns a note,
//! so a configuration can refuse it with the key that has it.

use std::fmt;

/// A parsed check, as oslo.policy's `BaseCheck` tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// `@`: always passes (also the empty rule).
    True,
    /// `!`: never passes (also a malformed check, or a rule that does not parse).
    False,
    /// `rule:<name>`: the named rule of the policy file.
    Rule(String),
    /// `role:<name>`: the credentials hold that role (case-insensitive).
    Role(String),
    /// `<kind>:<match>`: a credential field (or a literal) equals `match`
    /// with the target's values substituted (`%(name)s`).
    Generic {
        /// The credential path (`user_id`, `token.a.b`) or a literal (`True`, `'x'`, `1`).
        kind: String,
        /// What it must equal, after `%(name)s` substitution.
        matched: String,
    },
    /// `http:` / `https:`: oslo.policy's external checks (a network call per
    /// decision); stonegate does not make them and denies.
    External {
        /// `http` or `https`.
        kind: String,
        /// The URL as written.
        matched: String,
    },
    /// `not <check>`.
    Not(Box<Check>),
    /// `a and b and ...`.
    And(Vec<Check>),
    /// `a or b or ...`.
    Or(Vec<Check>),
}

impl fmt::Display for Check {
    /// oslo.policy's `__str__`: `@`, `!`, `kind:match`, `not x`, `(a and b)`,
    /// `(a or b)`. One difference, so that parse → print → parse is stable:
    /// a check that reads like a quoted string (`'a:b'`, which oslo.policy
    /// parses from `('a:b')` but then prints in a form it reads as a string)
    /// is printed in parentheses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::True => f.write_str("@"),
            Check::False => f.write_str("!"),
            Check::Rule(m) => leaf(f, "rule", m),
            Check::Role(m) => leaf(f, "role", m),
            Check::Generic { kind, matched } | Check::External { kind, matched } => {
                leaf(f, kind, matched)
            }
            Check::Not(c) => write!(f, "not {c}"),
            Check::And(cs) => join(f, cs, " and "),
            Check::Or(cs) => join(f, cs, " or "),
        }
    }
}

fn leaf(f: &mut fmt::Formatter<'_>, kind: &str, matched: &str) -> fmt::Result {
    // The printed text is `kind:matched`: its first and last characters.
    let first = kind.chars().next().unwrap_or(':');
    let last = matched.chars().next_back().unwrap_or(':');
    if first == last && matches!(first, '\'' | '"') {
        write!(f, "({kind}:{matched})")
    } else {
        write!(f, "{kind}:{matched}")
    }
}

fn join(f: &mut fmt::Formatter<'_>, checks: &[Check], op: &str) -> fmt::Result {
    f.write_str("(")?;
    for (i, c) in checks.iter().enumerate() {
        if i > 0 {
            f.write_str(op)?;
        }
        write!(f, "{c}")?;
    }
    f.write_str(")")
}

impl Check {
    /// The names of the rules this check refers to (`rule:<name>`), in order.
    pub fn rule_refs(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.walk(&mut |c| {
            if let Check::Rule(name) = c {
                out.push(name.as_str());
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut impl FnMut(&'a Check)) {
        f(self);
        match self {
            Check::Not(c) => c.walk(f),
            Check::And(cs) | Check::Or(cs) => cs.iter().for_each(|c| c.walk(f)),
            Check::True
            | Check::False
            | Check::Rule(_)
            | Check::Role(_)
            | Check::Generic { .. }
            | Check::External { .. } => {}
        }
    }
}

/// A rule as parsed: the check oslo.policy would build, and what it would
/// only have logged (empty for a well-formed rule).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The check tree.
    pub check: Check,
    /// Each part oslo.policy turns into `!` (or stonegate cannot evaluate), said once.
    pub notes: Vec<String>,
}

/// Parses a rule in the policy language (`oslo_policy._parser._parse_text_rule`).
pub fn parse(rule: &str) -> Parsed {
    let mut notes = Vec::new();
    if rule.is_empty() {
        return Parsed {
            check: Check::True,
            notes,
        };
    }
    let mut stack: Vec<Item> = Vec::new();
    for token in tokenize(rule, &mut notes) {
        stack.push(token);
        reduce(&mut stack);
    }
    let check = match stack.pop() {
        Some(Item::Check(c)) if stack.is_empty() => c,
        Some(Item::AndExpr(cs)) if stack.is_empty() => Check::And(cs),
        Some(Item::OrExpr(cs)) if stack.is_empty() => Check::Or(cs),
        _ => {
            notes.push("does not parse (unbalanced parentheses, a dangling and/or/not, or a quoted string): oslo.policy reads the whole rule as \"!\"".into());
            Check::False
        }
    };
    Parsed { check, notes }
}

/// Parses the old list-of-lists syntax of policy files
/// (`oslo_policy._parser._parse_list_rule`): the outer list is joined by
/// `or`, each inner list (or bare string) by `and`, each string one check.
pub fn parse_list(rule: &[ListItem], notes: &mut Vec<String>) -> Check {
    if rule.is_empty() {
        return Check::True;
    }
    let mut or_list = Vec::new();
    for inner in rule {
        let and_list: Vec<Check> = match inner {
            ListItem::One(s) => vec![parse_check(s, notes)],
            ListItem::All(v) if v.is_empty() => continue,
            ListItem::All(v) => v.iter().map(|s| parse_check(s, notes)).collect(),
        };
        or_list.push(if and_list.len() == 1 {
            and_list.into_iter().next().unwrap_or(Check::False)
        } else {
            Check::And(and_list)
        });
    }
    match or_list.len() {
        0 => Check::False,
        1 => or_list.pop().unwrap_or(Check::False),
        _ => Check::Or(or_list),
    }
}

/// One element of a list-syntax rule: a bare string or a list of strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListItem {
    /// `"role:admin"`.
    One(String),
    /// `["role:admin", "project_id:%(project_id)s"]`.
    All(Vec<String>),
}

/// A token of the rule text, and a partly reduced expression on the stack.
#[derive(Debug)]
enum Item {
    Check(Check),
    AndExpr(Vec<Check>),
    OrExpr(Vec<Check>),
    And,
    Or,
    Not,
    Left,
    Right,
    Str,
}

/// `ParseState.reduce`: the greedy reductions, tried on the top of the stack
/// until none applies (three-token patterns first, then `not`).
fn reduce(stack: &mut Vec<Item>) {
    loop {
        let n = stack.len();
        if n >= 3 && reduce3(stack) {
            continue;
        }
        if n >= 2 && matches!(stack[n - 2..], [Item::Not, Item::Check(_)]) {
            if let Some(Item::Check(c)) = stack.pop() {
                stack.pop();
                stack.push(Item::Check(Check::Not(Box::new(c))));
                continue;
            }
        }
        return;
    }
}

fn reduce3(stack: &mut Vec<Item>) -> bool {
    use Item::{And, AndExpr, Left, Or, OrExpr, Right};
    let n = stack.len();
    let shape = match &stack[n - 3..] {
        [Left, Item::Check(_) | AndExpr(_) | OrExpr(_), Right] => 0,
        [Item::Check(_), And, Item::Check(_)] => 1,
        [AndExpr(_), And, Item::Check(_)] => 2,
        [OrExpr(_), And, Item::Check(_)] => 3,
        [Item::Check(_) | AndExpr(_), Or, Item::Check(_)] => 4,
        [OrExpr(_), Or, Item::Check(_)] => 5,
        _ => return false,
    };
    let (Some(top), Some(middle), Some(a)) = (stack.pop(), stack.pop(), stack.pop()) else {
        return false;
    };
    let c = into_check(top);
    let reduced = match (shape, a) {
        // `( x )`: the middle token becomes a check.
        (0, _) => Item::Check(into_check(middle)),
        (1, a) => Item::AndExpr(vec![into_check(a), c]),
        (2, AndExpr(mut cs)) => {
            cs.push(c);
            AndExpr(cs)
        }
        // `a or b and c`: the last check of the `or` is and-ed with `c`.
        (3, OrExpr(mut cs)) => {
            let and = match cs.pop() {
                Some(Check::And(mut inner)) => {
                    inner.push(c);
                    Check::And(inner)
                }
                Some(last) => Check::And(vec![last, c]),
                None => c,
            };
            cs.push(and);
            OrExpr(cs)
        }
        (4, a) => OrExpr(vec![into_check(a), c]),
        (5, OrExpr(mut cs)) => {
            cs.push(c);
            OrExpr(cs)
        }
        _ => Item::Check(Check::False),
    };
    stack.push(reduced);
    true
}

fn into_check(item: Item) -> Check {
    match item {
        Item::Check(c) => c,
        Item::AndExpr(cs) => Check::And(cs),
        Item::OrExpr(cs) => Check::Or(cs),
        Item::And | Item::Or | Item::Not | Item::Left | Item::Right | Item::Str => Check::False,
    }
}

/// Python's `str.isspace` (what `re.split(r'\s+')` splits on).
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}')
}

/// `_parse_tokenize`.
fn tokenize(rule: &str, notes: &mut Vec<String>) -> Vec<Item> {
    let mut out = Vec::new();
    for tok in rule.split(is_py_space).filter(|t| !t.is_empty()) {
        let clean = tok.trim_start_matches('(');
        out.extend((0..tok.len() - clean.len()).map(|_| Item::Left));
        if clean.is_empty() {
            continue;
        }
        let tok = clean;
        let clean = tok.trim_end_matches(')');
        let trail = tok.len() - clean.len();
        match clean.to_lowercase().as_str() {
            "and" => out.push(Item::And),
            "or" => out.push(Item::Or),
            "not" => out.push(Item::Not),
            _ if !clean.is_empty() => {
                let mut chars = tok.chars();
                let quoted = tok.chars().count() >= 2
                    && matches!(
                        (chars.next(), chars.next_back()),
                        (Some('"'), Some('"')) | (Some('\''), Some('\''))
                    );
                if quoted {
                    out.push(Item::Str);
                } else {
                    out.push(Item::Check(parse_check(clean, notes)));
                }
            }
            _ => {}
        }
        out.extend((0..trail).map(|_| Item::Right));
    }
    out
}

/// `_parse_check`: one check, `kind:match`.
pub fn parse_check(rule: &str, notes: &mut Vec<String>) -> Check {
    match rule {
        "!" => return Check::False,
        "@" => return Check::True,
        _ => {}
    }
    let Some((kind, matched)) = rule.split_once(':') else {
        notes.push(format!(
            "{rule:?} is not a check (kind:match, @ or !): oslo.policy reads it as \"!\""
        ));
        return Check::False;
    };
    if kind != "rule" {
        if let Err(why) = super::eval::format_ok(matched) {
            notes.push(format!("{rule:?}: {why}: it always denies"));
        }
    }
    let matched = matched.to_owned();
    match kind {
        "rule" => Check::Rule(matched),
        "role" => Check::Role(matched),
        "http" | "https" => {
            notes.push(format!(
                "{rule:?}: external http(s) checks are not supported (a network call per request): it always denies"
            ));
            Check::External {
                kind: kind.to_owned(),
                matched,
            }
        }
        _ => {
            if let Err(why) = super::eval::kind_of(kind) {
                notes.push(format!("{rule:?}: {why}: it always denies"));
            }
            Check::Generic {
                kind: kind.to_owned(),
                matched,
            }
        }
    }
}
