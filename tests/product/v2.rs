//! Legacy Identity v2.0 (`auth_version = "v2.0"`), against a fake v2.0 server
//! whose documents are keystoneauth's own `V2Token` fixtures: stonegate
//! authenticates with `POST /v2.0/tokens`, validates with
//! `GET {identity endpoint}/tokens/{token}`, and forwards exactly the headers
//! keystonemiddleware set for v2 tokens.

use std::process::Command;

use crate::harness::fake_v2::Logged;
use crate::harness::{FakeV2, Stonegate, Upstream, IDENTITY_HEADERS};

async fn start(v2: &FakeV2, up: &Upstream) -> Stonegate {
    Stonegate::builder()
        .keystone(v2)
        .upstream(up)
        .option("auth_version", "v2.0")
        .start()
        .await
}

fn gets(log: &[Logged]) -> Vec<&str> {
    log.iter()
        .filter(|l| l.method == "GET")
        .map(|l| l.path.as_str())
        .collect()
}

fn auths(log: &[Logged]) -> usize {
    log.iter()
        .filter(|l| l.method == "POST" && l.path == "/v2.0/tokens")
        .count()
}

#[tokio::test]
async fn v2_project_token_gets_the_keystonemiddleware_v2_headers() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let user = v2
        .mint(
            ("u-v2", "d\u{e9}mo"),
            Some(("t-v2", "demo-tenant")),
            &[("member", "r-member"), ("reader", "r-reader")],
        )
        .await;
    let resp = sg
        .get("/v2.1/servers", &[("X-Auth-Token", user.id.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();

    // Every identity header is exactly what keystonemiddleware set for this
    // document; the ones it set to None are absent.
    for name in IDENTITY_HEADERS {
        let got = seen
            .headers
            .get(*name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        assert_eq!(got.as_ref(), user.headers.get(*name), "header {name}");
    }
    // The same, spelled out.
    let h = |n: &str| seen.header(n);
    assert_eq!(h("x-identity-status").as_deref(), Some("Confirmed"));
    assert_eq!(h("x-user-id").as_deref(), Some("u-v2"));
    assert_eq!(h("x-user").as_deref(), Some("d\u{e9}mo"));
    assert_eq!(h("x-project-id").as_deref(), Some("t-v2"));
    assert_eq!(h("x-tenant-id").as_deref(), Some("t-v2"));
    assert_eq!(h("x-project-name").as_deref(), Some("demo-tenant"));
    assert_eq!(h("x-tenant").as_deref(), Some("demo-tenant"));
    assert_eq!(h("x-roles").as_deref(), Some("member,reader"));
    assert_eq!(h("x-role").as_deref(), Some("member,reader"));
    assert_eq!(h("x-is-admin-project").as_deref(), Some("True"));
    for absent in [
        "x-user-domain-id",
        "x-user-domain-name",
        "x-project-domain-id",
        "x-project-domain-name",
        "x-domain-id",
        "x-domain-name",
        "openstack-system-scope",
    ] {
        assert_eq!(h(absent), None, "{absent} set for a v2 token");
    }
    let catalog = h("x-service-catalog").expect("X-Service-Catalog");
    assert!(catalog.starts_with("[{\"name\": \"keystone\", \"type\": \"identity\""));

    // Authenticated with v2.0 password credentials, validated at the
    // catalog's internal identity endpoint (interface = internal).
    let log = v2.log().await;
    assert_eq!(auths(&log), 1, "{log:?}");
    assert_eq!(
        gets(&log),
        vec![format!("/internal/v2.0/tokens/{}", user.id)]
    );
    assert!(
        sg.log()
            .contains("Identity v2.0 (auth_version) has no domains"),
        "domain options are warned about"
    );
}

#[tokio::test]
async fn v2_unscoped_token_and_no_catalog() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "2")
        .option("include_service_catalog", false)
        .option("interface", "admin")
        .start()
        .await;
    let user = v2.mint(("u-unscoped", "alice"), None, &[]).await;
    let resp = sg.get("/", &[("X-Auth-Token", user.id.as_str())]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.header("x-user-id").as_deref(), Some("u-unscoped"));
    assert_eq!(seen.header("x-roles").as_deref(), Some(""));
    for absent in [
        "x-project-id",
        "x-tenant-id",
        "x-tenant",
        "x-service-catalog",
    ] {
        assert_eq!(seen.header(absent), None, "{absent}");
    }
    let log = v2.log().await;
    assert_eq!(gets(&log), vec![format!("/admin/v2.0/tokens/{}", user.id)]);
}

#[tokio::test]
async fn v2_unknown_token_is_401_and_fake_down_is_503() {
    let mut v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let resp = sg
        .get("/", &[("X-Auth-Token", "0123456789abcdef0123456789abcdef")])
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()
            .get("www-authenticate")
            .expect("WWW-Authenticate")
            .to_str()
            .unwrap(),
        format!("Keystone uri=\"{}/v2.0\"", v2.base)
    );
    assert_eq!(
        gets(&v2.log().await),
        vec!["/internal/v2.0/tokens/0123456789abcdef0123456789abcdef"]
    );

    v2.stop();
    let resp = sg
        .get("/", &[("X-Auth-Token", "fedcba9876543210fedcba9876543210")])
        .await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_identity_endpoint_follows_region_else_auth_url() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    // No identity endpoint in that region: validation goes to auth_url.
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "v2.0")
        .option("region_name", "Elsewhere")
        .start()
        .await;
    let user = v2.mint(("u-1", "one"), Some(("t-1", "p")), &[]).await;
    let resp = sg.get("/", &[("X-Auth-Token", user.id.as_str())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gets(&v2.log().await),
        vec![format!("/v2.0/tokens/{}", user.id)]
    );
    drop(sg);
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "v2.0")
        .option("region_name", "RegionOne")
        .option("interface", "admin")
        .start()
        .await;
    let other = v2.mint(("u-2", "two"), Some(("t-1", "p")), &[]).await;
    let resp = sg.get("/", &[("X-Auth-Token", other.id.as_str())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        gets(&v2.log().await).last().copied(),
        Some(format!("/admin/v2.0/tokens/{}", other.id).as_str())
    );
}

#[tokio::test]
async fn v2_answer_without_expiry_is_503_never_forwarded() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let token = v2.mint_without_expiry(("u-1", "one")).await;
    let resp = sg.get("/", &[("X-Auth-Token", token.as_str())]).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_path_injection_tokens_never_reach_keystone() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let victim = v2.mint(("u-1", "victim"), Some(("t-1", "p")), &[]).await;
    for token in [
        format!("../tokens/{}", victim.id),
        format!("x/../{}", victim.id),
        format!("{}?belongsTo=t-1", victim.id),
        format!("{}#x", victim.id),
        format!("%2e%2e%2f{}", victim.id),
        "..".to_owned(),
        "../../_test/log".to_owned(),
    ] {
        let resp = sg.get("/", &[("X-Auth-Token", token.as_str())]).await;
        assert_eq!(resp.status(), 401, "{token}");
    }
    assert_eq!(gets(&v2.log().await), Vec::<&str>::new());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_rejected_service_token_is_renewed_and_retried_once() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let first = v2.mint(("u-1", "one"), Some(("t-1", "p")), &[]).await;
    let resp = sg.get("/", &[("X-Auth-Token", first.id.as_str())]).await;
    assert_eq!(resp.status(), 200);
    v2.expire_admin_tokens().await;
    let second = v2.mint(("u-2", "two"), Some(("t-1", "p")), &[]).await;
    let resp = sg.get("/", &[("X-Auth-Token", second.id.as_str())]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("x-user-id").as_deref(), Some("u-2"));
    let log = v2.log().await;
    assert_eq!(auths(&log), 2, "{log:?}");
    let second_path = format!("/internal/v2.0/tokens/{}", second.id);
    assert_eq!(
        gets(&log).iter().filter(|p| **p == second_path).count(),
        2,
        "one 401, one retry: {log:?}"
    );
}

#[tokio::test]
async fn v2_service_token_never_extends_an_expired_user_token() {
    let v2 = FakeV2::start();
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let service = v2
        .mint(
            ("nova", "nova"),
            Some(("svc-t", "service")),
            &[("service", "r-s")],
        )
        .await;
    let expired = v2
        .mint_expiring(
            ("u-1", "one"),
            Some(("t-1", "p")),
            &[("member", "r-m")],
            -60,
        )
        .await;
    let resp = sg
        .get(
            "/",
            &[
                ("X-Auth-Token", expired.id.as_str()),
                ("X-Service-Token", service.id.as_str()),
            ],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 0);
    // The service token itself is fine: with a live user token both pass.
    let live = v2.mint(("u-2", "two"), Some(("t-1", "p")), &[]).await;
    let resp = sg
        .get(
            "/",
            &[
                ("X-Auth-Token", live.id.as_str()),
                ("X-Service-Token", service.id.as_str()),
            ],
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().header("x-service-roles").as_deref(),
        Some("service")
    );
}

#[test]
fn check_config_refuses_v3_only_features_with_v2() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::write(keys.join("0"), "x").unwrap();
    let path = dir.path().join("stonegate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
auth_url = "http://127.0.0.1:5000/v2.0"
auth_version = "v2.0"
username = "svc"
project_name = "service"
[fernet]
key_repository = {:?}
"#,
            keys.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .args(["check-config", &path.display().to_string()])
        .env("STONEGATE_PASSWORD", "pw")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("fernet: local Fernet validation needs Identity v3"),
        "{stderr}"
    );

    // Without [fernet] the same file is fine, and says it speaks v2.0.
    let text = std::fs::read_to_string(&path).unwrap();
    let text = &text[..text.find("[fernet]").unwrap()];
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stonegate"))
        .args(["check-config", &path.display().to_string()])
        .env("STONEGATE_PASSWORD", "pw")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("Identity API v2.0"), "{stdout}");
}
