//! Tests of revocation matching: keystonemiddleware's rules one by one,
//! unknown data failing closed, event parsing, the index and merging.

use super::*;

fn token() -> TokenValues<'static> {
    TokenValues {
        user_id: Some("u1"),
        trustor_id: None,
        trustee_id: None,
        identity_domain_id: Known::Is(Some("default")),
        project_id: Some("p1"),
        assignment_domain_id: None,
        trust_id: None,
        consumer_id: Known::Is(None),
        audit_id: Some("aud1"),
        parent_audit_id: Some("chain1"),
        roles: Known::Is(&[]),
        issued_at: 1000,
        expires_at: 4600,
    }
}

fn ev() -> Event {
    Event {
        issued_before: 1000,
        revoked_at: 1000,
        ..Event::default()
    }
}

fn s(v: &str) -> Option<String> {
    Some(v.into())
}

#[test]
fn rule_1_same_second_is_revoked_later_token_is_not() {
    let t = token();
    assert!(Event {
        user_id: s("u1"),
        ..ev()
    }
    .matches(&t));
    assert!(!Event {
        user_id: s("u1"),
        issued_before: 999,
        ..ev()
    }
    .matches(&t));
}

#[test]
fn rules_2_to_11_each_constrain() {
    let t = token();
    let cases: Vec<(Event, bool)> = vec![
        (
            Event {
                user_id: s("u2"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                project_id: s("p1"),
                ..ev()
            },
            true,
        ),
        (
            Event {
                project_id: s("p2"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                audit_id: s("aud1"),
                ..ev()
            },
            true,
        ),
        (
            Event {
                audit_id: s("aud2"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                trust_id: s("t1"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                domain_id: s("default"),
                ..ev()
            },
            true,
        ),
        (
            Event {
                domain_id: s("other"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                domain_scope_id: s("default"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                expires_at: Some(4600),
                ..ev()
            },
            true,
        ),
        (
            Event {
                expires_at: Some(4601),
                ..ev()
            },
            false,
        ),
        (
            Event {
                consumer_id: s("c1"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                audit_chain_id: s("chain1"),
                ..ev()
            },
            true,
        ),
        (
            Event {
                audit_chain_id: s("aud1"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                role_id: s("r1"),
                ..ev()
            },
            false,
        ),
        (
            Event {
                access_token_id: s("x"),
                ..ev()
            },
            true,
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.matches(&t), want, "{e:?}");
    }
}

#[test]
fn trustor_and_trustee_are_users_too() {
    let mut t = token();
    t.trustor_id = Some("boss");
    assert!(Event {
        user_id: s("boss"),
        ..ev()
    }
    .matches(&t));
    assert!(List::new(vec![Event {
        user_id: s("boss"),
        ..ev()
    }])
    .is_revoked(&t));
}

#[test]
fn unknown_data_fails_closed() {
    let mut t = token();
    t.roles = Known::Unknown;
    t.consumer_id = Known::Unknown;
    assert!(Event {
        role_id: s("r1"),
        ..ev()
    }
    .matches(&t));
    assert!(Event {
        consumer_id: s("c1"),
        ..ev()
    }
    .matches(&t));
    let roles: Vec<std::sync::Arc<str>> = vec!["r1".into()];
    t.roles = Known::Is(&roles);
    assert!(Event {
        role_id: s("r1"),
        ..ev()
    }
    .matches(&t));
}

#[test]
fn domain_event_with_expiry_is_a_domain_scope_event() {
    let body = br#"{"events": [{"domain_id": "d1", "expires_at": "2026-01-01T00:00:00Z",
        "issued_before": "2026-01-01T10:00:05.000000Z", "revoked_at": "2026-01-01T10:00:05.000000Z"},
        {"OS-TRUST:trust_id": "t1", "issued_before": "2026-01-01T10:02:00.000000Z",
         "revoked_at": "2026-01-01T10:02:00.000000Z"}], "links": {}}"#;
    let events = parse_events(body).unwrap();
    assert_eq!(events[0].domain_id, None);
    assert_eq!(events[0].domain_scope_id.as_deref(), Some("d1"));
    assert_eq!(events[1].trust_id.as_deref(), Some("t1"));
    assert_eq!(events[1].revoked_at, 1767261720);
}

#[test]
fn index_finds_what_a_scan_finds() {
    let mut events: Vec<Event> = (0..2000)
        .map(|i| Event {
            audit_id: Some(format!("a{i}")),
            ..ev()
        })
        .collect();
    events.push(Event {
        project_id: s("p1"),
        ..ev()
    });
    let list = List::new(events.clone());
    let t = token();
    assert_eq!(list.is_revoked(&t), events.iter().any(|e| e.matches(&t)));
    let mut other = token();
    other.project_id = Some("p9");
    assert!(!list.is_revoked(&other));
    let unindexed = List::new(vec![Event {
        domain_id: s("default"),
        ..ev()
    }]);
    assert!(unindexed.is_revoked(&t));
}

#[test]
fn merge_dedups_and_prune_drops_old() {
    let a = Event {
        user_id: s("u1"),
        ..ev()
    };
    let list = List::new(vec![a.clone()]).merged(vec![
        a.clone(),
        Event {
            user_id: s("u2"),
            issued_before: 5000,
            revoked_at: 5000,
            ..ev()
        },
    ]);
    assert_eq!(list.len(), 2);
    assert_eq!(list.newest(), Some(5000));
    let pruned = list.pruned(1000 + 3600 + 100 + 1, 3600, 100);
    assert_eq!(pruned.len(), 1);
}
