use std::sync::Arc;

use http::Method;

use super::{check::parse, eval, file, Check, Decision, IdentityCredentials, Section};
use crate::identity::{Identity, Named, Project, Scope};

fn printed(rule: &str) -> String {
    parse(rule).check.to_string()
}

#[test]
fn parses_as_oslo_policy_prints() {
    // Expected strings: str(_parser.parse_rule(rule)) in oslo.policy 6.0.1.
    for (rule, oslo) in [
        ("", "@"),
        ("   ", "!"),
        ("@", "@"),
        ("!", "!"),
        ("role:admin", "role:admin"),
        ("a:1 or b:2 and c:3", "(a:1 or (b:2 and c:3))"),
        ("a:1 and b:2 or c:3", "((a:1 and b:2) or c:3)"),
        ("not a:1 and b:2", "(not a:1 and b:2)"),
        ("a:1 AND NOT b:2", "(a:1 and not b:2)"),
        ("not not a:1", "not not a:1"),
        ("not (a:1 or b:2)", "not (a:1 or b:2)"),
        ("((a:1))", "a:1"),
        ("(a:1 or b:2) and c:3", "((a:1 or b:2) and c:3)"),
        (
            "a:1 or (b:2 and c:3) and d:4",
            "(a:1 or (b:2 and c:3 and d:4))",
        ),
        ("a:1 or b:2 or c:3", "(a:1 or b:2 or c:3)"),
        ("noColon or a:1", "(! or a:1)"),
        ("(a:1", "!"),
        ("a:1 and", "!"),
        ("'quoted'", "!"),
        ("a:1 or 'x'", "!"),
        ("project_id:%(project_id)s)", "!"),
        ("role:a\tor\nrole:b", "(role:a or role:b)"),
        ("is_admin:True", "is_admin:True"),
    ] {
        assert_eq!(printed(rule), oslo, "{rule:?}");
    }
}

#[test]
fn malformed_parts_are_noted() {
    assert!(parse("role:admin or project_id:%(project_id)s")
        .notes
        .is_empty());
    assert_eq!(parse("foo").notes.len(), 1);
    assert_eq!(parse("(role:a").notes.len(), 1);
    assert_eq!(parse("http://x:y").notes.len(), 1);
    assert_eq!(parse("2fa:x").notes.len(), 1);
    assert_eq!(parse("user_id:%(x)d").notes.len(), 1);
}

#[test]
fn parse_print_parse_is_stable() {
    for rule in [
        "a:1 or b:2 and not (c:3 or d:4) and e:5",
        "not (a:1 and b:2) or ((c:3))",
        "@ and ! or rule:x",
        "( ( a:b ) and ( c:d or e:f ) )",
        "('a:b')",
        "not ('a:b') and x:1",
        "(\"a:\")",
    ] {
        let once = parse(rule).check;
        let twice = parse(&once.to_string()).check;
        assert_eq!(once, twice, "{rule}");
    }
}

fn member(project: &str, roles: &[&str]) -> Identity {
    Identity {
        user: Named {
            id: Some("u1".into()),
            name: Some("alice".into()),
        },
        user_domain: Named {
            id: Some("default".into()),
            name: Some("Default".into()),
        },
        scope: Scope::Project(std::sync::Arc::new(Project {
            project: Named {
                id: Some(project.into()),
                name: Some("demo".into()),
            },
            domain: Named {
                id: Some("default".into()),
                name: Some("Default".into()),
            },
        })),
        roles: roles.iter().map(|r| std::sync::Arc::from(*r)).collect(),
        role_ids: Default::default(),
        is_admin_project: false,
        expires_at: i64::MAX,
        issued_at: 0,
        audit_ids: crate::identity::AuditIds::new(&["a"]),
        methods: vec!["password".into()].into(),
        catalog: None,
        extras: None,
        rendered: Default::default(),
    }
}

fn eval_on(rule: &str, id: &Identity, captures: &[(&str, &str)]) -> Result<bool, eval::EvalError> {
    let creds = IdentityCredentials {
        user: Some(id),
        service: None,
    };
    eval::evaluate(
        &parse(rule).check,
        &eval::Target { captures },
        &creds,
        &eval::Rules::default(),
        &mut eval::NoTrace,
    )
}

#[test]
fn checks_read_the_identity_as_oslo_context_does() {
    let id = member("p1", &["Member", "reader"]);
    let ok = |rule: &str| eval_on(rule, &id, &[("project_id", "p1")]);
    assert_eq!(
        ok("role:member"),
        Ok(true),
        "roles compare case-insensitively"
    );
    assert_eq!(
        ok("roles:member"),
        Ok(false),
        "a generic check is case-sensitive"
    );
    assert_eq!(ok("roles:Member"), Ok(true));
    assert_eq!(ok("project_id:%(project_id)s"), Ok(true));
    assert_eq!(ok("project_id:%(target.project_id)s"), Ok(true));
    assert_eq!(
        ok("project_id:%(other)s"),
        Ok(false),
        "a missing target key fails"
    );
    assert_eq!(ok("not project_id:%(other)s"), Ok(true));
    assert_eq!(ok("is_admin_project:False"), Ok(true));
    assert_eq!(ok("domain_id:None"), Ok(true), "absent values are None");
    assert_eq!(ok("system_scope:all"), Ok(false));
    assert_eq!(ok("system:all"), Ok(false));
    assert_eq!(ok("'p1':%(project_id)s"), Ok(true), "a literal kind");
    assert_eq!(ok("True:%(x)s"), Ok(false));
    assert_eq!(ok("nope:x"), Ok(false), "an unknown credential fails");
    assert!(
        ok("user_id.x:y").is_err(),
        "indexing a string raises in Python"
    );
    assert!(ok("not user_id.x:y").is_err(), "an error is never negated");
    let mut sys = member("p1", &["admin"]);
    sys.scope = Scope::System;
    assert_eq!(
        eval_on("system_scope:all and system:all", &sys, &[]),
        Ok(true)
    );
    assert_eq!(eval_on("project_id:None", &sys, &[]), Ok(true));
}

#[test]
fn named_rules_default_and_cycles_behave_as_oslo() {
    let loaded = file::parse(
        "admin: role:admin\nowner: project_id:%(project_id)s\nadmin_or_owner: rule:admin or rule:owner\n\
         loop_a: rule:loop_b\nloop_b: rule:loop_a or role:x\nopen:\nlist: [[\"role:admin\"], [\"role:reader\", \"rule:owner\"]]\n",
    )
    .unwrap();
    assert_eq!(loaded.rules.cycles(), vec!["loop_a", "loop_b"]);
    let id = member("p1", &["reader"]);
    let creds = IdentityCredentials {
        user: Some(&id),
        service: None,
    };
    let run = |rule: &str, rules: &eval::Rules| {
        eval::evaluate(
            &parse(rule).check,
            &eval::Target {
                captures: &[("project_id", "p1")],
            },
            &creds,
            rules,
            &mut eval::NoTrace,
        )
    };
    assert_eq!(run("rule:admin_or_owner", &loaded.rules), Ok(true));
    assert_eq!(run("rule:admin", &loaded.rules), Ok(false));
    assert_eq!(run("rule:unknown", &loaded.rules), Ok(false));
    assert_eq!(
        run("rule:open", &loaded.rules),
        Ok(true),
        "a null rule is @"
    );
    assert_eq!(run("rule:list", &loaded.rules), Ok(true));
    assert!(matches!(
        run("not rule:loop_a", &loaded.rules),
        Err(eval::EvalError::Cycle(_))
    ));
    // With a `default` rule, unknown names fall back to it (Rules.__missing__).
    let with_default = file::parse("default: role:reader\n").unwrap();
    assert_eq!(run("rule:unknown", &with_default.rules), Ok(true));
}

fn policy(toml_text: &str) -> Result<super::Policy, Vec<crate::settings::Problem>> {
    let section: Section = toml::from_str(toml_text).unwrap();
    let mut p = Vec::new();
    section.build(&mut p).ok_or(p)
}

#[test]
fn the_first_matching_rule_decides_and_default_the_rest() {
    let pol = policy(
        r#"
        default = "deny"
        [[rules]]
        name = "read"
        methods = ["GET", "head"]
        path = "/v1/{project_id}/**"
        check = "role:reader and project_id:%(project_id)s"
        [[rules]]
        name = "write"
        path = "/v1/**"
        check = "role:admin"
        "#,
    )
    .unwrap();
    let id = Arc::new(member("p1", &["reader"]));
    let creds = IdentityCredentials {
        user: Some(&id),
        service: None,
    };
    let d = |m: Method, p: &str| pol.decide(&creds, &m, p);
    assert_eq!(
        d(Method::GET, "/v1/p1/servers"),
        Decision::Allow { rule: "read" }
    );
    assert_eq!(
        d(Method::HEAD, "/v1/p1/x"),
        Decision::Allow { rule: "read" }
    );
    assert!(
        !d(Method::GET, "/v1/p2/servers").allowed(),
        "another project"
    );
    assert_eq!(d(Method::POST, "/v1/p1/servers").rule(), "write");
    assert!(!d(Method::POST, "/v1/p1/servers").allowed());
    assert_eq!(
        d(Method::GET, "/v2/x"),
        Decision::Deny {
            rule: "default",
            error: None
        }
    );
    let lines = pol.explain(&creds, &Method::GET, "/v1/p2/servers");
    assert!(lines[0].contains("matches"), "{lines:?}");
    assert!(
        lines.last().unwrap().contains("deny (rule \"read\")"),
        "{lines:?}"
    );
}

#[test]
fn bad_sections_name_the_key() {
    let keys = |t: &str| -> Vec<String> {
        policy(t)
            .err()
            .unwrap()
            .into_iter()
            .map(|p| p.key)
            .collect()
    };
    assert_eq!(keys("default = \"maybe\""), vec!["authorization.default"]);
    assert_eq!(
        keys("default = \"allow\"\n[[rules]]\npath = \"x\"\ncheck = \"role:a\""),
        vec!["authorization.rules[0].path"]
    );
    assert_eq!(
        keys("default = \"allow\"\n[[rules]]\npath = \"/x\"\ncheck = \"role:a or\""),
        vec!["authorization.rules[0].check"]
    );
    assert_eq!(
        keys("default = \"allow\"\n[[rules]]\npath = \"/x\"\ncheck = \"rule:nope\""),
        vec!["authorization.rules[0].check"]
    );
    assert_eq!(
        keys("default = \"allow\"\n[[rules]]\nmethods = []\npath = \"/x\"\ncheck = \"@\""),
        vec!["authorization.rules[0].methods"]
    );
    assert_eq!(
        keys("default = \"allow\"\npolicy_file = \"/nonexistent/policy.yaml\""),
        vec!["authorization.policy_file"]
    );
}

#[test]
fn every_printed_check_is_what_oslo_prints() {
    let c = Check::Or(vec![
        Check::Role("a".into()),
        Check::Not(Box::new(Check::True)),
    ]);
    assert_eq!(c.to_string(), "(role:a or not @)");
}
