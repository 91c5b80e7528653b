//! Legacy Identity v2.0 (`auth_version = "v2.0"`), against the in-process
//! v2.0 Keystone serving keystoneauth's own `V2Token` documents
//! ([`V2Keystone`]): stonegate authenticates with `POST /v2.0/tokens`,
//! validates with `GET {identity endpoint}/tokens/{token}`, renews its token
//! after a 401, answers 503 when Keystone is down, and never lets a token
//! that is not a plain path segment reach Keystone. The headers are compared
//! with the real keystonemiddleware's in `v2_differential.rs`.

use std::process::Command;

use crate::harness::v2_keystone::V2Keystone;
use crate::harness::{Stonegate, Upstream};

async fn start(v2: &V2Keystone, up: &Upstream) -> Stonegate {
    Stonegate::builder()
        .keystone(v2)
        .upstream(up)
        .option("auth_version", "v2.0")
        .start()
        .await
}

#[tokio::test]
async fn v2_project_token_is_validated_at_the_catalogs_internal_endpoint() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let token = v2.token("project");
    let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", token)]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    // The golden document's identity (all of it: v2_differential.rs).
    let h = |n: &str| seen.header(n);
    assert_eq!(h("x-identity-status").as_deref(), Some("Confirmed"));
    assert_eq!(h("x-user-id").as_deref(), Some("u-v2"));
    assert_eq!(h("x-user").as_deref(), Some("d\u{e9}mo"));
    assert_eq!(h("x-tenant-id").as_deref(), Some("t-v2"));
    assert_eq!(h("x-tenant").as_deref(), Some("demo-tenant"));
    assert_eq!(h("x-roles").as_deref(), Some("member,reader"));
    assert_eq!(h("x-project-domain-id"), None, "v2.0 has no domains");
    let catalog = h("x-service-catalog").expect("X-Service-Catalog");
    assert!(
        catalog.starts_with("[{\"endpoints\": [{\"adminURL\": "),
        "{catalog}"
    );

    // Authenticated with v2.0 password credentials, validated at the
    // catalog's internal identity endpoint (interface = internal).
    assert_eq!(v2.auth_calls(), 1);
    assert_eq!(
        v2.validations(),
        vec![format!("/internal/v2.0/tokens/{token}")]
    );
    assert!(
        sg.log()
            .contains("Identity v2.0 (auth_version) has no domains"),
        "domain options are warned about"
    );
}

#[tokio::test]
async fn v2_tenantless_token_is_refused_and_no_catalog_is_forwarded_when_off() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "2")
        .option("include_service_catalog", false)
        .option("interface", "admin")
        .start()
        .await;
    // keystonemiddleware refuses a v2.0 token without a tenant ("Unable to
    // determine service tenancy"), as a user token and as a service token.
    let unscoped = v2.token("unscoped");
    let resp = sg.get("/", &[("X-Auth-Token", unscoped)]).await;
    assert_eq!(resp.status(), 401);
    let project = v2.token("project");
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", project), ("X-Service-Token", unscoped)],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 0);

    let resp = sg.get("/", &[("X-Auth-Token", project)]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.header("x-user-id").as_deref(), Some("u-v2"));
    assert_eq!(seen.header("x-service-catalog"), None);
    assert!(v2
        .validations()
        .iter()
        .all(|p| p.starts_with("/admin/v2.0/tokens/")));
}

#[tokio::test]
async fn v2_unknown_token_is_401_and_keystone_down_is_503() {
    let mut v2 = V2Keystone::start().await;
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
        v2.validations(),
        vec!["/internal/v2.0/tokens/0123456789abcdef0123456789abcdef"]
    );

    v2.stop();
    let resp = sg.get("/", &[("X-Auth-Token", v2.token("project"))]).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_identity_endpoint_follows_region_else_auth_url() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    // No identity endpoint in that region: validation goes to auth_url.
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "v2.0")
        .option("region_name", "Elsewhere")
        .start()
        .await;
    let token = v2.token("project");
    let resp = sg.get("/", &[("X-Auth-Token", token)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(v2.validations(), vec![format!("/v2.0/tokens/{token}")]);
    drop(sg);
    let sg = Stonegate::builder()
        .keystone(&v2)
        .upstream(&up)
        .option("auth_version", "v2.0")
        .option("region_name", "RegionOne")
        .option("interface", "admin")
        .start()
        .await;
    let other = v2.token("project_no_roles");
    let resp = sg.get("/", &[("X-Auth-Token", other)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        v2.validations().last().cloned(),
        Some(format!("/admin/v2.0/tokens/{other}"))
    );
}

#[tokio::test]
async fn v2_answer_without_expiry_is_503_never_forwarded() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let resp = sg
        .get("/", &[("X-Auth-Token", v2.token("without_expiry"))])
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_path_injection_tokens_never_reach_keystone() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let victim = v2.token("project");
    for token in [
        format!("../tokens/{victim}"),
        format!("x/../{victim}"),
        format!("{victim}?belongsTo=t-v2"),
        format!("{victim}#x"),
        format!("%2e%2e%2f{victim}"),
        "..".to_owned(),
        "../../v2.0".to_owned(),
    ] {
        let resp = sg.get("/", &[("X-Auth-Token", token.as_str())]).await;
        assert_eq!(resp.status(), 401, "{token}");
    }
    assert_eq!(v2.validations(), Vec::<String>::new());
    assert_eq!(up.hits(), 0);
}

#[tokio::test]
async fn v2_rejected_service_token_is_renewed_and_retried_once() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let first = v2.token("project");
    let resp = sg.get("/", &[("X-Auth-Token", first)]).await;
    assert_eq!(resp.status(), 200);
    v2.forget_service_tokens();
    let second = v2.token("admin_role");
    let resp = sg.get("/", &[("X-Auth-Token", second)]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header("x-user-id").as_deref(), Some("u-admin"));
    assert_eq!(v2.auth_calls(), 2);
    let second_path = format!("/internal/v2.0/tokens/{second}");
    let validations = v2.validations();
    assert_eq!(
        validations.iter().filter(|p| **p == second_path).count(),
        2,
        "one 401, one retry: {validations:?}"
    );
}

#[tokio::test]
async fn v2_service_token_never_extends_an_expired_user_token() {
    let v2 = V2Keystone::start().await;
    let up = Upstream::echo().await;
    let sg = start(&v2, &up).await;
    let service = v2.token("service");
    let resp = sg
        .get(
            "/",
            &[
                ("X-Auth-Token", v2.token("expired")),
                ("X-Service-Token", service),
            ],
        )
        .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(up.hits(), 0);
    // The service token itself is fine: with a live user token both pass.
    let resp = sg
        .get(
            "/",
            &[
                ("X-Auth-Token", v2.token("project")),
                ("X-Service-Token", service),
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
