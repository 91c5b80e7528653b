//! Revocation event parsing (`revocation::parse_events`, the body of
//! Keystone's `GET /v3/OS-REVOKE/events`), seeded with real Keystone
//! answers (token revocations, a password change, a role removal, project
//! and domain disables).
//!
//! Invariants:
//! - agreement with a reference reader written out here on any document:
//!   `serde_json::Value` walked by hand, timestamps read by RFC 3339's
//!   grammar (§5.6) and Keystone's domain rule (`revoke_model.py`: a
//!   `domain_id` with an `expires_at` revokes a domain-scoped token). Where
//!   stonegate refuses a document the reference reads, it must accept the
//!   same document written without repeated keys (serde refuses those);
//! - round trip: events built from the input as Keystone's `RevokeEvent`
//!   and written as its `to_dict` (and `utils.isotime`) does parse back to
//!   exactly those events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Value};
use stonegate::revocation::{parse_events, Event};

fn digits(s: &[u8], n: usize) -> Option<i64> {
    let d = s.get(..n)?;
    d.iter().all(u8::is_ascii_digit).then(|| d.iter().fold(0, |a, c| a * 10 + i64::from(c - b'0')))
}

/// Days from 1970-01-01 to a civil date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 §5.6 `date-time`, to Unix seconds (fraction dropped). Leap
/// seconds (`:60`) are `Err(())`: not compared.
fn rfc3339(s: &str) -> Result<Option<i64>, ()> {
    let b = s.as_bytes();
    let (Some(y), Some(mo), Some(d)) = (digits(b, 4), digits(b.get(5..).unwrap_or_default(), 2), digits(b.get(8..).unwrap_or_default(), 2)) else {
        return Ok(None);
    };
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b't')) {
        return Ok(None);
    }
    let t = &b[11..];
    let (Some(h), Some(mi), Some(sec)) = (digits(t, 2), digits(t.get(3..).unwrap_or_default(), 2), digits(t.get(6..).unwrap_or_default(), 2)) else {
        return Ok(None);
    };
    if t.get(2) != Some(&b':') || t.get(5) != Some(&b':') {
        return Ok(None);
    }
    let mut rest = &t[8..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return Ok(None);
        }
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), oh @ .., ] if rest.len() == 6 && rest[3] == b':' => {
            let (Some(oh), Some(om)) = (digits(&oh[..2], 2), digits(&rest[4..], 2)) else {
                return Ok(None);
            };
            if oh > 23 || om > 59 {
                return Ok(None);
            }
            (oh * 3600 + om * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return Ok(None),
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] || h > 23 || mi > 59 {
        return Ok(None);
    }
    if sec == 60 {
        return Err(());
    }
    if sec > 59 {
        return Ok(None);
    }
    Ok(Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset))
}

const STRINGS: [&str; 10] = [
    "user_id",
    "project_id",
    "domain_id",
    "domain_scope_id",
    "role_id",
    "OS-TRUST:trust_id",
    "OS-OAUTH1:consumer_id",
    "OS-OAUTH1:access_token_id",
    "audit_id",
    "audit_chain_id",
];

/// `Ok(None)`: the reference refuses the document; `Err(())`: not compared.
fn reference(doc: &Value) -> Result<Option<Vec<Event>>, ()> {
    let Some(events) = doc.get("events").and_then(Value::as_array) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for e in events {
        let Some(e) = e.as_object() else {
            return Ok(None);
        };
        let mut s: Vec<Option<String>> = Vec::new();
        for k in STRINGS {
            match e.get(k) {
                None | Some(Value::Null) => s.push(None),
                Some(Value::String(v)) => s.push(Some(v.clone())),
                Some(_) => return Ok(None),
            }
        }
        let time = |k: &str| -> Result<Option<Option<i64>>, ()> {
            match e.get(k) {
                None | Some(Value::Null) => Ok(Some(None)),
                Some(Value::String(v)) => Ok(rfc3339(v)?.map(Some)),
                Some(_) => Ok(None),
            }
        };
        let (Some(Some(issued_before)), Some(expires_at), Some(revoked_at)) =
            (time("issued_before")?, time("expires_at")?, time("revoked_at")?)
        else {
            return Ok(None);
        };
        let (mut domain_id, mut domain_scope_id) = (s[2].clone(), s[3].clone());
        if domain_id.is_some() && domain_scope_id.is_none() && expires_at.is_some() {
            domain_scope_id = domain_id.take();
        }
        out.push(Event {
            user_id: s[0].clone(),
            project_id: s[1].clone(),
            domain_id,
            domain_scope_id,
            role_id: s[4].clone(),
            trust_id: s[5].clone(),
            consumer_id: s[6].clone(),
            access_token_id: s[7].clone(),
            audit_id: s[8].clone(),
            audit_chain_id: s[9].clone(),
            issued_before,
            expires_at,
            revoked_at: revoked_at.unwrap_or(issued_before),
        });
    }
    Ok(Some(out))
}

/// Keystone's `utils.isotime`: `%Y-%m-%dT%H:%M:%S[.%f]Z`.
fn isotime(t: i64, subsecond: bool) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Civil from days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if subsecond { ".000000" } else { "" };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", secs / 3600, secs / 60 % 60, secs % 60)
}

/// Events as Keystone's `RevokeEvent(**kwargs).to_dict()` writes them.
fn round_trip(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut events = Vec::new();
    let mut docs = Vec::new();
    for (n, chunk) in text.split('\u{1}').enumerate().take(8) {
        let f: Vec<&str> = chunk.split('\u{2}').collect();
        let get = |i: usize| f.get(i).filter(|v| !v.is_empty()).map(|v| (*v).to_owned());
        // Timestamps in years 1970..=9999.
        let base = 1_764_000_000 + (n as i64) * 7919 + chunk.len() as i64 * 86_401;
        let issued_before = base.rem_euclid(253_402_000_000);
        let expires_at = (f.len() % 3 == 0).then_some(issued_before + 3600);
        let (domain_id, domain_scope_id) = match (get(2), expires_at) {
            (Some(d), Some(_)) => (None, Some(d)),
            (d, _) => (d, None),
        };
        let e = Event {
            user_id: get(0),
            project_id: get(1),
            domain_id,
            domain_scope_id,
            role_id: get(3),
            trust_id: get(4),
            consumer_id: get(5),
            access_token_id: get(6),
            audit_id: get(7),
            audit_chain_id: get(8),
            issued_before,
            expires_at,
            revoked_at: issued_before,
        };
        let mut d = Map::new();
        for (k, v) in [
            ("user_id", &e.user_id),
            ("role_id", &e.role_id),
            ("domain_id", &e.domain_id),
            ("domain_scope_id", &e.domain_scope_id),
            ("project_id", &e.project_id),
            ("audit_id", &e.audit_id),
            ("audit_chain_id", &e.audit_chain_id),
            ("OS-TRUST:trust_id", &e.trust_id),
            ("OS-OAUTH1:consumer_id", &e.consumer_id),
            ("OS-OAUTH1:access_token_id", &e.access_token_id),
        ] {
            if let Some(v) = v {
                d.insert(k.into(), json!(v));
            }
        }
        if let Some(x) = e.expires_at {
            d.insert("expires_at".into(), json!(isotime(x, false)));
        }
        d.insert("issued_before".into(), json!(isotime(e.issued_before, true)));
        d.insert("revoked_at".into(), json!(isotime(e.revoked_at, true)));
        events.push(e);
        docs.push(Value::Object(d));
    }
    let body = json!({"events": docs, "links": {"next": null, "previous": null, "self": "http://keystone/v3/OS-REVOKE/events"}});
    let parsed = parse_events(body.to_string().as_bytes()).expect("Keystone's own document parses");
    assert_eq!(parsed, events, "{body}");
}

fuzz_target!(|data: &[u8]| {
    if data.first() == Some(&0) {
        return round_trip(&data[1..]);
    }
    let ours = parse_events(data).ok();
    // serde skips ignored members without checking their UTF-8 (a finding
    // of this target: harmless, nothing of them is kept); the reference
    // reads them replaced.
    let Ok(doc) = serde_json::from_str::<Value>(&String::from_utf8_lossy(data)) else {
        assert!(ours.is_none(), "not JSON, yet parsed");
        return;
    };
    let Ok(expected) = reference(&doc) else {
        return;
    };
    match (&ours, &expected) {
        (Some(_), _) => assert_eq!(ours, expected, "{doc}"),
        (None, Some(_)) => {
            // Repeated keys: serde refuses them, the Value kept the last.
            let again = parse_events(doc.to_string().as_bytes()).ok();
            assert_eq!(again, expected, "refused a document the reference reads: {doc}");
        }
        (None, None) => {}
    }
});
