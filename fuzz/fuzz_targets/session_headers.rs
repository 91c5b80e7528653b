//! The request parsing of browser sessions: the `Cookie` header
//! (`session::cookie_values`, `session::remove_cookie`), the login `Origin`
//! check (`session::origin::check_login`) and the login body
//! (`session::login_auth`), each against a reference written out here.
//!
//! Input: a selector byte, then fields separated by `\x01`.
//! - Cookie (0): `Cookie` header values (split at `\x02`) → the values of
//!   `sessionid` are RFC 6265 §4.2.1's (pairs split at `;`, name and value
//!   trimmed, one pair of `"` removed); after `remove_cookie` no `sessionid`
//!   is left for the upstream, and every other pair is kept, in order.
//! - Origin (1): scheme, host, port of the `Origin`, then the `Host` → the
//!   login passes iff the reference (an RFC 6454 serialized origin, compared
//!   by lower-cased host and port with `Host`, or listed as trusted) says so.
//! - Login body (2): JSON or form fields → a form body and a JSON body of
//!   the same fields ask Keystone for the same password `auth`, built by
//!   the README's rules here; and (3: a form, 7: JSON) any body at all:
//!   what is asked of Keystone is exactly what a reference reader makes of
//!   it (WHATWG URL §5.1 form parsing written out, `serde_json::Value` for
//!   JSON, read lossily as serde skips ignored members unchecked) under the
//!   same rules: one password method with a non-empty name and password
//!   from the body, nothing else, or nothing when the reference refuses.
#![no_main]

#[path = "reference/percent.rs"]
mod percent;

use http::{header, HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use percent::percent_decode;
use serde_json::{json, Value};
use stonegate::session::origin::{check_login, SiteOrigin};
use stonegate::session::{cookie_values, login_auth, remove_cookie};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let fields: Vec<&str> = text.split('\u{1}').collect();
    match selector % 4 {
        0 => cookies(&fields),
        1 => origin(&fields),
        2 => login_fields(&fields),
        _ => login_any(rest, selector & 4 != 0),
    }
});

/// RFC 6265 §5.4 / §4.2.1: `name=value` pairs separated by `;`.
fn reference_pairs(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            let v = v.trim();
            let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                &v[1..v.len() - 1]
            } else {
                v
            };
            Some((n.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

fn cookies(fields: &[&str]) {
    let mut headers = HeaderMap::new();
    let mut texts = Vec::new();
    for v in fields.iter().flat_map(|f| f.split('\u{2}')) {
        if let Ok(value) = HeaderValue::from_str(v) {
            headers.append(header::COOKIE, value);
            // A header that is not visible ASCII is not read at all (no
            // session from it) and is not forwarded.
            if v.is_ascii() {
                texts.push(v.to_owned());
            }
        }
    }
    let pairs: Vec<(String, String)> = texts.iter().flat_map(|t| reference_pairs(t)).collect();
    let expected: Vec<&str> = (pairs.iter())
        .filter(|(n, _)| n == "sessionid")
        .map(|(_, v)| v.as_str())
        .collect();
    let got: Vec<&str> = cookie_values(&headers, "sessionid").collect();
    assert_eq!(got, expected, "{texts:?}");

    remove_cookie(&mut headers, "sessionid");
    assert!(headers.get_all(header::COOKIE).iter().count() <= 1);
    assert_eq!(cookie_values(&headers, "sessionid").count(), 0, "{texts:?}: session cookie left");
    let left: Vec<(String, String)> = (headers.get_all(header::COOKIE).iter())
        .flat_map(|v| reference_pairs(v.to_str().unwrap()))
        .collect();
    let others: Vec<(String, String)> =
        pairs.into_iter().filter(|(n, _)| n != "sessionid").collect();
    assert_eq!(left, others, "{texts:?}");
}

/// A browser's serialized origin (RFC 6454 §6.2): `scheme://host[:port]`,
/// an RFC 3986 reg-name or bracketed IPv6 host, case-insensitive; its host
/// (lower case) and port (scheme default when absent).
fn reference_origin(s: &str) -> Option<(bool, String, u16)> {
    let (scheme, rest) = s.split_once("://")?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "https" => true,
        "http" => false,
        _ => return None,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = reference_authority(rest)?;
    Some((https, host, port.unwrap_or(if https { 443 } else { 80 })))
}

/// `host[:port]` of RFC 3986 (no user info): the lower-cased host and the port.
fn reference_authority(s: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let (h, tail) = s.split_at(end + 1);
        let ok = h.len() > 2 && h[1..h.len() - 1].bytes().all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.');
        if !ok {
            return None;
        }
        (h, if tail.is_empty() { None } else { Some(tail.strip_prefix(':')?) })
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let reg_name = |c: u8| c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&c);
    if host.is_empty() || (!host.starts_with('[') && !host.bytes().all(reg_name)) {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host.to_ascii_lowercase(), port))
}

fn origin(fields: &[&str]) {
    let [scheme, host, port, site, ..] = fields else {
        return;
    };
    let value = if port.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    };
    let (Ok(o), Ok(h)) = (HeaderValue::from_str(&value), HeaderValue::from_str(site)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::ORIGIN, o);
    headers.insert(header::HOST, h);
    let trusted = [SiteOrigin::parse("https://portal.example.com").unwrap()];
    let uri: Uri = "/login".parse().unwrap();
    let passed = check_login(&headers, &uri, &trusted).is_ok();

    let Some((https, host, port)) = reference_origin(&value) else {
        // Not an origin a browser sends: never a pass.
        assert!(!passed, "Origin {value:?} passed for Host {site:?}");
        return;
    };
    let expected = if (https, host.as_str(), port) == (true, "portal.example.com", 443) {
        true
    } else {
        // A `Host` no client sends (user info...) is not compared here.
        let Some((site_host, site_port)) = reference_authority(site) else {
            return;
        };
        site_host == host && site_port.unwrap_or(if https { 443 } else { 80 }) == port
    };
    assert_eq!(passed, expected, "Origin {value:?}, Host {site:?}");
    // Two Origin values are never a pass.
    headers.append(header::ORIGIN, HeaderValue::from_static("https://portal.example.com"));
    assert!(check_login(&headers, &uri, &trusted).is_err());
}

const FIELDS: [&str; 9] = [
    "username",
    "password",
    "user_domain_name",
    "user_domain_id",
    "domain",
    "project_id",
    "project_name",
    "project_domain_name",
    "project_domain_id",
];

/// The README's rules: a user's domain by id, else by name
/// (`user_domain_name`, else Horizon's `domain`), else the default; a
/// project by id, else by name in its domain (by id, by name, else the
/// user's).
fn reference_auth(f: &[Option<String>; 9], default: &str) -> Option<(String, Value)> {
    let get = |i: usize| f[i].clone();
    let (username, password) = (get(0)?, get(1)?);
    if username.is_empty() || password.is_empty() {
        return None;
    }
    let user_domain = match (get(3), get(2), get(4)) {
        (Some(id), _, _) => json!({ "id": id }),
        (None, Some(name), _) | (None, None, Some(name)) => json!({ "name": name }),
        _ => json!({ "name": default }),
    };
    let project_domain = match (get(8), get(7)) {
        (Some(id), _) => json!({ "id": id }),
        (None, Some(name)) => json!({ "name": name }),
        _ => user_domain.clone(),
    };
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "name": username, "domain": user_domain, "password": password}}}});
    match (get(5), get(6)) {
        (Some(id), _) => auth["scope"] = json!({"project": {"id": id}}),
        (None, Some(name)) => auth["scope"] = json!({"project": {"name": name, "domain": project_domain}}),
        _ => {}
    }
    Some((username, auth))
}

/// application/x-www-form-urlencoded, written out (WHATWG URL §5.2).
fn form_encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for &b in s.as_bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(b as char),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    };
    let parts: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    parts.join("&")
}

fn login_fields(fields: &[&str]) {
    // A field given as `\x02` is absent.
    let mut given: [Option<String>; 9] = Default::default();
    for (i, v) in fields.iter().take(9).enumerate() {
        if *v != "\u{2}" {
            given[i] = Some((*v).to_owned());
        }
    }
    let pairs: Vec<(&str, &str)> = (FIELDS.iter().zip(&given))
        .filter_map(|(k, v)| Some((*k, v.as_deref()?)))
        .collect();
    let expected = reference_auth(&given, "Default");
    let form = form_encode(&pairs);
    let json = Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect()).to_string();
    assert_eq!(
        login_auth("application/x-www-form-urlencoded", form.as_bytes(), "Default"),
        expected,
        "form {form:?}"
    );
    assert_eq!(login_auth("application/json", json.as_bytes(), "Default"), expected, "json {json}");
    assert_eq!(login_auth("text/plain", json.as_bytes(), "Default"), None);
}

/// A name or value of a form body: `+` is a space, then percent-decoded
/// (WHATWG URL §5.1), read as UTF-8 with invalid sequences replaced.
fn form_decode(s: &[u8]) -> String {
    let plus: Vec<u8> = s.iter().map(|&c| if c == b'+' { b' ' } else { c }).collect();
    String::from_utf8_lossy(&percent_decode(&plus)).into_owned()
}

/// The nine fields of an `application/x-www-form-urlencoded` body as
/// WHATWG URL §5.1 parses it (split at `&`, empty sequences skipped, name
/// and value split at the first `=`, each decoded, lossily UTF-8); `Err`
/// when one of them is given twice (a form naming a field twice is refused).
fn reference_form(body: &[u8]) -> Result<[Option<String>; 9], ()> {
    let mut fields: [Option<String>; 9] = Default::default();
    for seq in body.split(|&c| c == b'&').filter(|s| !s.is_empty()) {
        let (name, value) = match seq.iter().position(|&c| c == b'=') {
            Some(i) => (&seq[..i], &seq[i + 1..]),
            None => (seq, &b""[..]),
        };
        if let Some(i) = FIELDS.iter().position(|f| *f == form_decode(name)) {
            if fields[i].replace(form_decode(value)).is_some() {
                return Err(());
            }
        }
    }
    Ok(fields)
}

/// The nine fields of a JSON body (RFC 8259) read from a parsed document: a
/// string, or `null` for absent; `Err` for any other type or a document
/// that is not an object.
fn reference_json(doc: &Value) -> Result<[Option<String>; 9], ()> {
    let obj = doc.as_object().ok_or(())?;
    let mut fields: [Option<String>; 9] = Default::default();
    for (i, name) in FIELDS.iter().enumerate() {
        fields[i] = match obj.get(*name) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(()),
        };
    }
    Ok(fields)
}

/// Any body: what is asked of Keystone is exactly what the reference
/// readers above and the README's rules (`reference_auth`) make of it.
fn login_any(body: &[u8], json: bool) {
    let content_type = if json {
        "application/json"
    } else {
        "application/x-www-form-urlencoded"
    };
    let ours = login_auth(content_type, body, "Default");
    if let Some((username, auth)) = &ours {
        // Whatever the body, one password method and nothing else.
        let top: Vec<&String> = auth.as_object().unwrap().keys().collect();
        assert!(top.iter().all(|k| *k == "identity" || *k == "scope"), "{auth}");
        let identity = auth["identity"].as_object().unwrap();
        assert_eq!(identity.len(), 2, "{auth}");
        assert_eq!(identity["methods"], json!(["password"]), "{auth}");
        assert_eq!(auth["identity"]["password"].as_object().unwrap().len(), 1);
        let user = auth["identity"]["password"]["user"].as_object().unwrap();
        let mut keys: Vec<&str> = user.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["domain", "name", "password"], "{auth}");
        assert_eq!(user["name"], json!(username));
        assert!(!username.is_empty() && !user["password"].as_str().unwrap().is_empty());
    }
    let given = if json {
        // serde skips ignored members without checking their UTF-8 (as
        // revocation_events found), so the reference reads the body with
        // invalid sequences replaced.
        let lossy = String::from_utf8_lossy(body);
        let Ok(doc) = serde_json::from_str::<Value>(&lossy) else {
            assert!(ours.is_none(), "not JSON, yet read: {lossy:?}");
            return;
        };
        match reference_json(&doc) {
            Ok(given) => given,
            Err(()) => {
                assert!(ours.is_none(), "{doc}: a field not a string, yet read");
                return;
            }
        }
    } else {
        match reference_form(body) {
            Ok(given) => given,
            Err(()) => {
                assert!(ours.is_none(), "a field given twice, yet read");
                return;
            }
        }
    };
    let expected = reference_auth(&given, "Default");
    match (&ours, &expected) {
        (Some(_), _) => assert_eq!(ours, expected, "{:?}", String::from_utf8_lossy(body)),
        (None, None) => {}
        (None, Some(_)) => {
            // Refusals the reference does not make: a JSON member named twice
            // (serde refuses it, the parsed document keeps the last) or a
            // value that is not UTF-8 (serde refuses it, the reference read
            // it replaced). Either way the document written back without
            // them is read exactly as the reference reads it.
            assert!(json, "form refused, yet the reference reads {expected:?}");
            let lossy = String::from_utf8_lossy(body);
            let doc: Value = serde_json::from_str(&lossy).unwrap();
            assert_eq!(
                login_auth(content_type, doc.to_string().as_bytes(), "Default"),
                expected,
                "{lossy:?}"
            );
        }
    }
}
