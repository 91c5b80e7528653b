//! Arbitrary oslo.policy rules through `policy::check::parse`, and arbitrary
//! policy files through `policy::file::parse`: nothing panics; a parsed rule
//! printed and parsed again is the same tree, and printing that tree gives
//! the same text (parse → print → parse is stable); evaluating it on a fixed
//! identity and target, with the file's rules, never panics and, run twice,
//! decides the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stonegate::{
    identity::{Identity, Named, Project, Scope},
    policy::{check, eval, file, IdentityCredentials},
};

fn identity() -> Identity {
    let named = |id: &str| Named {
        id: Some(id.into()),
        name: Some(format!("{id}-name").into()),
    };
    Identity {
        user: named("u1"),
        user_domain: named("default"),
        scope: Scope::Project(std::sync::Arc::new(Project {
            project: named("p1"),
            domain: named("default"),
        })),
        roles: vec!["member".into(), "reader".into()].into(),
        role_ids: Default::default(),
        is_admin_project: false,
        expires_at: i64::MAX,
        issued_at: 0,
        audit_ids: Default::default(),
        methods: vec!["password".into()].into(),
        catalog: None,
        extras: None,
        rendered: Default::default(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let once = check::parse(text).check;
    let printed = once.to_string();
    let twice = check::parse(&printed).check;
    assert_eq!(once, twice, "parse(print(parse({text:?}))) differs; printed {printed:?}");
    assert_eq!(printed, twice.to_string());

    // The same text as a policy file: its rules are the store.
    let rules = file::parse(text).map(|l| l.rules).unwrap_or_default();
    let id = identity();
    let creds = IdentityCredentials {
        user: Some(&id),
        service: None,
    };
    let target = eval::Target {
        captures: &[("project_id", "p1"), ("user.id", "u1")],
    };
    let a = eval::evaluate(&once, &target, &creds, &rules, &mut eval::NoTrace);
    let b = eval::evaluate(&twice, &target, &creds, &rules, &mut eval::NoTrace);
    assert_eq!(a, b);
    for (_, rule) in rules.iter().take(16) {
        let _ = eval::evaluate(rule, &target, &creds, &rules, &mut eval::NoTrace);
    }
});
