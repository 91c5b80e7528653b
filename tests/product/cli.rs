//! The command line: `stonegate check-config` validates without starting and
//! names the key of every problem; a bad config is exit code 64 for `serve` too.

use std::process::{Command, Output};

fn stonegate(args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stonegate"));
    cmd.args(args)
        .env_remove("STONEGATE_PASSWORD")
        .env_remove("STONEGATE_APPLICATION_CREDENTIAL_SECRET");
    if let Some(p) = password {
        cmd.env("STONEGATE_PASSWORD", p);
    }
    crate::harness::run_with_deadline(&mut cmd, std::time::Duration::from_secs(60))
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("stonegate.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const VALID: &str = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
www_authenticate_uri = "http://127.0.0.1:5000/v3"
auth_url = "http://127.0.0.1:5000/v3"
username = "svc"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
"#;

#[test]
fn check_config_accepts_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, VALID);
    let out = stonegate(&["check-config", &path], Some("secret"));
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_names_the_key_of_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = VALID
        .replace("\"127.0.0.1:8080\"", "\"nope\"")
        .replace("http://127.0.0.1:8000", "ftp://127.0.0.1:8000")
        + "interface = \"sideways\"\n";
    let path = write(&dir, &text);
    let out = stonegate(&["check-config", &path], Some("secret"));
    assert_eq!(out.status.code(), Some(64));
    let err =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    for key in ["listen", "upstream", "keystone_authtoken.interface"] {
        assert!(err.contains(key), "no problem reported for {key}:\n{err}");
    }
}

#[test]
fn missing_service_password_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, VALID);
    let out = stonegate(&["check-config", &path], None);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password"), "{err}");
    assert!(err.contains("STONEGATE_PASSWORD"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_and_serve_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &VALID.replace("username =", "delay_auth_decisionn = true\nusername ="),
    );
    for args in [
        vec!["check-config", path.as_str()],
        vec!["serve", "--config", path.as_str()],
    ] {
        let out = stonegate(&args, Some("secret"));
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("delay_auth_decisionn"), "{err}");
    }
}

#[test]
fn the_annotated_example_config_is_valid() {
    // config/stonegate.toml reads its password from /run/secrets; point it
    // at a file of ours instead and check everything else as written.
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "secret\n").unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/stonegate.toml"
    ))
    .unwrap();
    assert!(example.contains("/run/secrets/stonegate-password"));
    let text = example.replace(
        "/run/secrets/stonegate-password",
        &secret.display().to_string(),
    );
    let path = write(&dir, &text);
    let out = stonegate(&["check-config", &path], None);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `text` with the commented-out `# [table]` block of each of `tables`
/// switched on: its `# key = value` lines uncommented (`# # ...` lines stay
/// comments), up to the first blank line.
fn uncomment_tables(text: &str, tables: &[&str]) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(table) = line.strip_prefix("# [") {
            // `# [t]`, and the array tables `# [[t.x]]` of a block.
            let table = table.trim_start_matches('[');
            inside = tables.iter().any(|t| {
                table.starts_with(&format!("{t}]")) || table.starts_with(&format!("{t}."))
            });
        } else if line.trim().is_empty() {
            inside = false;
        }
        let line = match line.strip_prefix("# ") {
            Some(rest) if inside => rest,
            _ => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[test]
fn the_annotated_examples_optional_sections_are_valid_when_switched_on() {
    // [fernet], [jws], [revocation], [tls], [authorization] and [kubernetes]
    // are commented out in the example (they need files only a deployment
    // has); switched on, with the harness's real key repository, a public
    // key, a real certificate and a policy file naming the rule the example
    // uses, they check too.
    let ks = crate::harness::Keystone::from_env();
    let repo = ks.fixtures()["fernet_key_repository"]
        .as_str()
        .expect("fixtures.json: fernet_key_repository")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("password");
    std::fs::write(&secret, "secret\n").unwrap();
    let (cert, key) = crate::tls::self_signed(dir.path());
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "project_member_api: role:member and project_id:%(project_id)s\n",
    )
    .unwrap();
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/stonegate.toml"
    ))
    .unwrap();
    let public = dir.path().join("jws-public");
    std::fs::create_dir(&public).unwrap();
    std::fs::write(public.join("public.pem"), crate::jws::public_pem(1)).unwrap();
    let text = uncomment_tables(
        &example,
        &[
            "fernet",
            "jws",
            "revocation",
            "tls",
            "authorization",
            "kubernetes",
        ],
    )
    .replace(
        "/run/secrets/stonegate-password",
        &secret.display().to_string(),
    )
    .replace("/etc/keystone/fernet-keys", &repo)
    .replace(
        "/etc/keystone/jws-keys/public",
        &public.display().to_string(),
    )
    .replace("/etc/stonegate/tls.crt", &cert)
    .replace("/etc/stonegate/tls.key", &key)
    // A self-signed certificate is its own CA bundle.
    .replace("/etc/stonegate/client-ca.pem", &cert)
    .replace("/etc/nova/policy.yaml", &policy.display().to_string());
    for table in [
        "\n[fernet]\n",
        "\n[jws]\n",
        "\n[revocation]\n",
        "\n[tls]\n",
        "\n[authorization]\n",
        "\n[[authorization.rules]]\n",
        "\n[kubernetes]\n",
    ] {
        assert!(text.contains(table), "{table:?} not switched on:\n{text}");
    }
    let path = write(&dir, &text);
    let out = stonegate(&["check-config", &path], None);
    assert!(
        out.status.success(),
        "stderr: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}
