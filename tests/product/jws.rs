//! Local validation of JWS tokens (`[jws]`) against a real Keystone issuing
//! them (`[token] provider = jws`, a private copy of the harness Keystone
//! started beside the Fernet one): stonegate holds only the public key.
//! Tokens decode to what Keystone says on validation; a known user's new
//! token costs no Keystone call, even with Keystone stopped; foreign-key,
//! tampered, `alg: none`, HS256 and oversize tokens never reach Keystone
//! (the last three refused before any signature work); rotation with
//! `keystone-manage create_jws_keypair` is picked up; revocations are
//! refused through revocation events.

use std::time::Duration;

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use hmac::{Hmac, Mac};
use p256::ecdsa::{signature::Signer as _, Signature, SigningKey};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::harness::{
    fingerprint,
    keystone::{assert_headers, expected_user_headers, Scope},
    private_keystone::PrivateKeystone,
    Keystone, Stonegate, Upstream,
};
use crate::local::metric;

async fn jws_stonegate(private: &PrivateKeystone, up: &Upstream, extra: &str) -> Stonegate {
    let repo = private.public_key_repository.display().to_string();
    Stonegate::builder()
        .keystone(&private.keystone)
        .upstream(up)
        .extra_toml(&format!(
            "[jws]\npublic_key_repository = {repo:?}\n{extra}\n\
             [revocation]\nrevocation_poll_interval = 1\n"
        ))
        .start()
        .await
}

async fn status(sg: &Stonegate, token: &str) -> u16 {
    sg.get("/", &[("X-Auth-Token", token)])
        .await
        .status()
        .as_u16()
}

async fn validate_calls(sg: &Stonegate) -> f64 {
    metric(
        sg,
        "stonegate_keystone_requests_total",
        &["operation=\"validate\""],
    )
    .await
}

async fn decisions(sg: &Stonegate, outcome: &str) -> f64 {
    let label = format!("outcome=\"{outcome}\"");
    metric(sg, "stonegate_local_decisions_total", &[&label]).await
}

fn segments(token: &str) -> (Value, Value) {
    let mut it = token.split('.');
    let mut next = || -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap()
    };
    (next(), next())
}

/// A compact JWS of `header` and `claims` signed ES256 with `key`.
fn sign_es256(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

/// A P-256 public key in PEM (SubjectPublicKeyInfo), as Keystone writes it.
pub(crate) fn public_pem(seed: u8) -> String {
    use p256::pkcs8::EncodePublicKey as _;
    foreign_key(seed)
        .verifying_key()
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap()
}

fn foreign_key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 0x42;
    SigningKey::from_bytes(&bytes.into()).unwrap()
}

#[tokio::test]
async fn real_jws_tokens_are_validated_with_the_public_key_only_even_with_keystone_stopped() {
    let shared = Keystone::from_env();
    let mut private = PrivateKeystone::start_jws(&shared).await;
    let ks = private.keystone.with_auth_url(&private.keystone.auth_url);
    let up = Upstream::echo().await;
    let sg = jws_stonegate(&private, &up, "").await;
    assert_eq!(
        metric(&sg, "stonegate_jws_public_keys", &[]).await,
        1.0,
        "the one public key loaded"
    );

    // Keystone issues JWS (ES256) now, and stonegate decides them.
    let kinds = [
        ("project", ks.demo_token().await),
        ("unscoped", ks.token("demo", Scope::Unscoped).await),
        (
            "domain",
            ks.token("demo", Scope::Domain("demo-domain")).await,
        ),
        ("system", ks.token("admin", Scope::System).await),
        ("appcred", ks.app_cred_token("unrestricted").await),
    ];
    for (kind, token) in &kinds {
        let (header, claims) = segments(token);
        assert_eq!(header["alg"], "ES256", "{kind}: {header}");
        assert!(claims["openstack_audit_ids"].is_array(), "{kind}: {claims}");
        assert_eq!(status(&sg, token).await, 200, "{kind}\n{}", sg.log());
        // The headers keystonemiddleware would set from Keystone's own answer.
        let expected = expected_user_headers(&ks.validate(token).await);
        assert_headers(&up.last().headers, &expected);
    }
    let online = validate_calls(&sg).await;
    assert_eq!(online, kinds.len() as f64, "each first token online once");

    // New tokens of the same users and scopes: decided locally.
    let mut again = Vec::new();
    for (kind, _) in &kinds[..4] {
        let token = match *kind {
            "project" => ks.demo_token().await,
            "unscoped" => ks.token("demo", Scope::Unscoped).await,
            "domain" => ks.token("demo", Scope::Domain("demo-domain")).await,
            _ => ks.token("admin", Scope::System).await,
        };
        let expected = expected_user_headers(&ks.validate(&token).await);
        again.push((kind, token, expected));
    }
    let unknown = ks
        .token("demo", Scope::ProjectIn("demo-alt", "demo-domain"))
        .await;
    let calls_before = validate_calls(&sg).await;
    assert_eq!(calls_before, online);

    // Keystone stopped: the known ones still pass with the same headers.
    private.stop();
    for (kind, token, expected) in &again {
        assert_eq!(status(&sg, token).await, 200, "{kind} with Keystone down");
        assert_headers(&up.last().headers, expected);
    }
    assert_eq!(validate_calls(&sg).await, calls_before, "no Keystone call");
    assert!(decisions(&sg, "valid").await >= again.len() as f64);
    // A scope never seen needs Keystone for its names and roles: 503, not
    // forwarded, never 401.
    let hits = up.hits();
    let r = sg.get("/", &[("X-Auth-Token", &unknown)]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(up.hits(), hits, "an undecided token reached the upstream");
}

#[tokio::test]
async fn foreign_key_tampered_none_hs256_and_oversize_tokens_never_reach_keystone() {
    let shared = Keystone::from_env();
    let private = PrivateKeystone::start_jws(&shared).await;
    let ks = &private.keystone;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .proxy_option("max_header_bytes", 64 * 1024)
        .extra_toml(&format!(
            "[jws]\npublic_key_repository = {:?}\n[revocation]\nrevocation_poll_interval = 1\n",
            private.public_key_repository.display().to_string()
        ))
        .start()
        .await;
    let real = ks.demo_token().await;
    let (header, claims) = segments(&real);
    let public_pem =
        std::fs::read_to_string(private.public_key_repository.join("public.pem")).unwrap();
    let admin_id = ks.user_id("admin");

    // Signed by keys Keystone never had: Keystone's own claims, and claims
    // naming another user.
    let mut forged = Vec::new();
    for i in 0..10u8 {
        forged.push(sign_es256(&foreign_key(i), &header, &claims));
    }
    let mut as_admin = claims.clone();
    as_admin["sub"] = json!(admin_id);
    forged.push(sign_es256(&foreign_key(99), &header, &as_admin));
    // The real signature over changed claims.
    let sig = real.rsplit('.').next().unwrap();
    let tampered = format!(
        "{}.{}.{sig}",
        real.split('.').next().unwrap(),
        URL_SAFE_NO_PAD.encode(as_admin.to_string())
    );
    forged.push(tampered);
    for t in &forged {
        assert_eq!(status(&sg, t).await, 401, "forged {}", fingerprint(t));
    }
    assert_eq!(decisions(&sg, "jws_unverified").await, forged.len() as f64);

    // Refused before any signature work: alg none (empty signature, and
    // Keystone's signature kept), HS256 keyed with the public key (the
    // key-confusion attack), other algorithms, and an oversize token.
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let body = b64(&as_admin);
    let none = format!("{}.{body}.", b64(&json!({"alg": "none", "typ": "JWT"})));
    let none_sig = format!("{}.{body}.{sig}", b64(&json!({"alg": "none"})));
    let hs_input = format!("{}.{body}", b64(&json!({"alg": "HS256", "typ": "JWT"})));
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(public_pem.as_bytes()).unwrap();
    mac.update(hs_input.as_bytes());
    let hs256 = format!(
        "{hs_input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    let es384 = format!("{}.{body}.{sig}", b64(&json!({"alg": "ES384"})));
    let refused_alg = [none, none_sig, hs256, es384];
    for t in &refused_alg {
        assert_eq!(status(&sg, t).await, 401, "{}", fingerprint(t));
    }
    let mut big = claims.clone();
    big["openstack_methods"] = json!(vec!["password"; 1200]);
    let oversize = sign_es256(&foreign_key(7), &header, &big);
    assert!(oversize.len() > 8 * 1024, "{}", oversize.len());
    assert_eq!(status(&sg, &oversize).await, 401);

    assert_eq!(
        decisions(&sg, "jws_algorithm").await,
        refused_alg.len() as f64
    );
    assert_eq!(
        decisions(&sg, "jws_unverified").await,
        forged.len() as f64,
        "no signature was checked for the refused-unparsed tokens"
    );
    assert_eq!(
        validate_calls(&sg).await,
        0.0,
        "a forged token reached Keystone"
    );
    assert_eq!(up.hits(), 0, "a forged token reached the upstream");
    // The real one still works (online once, for its names and roles).
    assert_eq!(status(&sg, &real).await, 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));
}

#[tokio::test]
async fn keystone_manage_create_jws_keypair_rotation_is_picked_up_and_a_bad_repository_keeps_the_keys(
) {
    let shared = Keystone::from_env();
    let private = PrivateKeystone::start_jws(&shared).await;
    let ks = &private.keystone;
    let up = Upstream::echo().await;
    // Nothing cached: every request is decided again against the keys.
    let repo = private.public_key_repository.clone();
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .option("token_cache_time", -1)
        .extra_toml(&format!(
            "[jws]\npublic_key_repository = {:?}\nkey_reload_interval = 1\n\
             [revocation]\nrevocation_poll_interval = 1\n",
            repo.display().to_string()
        ))
        .start()
        .await;
    let old = ks.demo_token().await;
    assert_eq!(status(&sg, &old).await, 200);

    // A new pair: its public key published beside the old, then it signs.
    private.jws_rotate("next.pem").await;
    let new = ks.demo_token().await;
    assert_eq!(status(&sg, &new).await, 200, "{}", sg.log());
    assert_eq!(status(&sg, &old).await, 200, "the old key still verifies");
    assert_eq!(
        validate_calls(&sg).await,
        1.0,
        "the new key's token decided locally (same user and scope)"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(metric(&sg, "stonegate_jws_public_keys", &[]).await, 2.0);

    // A broken file: logged, counted, the last good keys stay.
    std::fs::write(repo.join("broken.pem"), "not a key").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(metric(&sg, "stonegate_jws_key_reload_failures_total", &[]).await >= 1.0);
    assert_eq!(metric(&sg, "stonegate_jws_public_keys", &[]).await, 2.0);
    assert_eq!(status(&sg, &old).await, 200, "the old key kept");
    assert_eq!(status(&sg, &new).await, 200, "the new key kept");
    std::fs::remove_file(repo.join("broken.pem")).unwrap();

    // The old public key retired: its tokens are refused (no Keystone call),
    // and the new key's still pass.
    std::fs::remove_file(repo.join("public.pem")).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(metric(&sg, "stonegate_jws_public_keys", &[]).await, 1.0);
    assert_eq!(status(&sg, &old).await, 401);
    assert!(decisions(&sg, "jws_unverified").await >= 1.0);
    assert_eq!(status(&sg, &new).await, 200);
    assert_eq!(validate_calls(&sg).await, 1.0);
}

#[tokio::test]
async fn a_jws_token_revoked_in_keystone_is_refused_through_revocation_events() {
    let shared = Keystone::from_env();
    let private = PrivateKeystone::start_jws(&shared).await;
    let ks = &private.keystone;
    let up = Upstream::echo().await;
    let sg = jws_stonegate(&private, &up, "").await;
    let token = ks.token("revokee", Scope::Project("demo")).await;
    let sibling = ks.token("revokee", Scope::Project("demo")).await;
    assert_eq!(status(&sg, &token).await, 200);
    assert_eq!(status(&sg, &sibling).await, 200, "decided locally");
    ks.revoke(&token).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while status(&sg, &token).await != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "revoked token still accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status(&sg, &sibling).await, 200, "only the revoked one");
}

/// Keystone's reading of the golden tokens (`tests/keystone/jws_golden.py
/// decode`): name → its `validate_token` fields.
fn keystone_reads_the_golden_tokens() -> serde_json::Map<String, Value> {
    let out = crate::harness::run_with_deadline(
        std::process::Command::new(crate::harness::venv_python())
            .arg(crate::harness::repo_path("tests/keystone/jws_golden.py"))
            .arg("decode")
            .arg(crate::harness::repo_path("tests/fixtures/jws"))
            .env("PYTHONWARNINGS", "ignore"),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "jws_golden.py decode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Object(m) => m,
        other => panic!("{other}"),
    }
}

fn golden_tokens() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(crate::harness::repo_path("tests/fixtures/jws/tokens.json"))
        .unwrap();
    match serde_json::from_str(&text).unwrap() {
        Value::Object(m) => m,
        other => panic!("{other}"),
    }
}

fn unix_of(iso: &str) -> i64 {
    time::OffsetDateTime::parse(iso, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{iso}: {e}"))
        .unix_timestamp()
}

/// Golden tokens of every kind, made by Keystone's own JWS formatter
/// (`tests/keystone/jws_golden.py generate`, public key committed, private
/// key discarded): `stonegate token inspect` reads each exactly as
/// Keystone's `validate_token` does, run now, and refuses them all with
/// another public key.
#[test]
fn golden_tokens_of_every_kind_are_read_as_keystone_reads_them() {
    let keystone = keystone_reads_the_golden_tokens();
    let tokens = golden_tokens();
    assert!(tokens.len() >= 15, "{}", tokens.len());
    let repo = crate::harness::repo_path("tests/fixtures/jws/public");
    let inspect = |repo: &std::path::Path, token: &str| {
        crate::harness::run_with_deadline(
            std::process::Command::new(env!("CARGO_BIN_EXE_stonegate"))
                .args(["token", "inspect", "--public-key-repository"])
                .arg(repo)
                .arg(token),
            Duration::from_secs(30),
        )
    };
    for (name, token) in &tokens {
        let token = token.as_str().unwrap();
        let k = &keystone[name];
        let out = inspect(&repo, token);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let s: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["format"], "jws", "{name}");
        assert_eq!(s["key"], "public.pem", "{name}");
        assert_eq!(s["user_id"], k["user_id"], "{name}");
        assert_eq!(s["methods"], k["methods"], "{name}");
        assert_eq!(s["audit_ids"], k["audit_ids"], "{name}");
        let scope = match (
            k["system"].as_str(),
            k["domain_id"].as_str(),
            k["project_id"].as_str(),
        ) {
            (Some(sys), None, None) => format!("System({sys:?})"),
            (None, Some(d), None) => format!("Domain({d:?})"),
            (None, None, Some(p)) => format!("Project({p:?})"),
            (None, None, None) => "Unscoped".to_owned(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(s["scope"], json!(scope), "{name}");
        for (ours, theirs) in [
            ("trust_id", "trust_id"),
            ("app_cred_id", "app_cred_id"),
            ("access_token_id", "access_token_id"),
            ("thumbprint", "thumbprint"),
        ] {
            assert_eq!(s[ours], k[theirs], "{name}: {ours}");
        }
        match k["federated_group_ids"].as_array() {
            None => assert_eq!(s["federation"], Value::Null, "{name}"),
            Some(groups) => {
                let ids: Vec<&Value> = groups.iter().map(|g| &g["id"]).collect();
                assert_eq!(s["federation"]["group_ids"], json!(ids), "{name}");
                assert_eq!(
                    s["federation"]["idp_id"], k["identity_provider_id"],
                    "{name}"
                );
                assert_eq!(s["federation"]["protocol_id"], k["protocol_id"], "{name}");
            }
        }
        for t in ["issued_at", "expires_at"] {
            assert_eq!(
                unix_of(s[t].as_str().unwrap()),
                unix_of(k[t].as_str().unwrap()),
                "{name}: {t}"
            );
        }
        let expired = unix_of(k["expires_at"].as_str().unwrap())
            <= time::OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(s["expired"], json!(expired), "{name}");
    }

    // Another public key verifies none of them.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("public.pem"), public_pem(3)).unwrap();
    for (name, token) in &tokens {
        let out = inspect(other.path(), token.as_str().unwrap());
        assert!(!out.status.success(), "{name} verified with a foreign key");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no public key verifies"),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `[fernet]` and `[jws]` together (a migration from one provider to the
/// other): each token goes to its own keys by its shape. `enrich = false`
/// decides both from the token alone (this Keystone copy issues JWS and
/// cannot validate the shared Keystone's Fernet tokens online).
#[tokio::test]
async fn fernet_and_jws_tokens_are_told_apart_by_their_shape_with_both_on() {
    let shared = Keystone::from_env();
    let private = PrivateKeystone::start_jws(&shared).await;
    let ks = &private.keystone;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[fernet]\nkey_repository = {:?}\nenrich = false\n\
             [jws]\npublic_key_repository = {:?}\n\
             [revocation]\nrevocation_poll_interval = 1\n",
            private.key_repository.display().to_string(),
            private.public_key_repository.display().to_string()
        ))
        .start()
        .await;
    let fernet = shared.demo_token().await;
    let jws = ks.demo_token().await;
    assert!(!fernet.contains('.') && jws.matches('.').count() == 2);
    for (kind, token) in [("fernet", &fernet), ("jws", &jws)] {
        assert_eq!(status(&sg, token).await, 200, "{kind}\n{}", sg.log());
        assert_eq!(
            up.last().header("x-user-id"),
            Some(ks.user_id("demo")),
            "{kind}"
        );
        assert_eq!(
            up.last().header("x-project-id"),
            Some(ks.project_id("demo")),
            "{kind}"
        );
    }
    assert_eq!(decisions(&sg, "valid").await, 2.0);
    assert_eq!(validate_calls(&sg).await, 0.0);
    // A JWS-shaped token the public keys do not verify is not tried as Fernet.
    let forged = sign_es256(&foreign_key(5), &segments(&jws).0, &segments(&jws).1);
    assert_eq!(status(&sg, &forged).await, 401);
    assert_eq!(decisions(&sg, "jws_unverified").await, 1.0);
}
