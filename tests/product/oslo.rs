//! Drop-in for an existing OpenStack service: stonegate configured only by
//! the service's own `nova.conf` (oslo.config) or `api-paste.ini` filter
//! section, against the real Keystone, with the same identity reaching the
//! upstream as from a TOML configuration.

use std::process::Command;

use crate::harness::keystone::{assert_headers, expected_user_headers};
use crate::harness::kv::Memcached;
use crate::harness::{Keystone, Stonegate, Upstream};
use crate::local::validate_calls;

/// A `nova.conf` as deployment tools write it: other sections around,
/// keystoneauth plugin options, a deprecated alias, options stonegate
/// ignores, a `$` substitution, keystonemiddleware's memcached cache.
fn nova_conf(ks: &Keystone, memcached: &str) -> String {
    let public = ks.auth_url.trim_end_matches("/v3");
    format!(
        "[DEFAULT]\n\
         debug = False\n\
         keystone_public = {public}\n\
         \n\
         [database]\n\
         connection = mysql+pymysql://nova:secret@db/nova\n\
         \n\
         [keystone_authtoken]\n\
         # written by a deployment tool\n\
         auth_uri = $keystone_public\n\
         auth_url = {auth_url}\n\
         memcached_servers = {memcached}\n\
         memcache_security_strategy = ENCRYPT\n\
         memcache_secret_key = shared between nova-api replicas\n\
         memcache_use_advanced_pool = True\n\
         auth_type = password\n\
         project_domain_name = Default\n\
         user_domain_name = Default\n\
         project_name = service\n\
         username = svc\n\
         password = {password}\n\
         service_token_roles_required = true\n\
         service_type = compute\n\
         enforce_token_bind = permissive\n\
         \n\
         [oslo_concurrency]\n\
         lock_path = /var/lib/nova/tmp\n",
        auth_url = ks.auth_url,
        password = ks.password("svc"),
    )
}

#[tokio::test]
async fn nova_conf_alone_configures_stonegate_and_a_real_token_gets_through() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let up = Upstream::echo().await;
    let conf = nova_conf(&ks, &mc.server());
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .oslo_only(&[("nova.conf", conf.clone())])
        .start()
        .await;
    let token = ks.demo_token().await;
    let resp = sg
        .get("/v2.1/servers", &[("X-Auth-Token", token.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    assert_headers(
        &up.last().headers,
        &expected_user_headers(&ks.validate(&token).await),
    );

    // No token: 401, announcing the www_authenticate_uri read through the
    // deprecated `auth_uri` and its `$keystone_public` substitution.
    let resp = sg.get("/v2.1/servers", &[]).await;
    assert_eq!(resp.status(), 401);
    let public = ks.auth_url.trim_end_matches("/v3");
    assert_eq!(
        resp.headers()["www-authenticate"],
        format!("Keystone uri=\"{public}\"").as_str()
    );
    assert_eq!(up.hits(), 1, "the unauthenticated request was forwarded");

    // Each option it does not use is warned about, with file and line.
    let log = sg.log();
    assert!(
        log.contains("nova.conf:10 [keystone_authtoken] auth_uri: deprecated name, read as www_authenticate_uri"),
        "{log}"
    );
    assert!(
        log.contains("nova.conf:15 [keystone_authtoken] memcache_use_advanced_pool: ignored"),
        "{log}"
    );
    assert!(
        !log.contains(&ks.password("svc")),
        "the password reached the log"
    );

    // keystonemiddleware's memcached options are honoured: a second replica
    // configured by the same file is served from the shared cache, without
    // asking Keystone.
    let other_up = Upstream::echo().await;
    let replica = Stonegate::builder()
        .keystone(&ks)
        .upstream(&other_up)
        .oslo_only(&[("nova.conf", conf)])
        .start()
        .await;
    let resp = replica
        .get("/v2.1/servers", &[("X-Auth-Token", token.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(validate_calls(&replica).await, 0.0);
    assert_headers(
        &other_up.last().headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
}

#[tokio::test]
async fn a_paste_filter_section_overrides_the_oslo_file_it_names() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let up = Upstream::echo().await;
    let paste = "[pipeline:main]\n\
                 pipeline = cors request_id authtoken apiv2\n\
                 \n\
                 [filter:authtoken]\n\
                 paste.filter_factory = keystonemiddleware.auth_token:filter_factory\n\
                 oslo_config_file = nova.conf\n\
                 delay_auth_decision = true\n"
        .to_owned();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .oslo_only(&[
            ("nova.conf", nova_conf(&ks, &mc.server())),
            ("api-paste.ini", paste),
        ])
        .start()
        .await;
    // delay_auth_decision from the paste section: a request without a token
    // is forwarded, marked invalid, instead of being refused.
    let resp = sg.get("/v2.1/servers", &[("X-User-Id", "forged")]).await;
    assert_eq!(resp.status(), 200);
    let seen = up.last();
    assert_eq!(seen.header("x-identity-status").as_deref(), Some("Invalid"));
    assert_eq!(
        seen.header("x-user-id"),
        None,
        "a forged header got through"
    );
    // The oslo file still supplies the service account: real tokens validate.
    let token = ks.demo_token().await;
    let resp = sg
        .get("/v2.1/servers", &[("X-Auth-Token", token.as_str())])
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        up.last().header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
}

#[test]
fn check_config_explains_an_oslo_import_and_fails_closed_on_what_it_cannot_honour() {
    let ks = Keystone::from_env();
    let dir = tempfile::tempdir().unwrap();
    let nova = dir.path().join("nova.conf");
    let conf = nova_conf(&ks, "127.0.0.1:11211");
    std::fs::write(&nova, &conf).unwrap();
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_stonegate"))
            .arg("check-config")
            .arg("--oslo-config")
            .arg(&nova)
            .args([
                "--listen",
                "127.0.0.1:8774",
                "--upstream",
                "http://127.0.0.1:18774",
            ])
            .args(extra)
            .env_remove("STONEGATE_PASSWORD")
            .output()
            .expect("run stonegate")
    };
    let out = run(&["--admin-listen", "127.0.0.1:9901"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("username = \"svc\"    <- ")
            && stdout.contains("nova.conf:20 [keystone_authtoken] username"),
        "{stdout}"
    );
    assert!(stdout.contains("password = [redacted]"), "{stdout}");
    assert!(
        !stdout.contains(&ks.password("svc")),
        "check-config printed the password"
    );
    assert!(
        stdout.contains("memcache_secret_key = [redacted]"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("shared between nova-api"),
        "check-config printed the secret"
    );
    assert!(
        stdout.contains("memcache_use_advanced_pool: ignored"),
        "{stdout}"
    );
    assert!(
        stdout.contains("shared cache memcached (ENCRYPT)"),
        "{stdout}"
    );

    // A missing key names itself; a security option it cannot honour is an
    // error naming the option, the file and the line.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin_listen: is required"));
    std::fs::write(
        &nova,
        conf.replace(
            "enforce_token_bind = permissive",
            "enforce_token_bind = required",
        ),
    )
    .unwrap();
    let out = run(&["--admin-listen", "127.0.0.1:9901"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keystone_authtoken.enforce_token_bind") && err.contains("nova.conf:24"),
        "{err}"
    );
}
