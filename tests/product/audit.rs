//! CADF audit events (`[audit]`) for real Keystone tokens through the
//! sidecar: every event is rebuilt and validated by pycadf's own types in the
//! harness venv, and compared field by field with what keystonemiddleware's
//! `audit` filter emits for the same request as the upstream received it
//! (tests/product/cadf_check.py); the modes, and a sink that fails without
//! failing a request.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use std::io::Write;

use crate::harness::{venv_python, Keystone, Stonegate, Upstream};

/// An `api_audit_map.conf` for compute, in keystonemiddleware's format.
const MAP: &str = "[DEFAULT]\ntarget_endpoint_type = compute\n\n[path_keywords]\n\
servers = server\nflavors = flavor\nos-hosts = host\n\n[custom_actions]\ndetail = read/list\n\n\
[service_endpoints]\ncompute = service/compute\nidentity = service/security\n";

async fn start(ks: &Keystone, up: &Upstream, dir: &Path, extra: &str) -> Stonegate {
    let map = dir.join("api_audit_map.conf");
    std::fs::write(&map, MAP).unwrap();
    let events = dir.join("events.jsonl");
    Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .extra_toml(&format!(
            "[audit]\nenabled = true\nsink = \"file\"\nfile = {events:?}\n\
             audit_map_file = {map:?}\n{extra}"
        ))
        .start()
        .await
}

/// The notifications in `file` once there are `n`, waiting up to 10 s.
async fn notifications(file: &Path, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let all: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON notification per line"))
            .collect();
        if all.len() >= n || Instant::now() >= deadline {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The notifications of the request with `id`, in order.
fn of_request<'a>(all: &'a [Value], id: &str) -> Vec<&'a Value> {
    all.iter()
        .filter(|n| n["payload"]["initiator"]["request_id"] == id)
        .collect()
}

fn run_checker(doc: &Value) -> Vec<String> {
    let script = crate::harness::repo_path("tests/product/cadf_check.py");
    let mut child = Command::new(venv_python())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cadf_check.py in the harness venv");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(doc.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "cadf_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cadf_check.py output: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    result["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn events_for_real_tokens_pass_pycadf_and_match_keystonemiddleware_field_by_field() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let sg = start(&ks, &up, dir.path(), "").await;
    let token = ks.demo_token().await;
    let client = crate::harness::client();
    let mut cases = Vec::new();
    let mut expected = 0;
    let requests: &[(&str, &str)] = &[
        ("GET", "/v2.1/servers"),
        ("GET", "/v2.1/servers/detail?all_tenants=1"),
        ("POST", "/v2.1/flavors"),
        ("PUT", "/v2.1/servers/3f1c"),
        ("DELETE", "/v2.1/servers/3f1c"),
        ("HEAD", "/v2.1/flavors/1"),
    ];
    for (method, path) in requests {
        let resp = client
            .request(method.parse().unwrap(), sg.url(path))
            .header("X-Auth-Token", &token)
            .header("User-Agent", "python-novaclient")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{method} {path}");
        let id = resp.headers()["x-openstack-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let seen = up.last();
        let headers: serde_json::Map<String, Value> = seen
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
            .collect();
        cases.push((
            id.clone(),
            json!({
                "method": method,
                "path_qs": seen.uri.to_string(),
                "headers": headers,
                "remote_addr": "127.0.0.1",
                "status": 200,
                "request_id": id,
            }),
        ));
        expected += 2;
    }
    // Refused by stonegate (no token, a bad token): audited too, with an
    // unknown initiator (keystonemiddleware, behind auth_token, never sees these).
    let mut refused = Vec::new();
    for t in [None, Some("not-a-token")] {
        let mut req = client.get(sg.url("/v2.1/servers"));
        if let Some(t) = t {
            req = req.header("X-Auth-Token", t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401);
        refused.push(
            resp.headers()["x-openstack-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
        expected += 2;
    }
    let all = notifications(&dir.path().join("events.jsonl"), expected).await;
    assert_eq!(all.len(), expected, "{all:#?}");
    let text = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert!(!text.contains(&token), "the token is never written");
    assert!(!text.contains("not-a-token"), "nor a refused one");

    let mut doc_cases = Vec::new();
    for (id, upstream) in &cases {
        let events = of_request(&all, id);
        assert_eq!(events.len(), 2, "{id}: {events:#?}");
        doc_cases.push(json!({"notifications": events, "upstream": upstream}));
    }
    for id in &refused {
        let events = of_request(&all, id);
        assert_eq!(events.len(), 2, "{id}");
        doc_cases.push(json!({"notifications": events, "upstream": null}));
    }
    let map_file = dir.path().join("api_audit_map.conf");
    let problems = run_checker(&json!({"audit_map_file": map_file, "cases": doc_cases}));
    assert!(problems.is_empty(), "{problems:#?}");

    // What an auditor reads, spelled out.
    let first = of_request(&all, &cases[0].0);
    let (req, resp) = (&first[0]["payload"], &first[1]["payload"]);
    assert_eq!(first[0]["event_type"], "audit.http.request");
    assert_eq!(req["initiator"]["id"], ks.user_id("demo"));
    assert_eq!(req["initiator"]["project_id"], ks.project_id("demo"));
    assert_eq!(
        req["initiator"]["credential"]["identity_status"],
        "Confirmed"
    );
    assert_eq!(req["action"], "read/list");
    assert_eq!(req["target"]["typeURI"], "service/compute/servers");
    assert_eq!(
        (req["outcome"].as_str(), resp["outcome"].as_str()),
        (Some("pending"), Some("success"))
    );
    assert_eq!(resp["reason"]["reasonCode"], "200");
    let no_token = &of_request(&all, &refused[0])[1]["payload"];
    assert_eq!(no_token["outcome"], "failure");
    assert_eq!(no_token["reason"]["reasonCode"], "401");
    assert_eq!(no_token["initiator"]["id"], "unknown");
    assert_eq!(
        sg.metric("stonegate_audit_events_total{result=\"emitted\"}")
            .await,
        expected as f64
    );
}

#[tokio::test]
async fn writes_mode_audits_only_writes_and_rejections_mode_only_refusals() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let token = ks.demo_token().await;
    let client = crate::harness::client();
    for (mode, audited) in [
        ("writes", ["POST", "DELETE"].as_slice()),
        ("rejections", ["REFUSED"].as_slice()),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let sg = start(&ks, &up, dir.path(), &format!("events = \"{mode}\"\n")).await;
        let mut ids = Vec::new();
        for method in ["GET", "POST", "DELETE", "HEAD", "REFUSED"] {
            let mut req = if method == "REFUSED" {
                client.get(sg.url("/v2.1/servers"))
            } else {
                client
                    .request(method.parse().unwrap(), sg.url("/v2.1/servers/1"))
                    .header("X-Auth-Token", &token)
            };
            req = req.header("User-Agent", "t");
            let resp = req.send().await.unwrap();
            let id = resp.headers()["x-openstack-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            ids.push((method, id));
        }
        let all = notifications(&dir.path().join("events.jsonl"), audited.len() * 2).await;
        // Whatever else was going to be written has been by now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let all_now = notifications(&dir.path().join("events.jsonl"), 0).await;
        assert_eq!(all.len(), all_now.len());
        for (method, id) in &ids {
            let n = of_request(&all_now, id).len();
            let want = if audited.contains(method) { 2 } else { 0 };
            assert_eq!(n, want, "{mode}: {method}");
        }
    }
}

#[tokio::test]
async fn a_failing_sink_drops_and_counts_events_and_requests_go_on() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    // /dev/full: every write fails with ENOSPC.
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml("[audit]\nenabled = true\nsink = \"file\"\nfile = \"/dev/full\"\n")
        .start()
        .await;
    let token = ks.demo_token().await;
    for _ in 0..5 {
        let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
        assert_eq!(resp.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let dropped = loop {
        let d = sg
            .metric("stonegate_audit_events_total{result=\"dropped\"}")
            .await;
        if d >= 10.0 || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dropped, 10.0);
    assert_eq!(sg.metric("stonegate_audit_events_queued").await, 0.0);
    let log = sg.log_with("cannot write audit events").await;
    assert!(log.contains("cannot write audit events"), "{log}");
}

#[tokio::test]
async fn where_it_differs_from_keystonemiddleware_on_purpose() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    // A map without `target_endpoint_type`: keystonemiddleware leaves the
    // target unknown, stonegate looks it up by `service_type` (compute).
    let map = dir.path().join("api_audit_map.conf");
    std::fs::write(&map, MAP.replace("target_endpoint_type = compute\n", "")).unwrap();
    let events = dir.path().join("events.jsonl");
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[audit]\nenabled = true\nsink = \"file\"\nfile = {events:?}\naudit_map_file = {map:?}\n"
        ))
        .start()
        .await;
    let token = ks.demo_token().await;
    // A POST to `.../action` whose body names the action, from a client that
    // writes its own X-Forwarded-For.
    let resp = crate::harness::client()
        .post(sg.url("/v2.1/servers/3f1c/action"))
        .header("X-Auth-Token", &token)
        .header("X-Forwarded-For", "203.0.113.9")
        .header("Content-Type", "application/json")
        .body(r#"{"reboot": {"type": "HARD"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let all = notifications(&events, 2).await;
    assert_eq!(all.len(), 2, "{all:#?}");
    let req = &all[0]["payload"];
    // The body is streamed, never read for the action's name
    // (keystonemiddleware: `update/reboot`).
    assert_eq!(req["action"], "update");
    // The TCP peer, not the first X-Forwarded-For entry.
    assert_eq!(req["initiator"]["host"]["address"], "127.0.0.1");
    // Found by service_type.
    let type_uri = req["target"]["typeURI"].as_str().unwrap();
    assert!(
        type_uri.starts_with("service/compute/servers"),
        "{type_uri}"
    );
    assert_ne!(req["target"]["id"], "unknown");
    // The token's fingerprint, never (part of) the token.
    let credential = req["initiator"]["credential"]["token"].as_str().unwrap();
    assert!(credential.starts_with("sha256:"), "{credential}");
    assert_eq!(credential.len(), "sha256:".len() + 12, "{credential}");
    assert!(!std::fs::read_to_string(&events)
        .unwrap()
        .contains(&token[..8]));
    assert_eq!(up.last().uri.path(), "/v2.1/servers/3f1c/action");
}
