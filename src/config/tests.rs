//! Tests of the assembled configuration: the annotated example, defaults,
//! and problems reported with their keys across sections.

use std::time::Duration;

use super::*;
use crate::keystone::{settings::PASSWORD_ENV, ServiceCredentials};

fn no_env(_: &str) -> Option<String> {
    None
}

const MINIMAL: &str = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
auth_url = "http://127.0.0.1:5000/v3"
username = "svc"
password = "pw"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
"#;

#[test]
fn annotated_example_parses_and_builds() {
    let text = include_str!("../../config/stonegate.toml");
    let file = File::parse(text).expect("example parses");
    // The example names a password file that does not exist here; the
    // environment supplies it instead.
    let mut file = file;
    file.keystone_authtoken.password_file = None;
    let env = |k: &str| (k == PASSWORD_ENV).then(|| "from-env".to_string());
    let s = file.build(&env).expect("example builds");
    assert_eq!(s.proxy.listen.port(), 8080);
    assert_eq!(s.auth.token_cache_time, Duration::from_secs(300));
    assert!(s.auth.service_token_roles_required);
}

#[test]
fn minimal_config_gets_keystonemiddleware_defaults() {
    let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
    assert_eq!(s.keystone.interface, "internal");
    assert!(s.auth.include_service_catalog);
    assert!(!s.auth.delay_auth_decision);
    assert_eq!(s.auth.service_token_roles, vec!["service".to_string()]);
    assert_eq!(
        s.auth.challenges.keystone(),
        "Keystone uri=\"http://127.0.0.1:5000/v3\""
    );
    assert!(!s.auth.bearer, "Bearer tokens are opt-in");
}

#[test]
fn token_cache_time_minus_one_caches_nothing_and_other_negatives_are_named() {
    let with = |v: &str| {
        File::parse(&MINIMAL.replace(
            "[keystone_authtoken]",
            &format!("[keystone_authtoken]\ntoken_cache_time = {v}"),
        ))
        .unwrap()
        .build(&no_env)
    };
    assert_eq!(with("-1").unwrap().auth.token_cache_time, Duration::ZERO);
    assert_eq!(
        with("0").unwrap().auth.token_cache_time,
        Duration::ZERO,
        "0 is a lifetime of nothing too"
    );
    assert_eq!(
        problem_keys(with("-2")),
        vec!["keystone_authtoken.token_cache_time".to_string()]
    );
}

#[test]
fn upgrades_default_to_websocket_and_never_to_h2c() {
    let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
    assert_eq!(s.proxy.upgrades, crate::proxy::upgrade::Settings::default());
    assert_eq!(s.proxy.upgrades.max_lifetime, Duration::from_secs(3600));
    assert_eq!(
        s.proxy.upgrades.idle_timeout,
        Some(Duration::from_secs(300))
    );
    let with = |proxy: &str| {
        let text = MINIMAL.replace(
            "[keystone_authtoken]\n",
            &format!("[proxy]\n{proxy}\n[keystone_authtoken]\n"),
        );
        File::parse(&text).unwrap().build(&no_env)
    };
    for listed in [
        r#"["websocket", "h2c"]"#,
        r#"["HTTP/2.0"]"#,
        r#"["web socket"]"#,
    ] {
        let r = with(&format!("upgrade_protocols = {listed}"));
        assert_eq!(problem_keys(r), vec!["proxy.upgrade_protocols"], "{listed}");
    }
    let r = with("tunnel_max_lifetime = 0");
    assert_eq!(problem_keys(r), vec!["proxy.tunnel_max_lifetime"]);
    let s = with("upgrade_protocols = []\ntunnel_idle_timeout = 0").unwrap();
    assert_eq!(s.proxy.upgrades.idle_timeout, None);
    let public = format!(
        "{MINIMAL}\n[[routes.public]]\nmethod = \"GET\"\npath = \"/live/**\"\nupgrade = true\n"
    );
    let s = File::parse(&public).unwrap().build(&no_env).unwrap();
    assert!(s
        .auth
        .public_routes
        .allows_upgrade(&http::Method::GET, "/live/x"));
    assert!(!s
        .auth
        .public_routes
        .allows_upgrade(&http::Method::GET, "/other"));
}

#[test]
fn unknown_key_is_named() {
    let err = File::parse(&format!("{MINIMAL}\nbogus_option = 1\n")).unwrap_err();
    assert!(err.to_string().contains("bogus_option"), "{err}");
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let text = r#"
listen = "nonsense"
upstream = "ftp://x"
admin_listen = "127.0.0.1:9090"
log_format = "xml"
[keystone_authtoken]
auth_url = "http://127.0.0.1:5000/v3"
username = "svc"
interface = "private"
"#;
    let Err(Error::Invalid(problems)) = File::parse(text).unwrap().build(&no_env) else {
        panic!("expected problems");
    };
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "listen",
        "upstream",
        "log_format",
        "keystone_authtoken.interface",
        "keystone_authtoken.user_domain_name",
        "keystone_authtoken.password",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
}

fn v2(extra: &str) -> Result<Settings, Error> {
    let text = MINIMAL.replace("/v3\"", "/v2.0\"").replace(
        "[keystone_authtoken]\n",
        &format!("[keystone_authtoken]\nauth_version = \"v2.0\"\n{extra}"),
    );
    File::parse(&text).unwrap().build(&no_env)
}

fn problem_keys(r: Result<Settings, Error>) -> Vec<String> {
    match r {
        Err(Error::Invalid(p)) => p.into_iter().map(|p| p.key).collect(),
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn auth_version_spellings() {
    for (v, want) in [
        ("2", AuthVersion::V2),
        ("2.0", AuthVersion::V2),
        ("v2.0", AuthVersion::V2),
        ("v3", AuthVersion::V3),
        ("3", AuthVersion::V3),
        ("v3.0", AuthVersion::V3),
    ] {
        assert_eq!(AuthVersion::parse(v), Some(want), "{v}");
    }
    for v in ["v1", "2.1", "", "v4", "latest"] {
        assert_eq!(AuthVersion::parse(v), None, "{v}");
    }
    let s = File::parse(MINIMAL).unwrap().build(&no_env).unwrap();
    assert_eq!(s.keystone.auth_version, AuthVersion::V3);
    let text = MINIMAL.replace(
        "[keystone_authtoken]\n",
        "[keystone_authtoken]\nauth_version = \"v2.5\"\n",
    );
    let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
    assert_eq!(keys, vec!["keystone_authtoken.auth_version"]);
}

#[test]
fn v2_password_credentials_ignore_domains_with_a_warning() {
    use secrecy::ExposeSecret;
    let s = v2("").unwrap();
    assert_eq!(s.keystone.auth_version, AuthVersion::V2);
    let ServiceCredentials::PasswordV2 {
        user,
        password,
        tenant,
    } = &s.keystone.credentials
    else {
        panic!("{:?}", s.keystone.credentials)
    };
    assert_eq!(user, &("username", "svc".to_string()));
    assert_eq!(password.expose_secret(), "pw");
    assert_eq!(tenant, &Some(("tenantName", "service".to_string())));
    let warned: Vec<&str> = s.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        warned,
        vec![
            "keystone_authtoken.user_domain_name",
            "keystone_authtoken.project_domain_name"
        ]
    );
    let s = v2("project_id = \"p1\"\n").unwrap();
    let ServiceCredentials::PasswordV2 { tenant, .. } = &s.keystone.credentials else {
        panic!()
    };
    assert_eq!(tenant, &Some(("tenantId", "p1".to_string())));
}

#[test]
fn v3_only_features_are_errors_with_v2() {
    let dir = tempfile::tempdir().unwrap();
    let fernet = format!(
        "\n[fernet]\nkey_repository = {:?}\n",
        dir.path().display().to_string()
    );
    let text = MINIMAL.replace("/v3\"", "/v2.0\"").replace(
        "[keystone_authtoken]\n",
        "[keystone_authtoken]\nauth_version = \"2\"\n",
    ) + &fernet
        + "\n[revocation]\nenabled = true\n";
    let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
    assert!(keys.contains(&"fernet".to_string()), "{keys:?}");
    assert!(keys.contains(&"revocation".to_string()), "{keys:?}");

    let keys = problem_keys(v2(
        "auth_type = \"v3applicationcredential\"\napplication_credential_id = \"x\"\n",
    ));
    assert_eq!(keys, vec!["keystone_authtoken.auth_type"]);

    let text = MINIMAL.replace(
        "[keystone_authtoken]\n",
        "[keystone_authtoken]\nauth_version = \"v2.0\"\n",
    );
    let keys = problem_keys(File::parse(&text).unwrap().build(&no_env));
    assert_eq!(keys, vec!["keystone_authtoken.auth_url"]);
}

#[test]
fn password_comes_from_file_or_env_and_debug_redacts_it() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pw");
    std::fs::write(&f, "s3cret\n").unwrap();
    let text = MINIMAL.replace(
        "password = \"pw\"",
        &format!("password_file = {:?}", f.display().to_string()),
    );
    let file = File::parse(&text).unwrap();
    let s = file.build(&no_env).unwrap();
    let ServiceCredentials::Password { password, .. } = &s.keystone.credentials else {
        panic!()
    };
    assert_eq!(password.expose_secret(), "s3cret");
    assert!(!format!("{s:?}").contains("s3cret"));
    assert!(!format!("{file:?}").contains("s3cret"));

    let text = MINIMAL.replace("password = \"pw\"\n", "");
    let env = |k: &str| (k == PASSWORD_ENV).then(|| "envpw".to_string());
    let s = File::parse(&text).unwrap().build(&env).unwrap();
    let ServiceCredentials::Password { password, .. } = &s.keystone.credentials else {
        panic!()
    };
    assert_eq!(password.expose_secret(), "envpw");
}

fn shared(extra_authtoken: &str, extra_top: &str) -> Result<Settings, Vec<Problem>> {
    let text = format!("{extra_top}\n{MINIMAL}\n{extra_authtoken}\n");
    match File::parse(&text).unwrap().build(&no_env) {
        Ok(s) => Ok(s),
        Err(Error::Invalid(p)) => Err(p),
        Err(e) => panic!("{e}"),
    }
}

fn keys_of(p: &[Problem]) -> Vec<&str> {
    p.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn shared_cache_needs_mac_or_encrypt_and_a_secret() {
    use crate::shared_cache::{crypt::Strategy, Backend};
    use secrecy::ExposeSecret;
    let servers = "memcached_servers = [\"127.0.0.1:11211\", \"[::1]:11212\"]\n";
    // No strategy (kmw's default "None"): refused, naming the key.
    let p = shared(servers, "").unwrap_err();
    assert_eq!(
        keys_of(&p),
        ["keystone_authtoken.memcache_security_strategy"]
    );
    assert!(p[0].message.contains("forge"), "{}", p[0]);
    let p = shared(
        &format!("{servers}memcache_security_strategy = \"None\""),
        "",
    )
    .unwrap_err();
    assert_eq!(
        keys_of(&p),
        ["keystone_authtoken.memcache_security_strategy"]
    );
    // Lower case would derive other keys than keystonemiddleware's.
    let p = shared(
        &format!("{servers}memcache_security_strategy = \"mac\""),
        "",
    )
    .unwrap_err();
    assert!(p[0].message.contains("upper case"), "{}", p[0]);
    // A strategy but no secret.
    let p = shared(
        &format!("{servers}memcache_security_strategy = \"MAC\""),
        "",
    )
    .unwrap_err();
    assert_eq!(keys_of(&p), ["keystone_authtoken.memcache_secret_key"]);
    assert!(p[0].message.contains(settings_env()), "{}", p[0]);
    // Complete.
    let s = shared(
        &format!("{servers}memcache_security_strategy = \"ENCRYPT\"\nmemcache_secret_key = \"k\""),
        "",
    )
    .unwrap();
    let c = s.auth.shared_cache.unwrap();
    assert_eq!(c.strategy, Strategy::Encrypt);
    assert_eq!(c.secret.expose_secret(), "k");
    assert_eq!(c.socket_timeout, Duration::from_millis(500));
    assert_eq!(c.dead_retry, Duration::from_secs(300));
    assert!(matches!(&c.backend, Backend::Memcached(v) if v.len() == 2));
    assert!(!format!("{c:?}").contains("\"k\""));
    // Without servers nothing is shared, whatever the strategy says.
    let s = shared("memcache_security_strategy = \"MAC\"", "").unwrap();
    assert!(s.auth.shared_cache.is_none());
}

fn settings_env() -> &'static str {
    crate::shared_cache::settings::SECRET_KEY_ENV
}

#[test]
fn shared_cache_secret_from_file_or_environment() {
    use secrecy::ExposeSecret;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "from-file\n").unwrap();
    let text = format!(
        "{MINIMAL}\nmemcached_servers = [\"127.0.0.1:11211\"]\nmemcache_security_strategy = \"MAC\"\n\
         memcache_secret_key_file = {:?}\n",
        f.display().to_string()
    );
    let s = File::parse(&text).unwrap().build(&no_env).unwrap();
    assert_eq!(
        s.auth.shared_cache.unwrap().secret.expose_secret(),
        "from-file"
    );
    let text = format!(
        "{MINIMAL}\nmemcached_servers = [\"127.0.0.1:11211\"]\nmemcache_security_strategy = \"MAC\"\n"
    );
    let env = |k: &str| (k == settings_env()).then(|| "from-env".to_string());
    let s = File::parse(&text).unwrap().build(&env).unwrap();
    assert_eq!(
        s.auth.shared_cache.unwrap().secret.expose_secret(),
        "from-env"
    );
}

#[test]
fn shared_cache_backends_and_values_are_checked() {
    let ok = "memcache_security_strategy = \"MAC\"\nmemcache_secret_key = \"k\"\n";
    // Both backends: one problem naming both keys.
    let p = shared(
        &format!("{ok}memcached_servers = [\"127.0.0.1:11211\"]"),
        "",
    )
    .map(|_| ())
    .and_then(|()| {
        shared(
            &format!("{ok}memcached_servers = [\"127.0.0.1:11211\"]\n[cache]\nredis_url = \"redis://127.0.0.1/0\""),
            "",
        )
    })
    .unwrap_err();
    assert_eq!(keys_of(&p), ["cache.redis_url"]);
    assert!(p[0]
        .message
        .contains("keystone_authtoken.memcached_servers"));
    // Redis alone.
    let s = shared(
        &format!("{ok}[cache]\nredis_url = \"redis://:pw@127.0.0.1:6379/0\""),
        "",
    )
    .unwrap();
    let c = s.auth.shared_cache.unwrap();
    assert_eq!(c.backend.label(), "redis");
    assert!(!format!("{c:?}").contains("pw"));
    let p = shared(&format!("{ok}[cache]\nredis_url = \"http://x\""), "").unwrap_err();
    assert_eq!(keys_of(&p), ["cache.redis_url"]);
    // Bad servers and values, each named.
    let p = shared(
        &format!(
            "{ok}memcached_servers = [\"127.0.0.1\", \"h:0\", \"ok:1\"]\n\
             memcache_pool_socket_timeout = 0\nmemcache_pool_maxsize = 0"
        ),
        "",
    )
    .unwrap_err();
    assert_eq!(
        keys_of(&p),
        [
            "keystone_authtoken.memcache_pool_socket_timeout",
            "keystone_authtoken.memcache_pool_maxsize",
            "keystone_authtoken.memcached_servers[0]",
            "keystone_authtoken.memcached_servers[1]",
        ]
    );
    let p = shared(&format!("{ok}memcached_servers = []"), "").unwrap_err();
    assert_eq!(keys_of(&p), ["keystone_authtoken.memcached_servers"]);
    // The shared cache serves online validation: not with [fernet].
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("0"), "").unwrap();
    let p = shared(
        &format!(
            "{ok}memcached_servers = [\"127.0.0.1:11211\"]\n[fernet]\nkey_repository = {:?}",
            dir.path().display().to_string()
        ),
        "",
    )
    .unwrap_err();
    assert!(
        keys_of(&p).contains(&"keystone_authtoken.memcached_servers"),
        "{p:?}"
    );
}

#[test]
fn every_section_type_error_is_reported_in_one_run() {
    let text = format!(
        "bogus_option = 1\n{MINIMAL}\n[proxy]\nconnect_timeout = \"five\"\n[cache]\nnegative_tl = 3\n"
    );
    let err = File::parse(&text).unwrap_err().to_string();
    for part in ["bogus_option", "connect_timeout", "negative_tl"] {
        assert!(err.contains(part), "{part} missing from {err}");
    }
    assert_eq!(
        err.matches("unknown field `bogus_option`").count(),
        1,
        "{err}"
    );
    assert!(err.contains("line "), "{err}");
}

#[test]
fn tls_client_certificates_are_checked_with_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "x").unwrap();
    let tls = |keys: &str| {
        let text = format!(
            "{MINIMAL}\n[tls]\ncert_file = {ca:?}\nkey_file = {ca:?}\n{keys}\n",
            ca = ca.display().to_string()
        );
        File::parse(&text).map(|f| f.build(&no_env))
    };
    let ca = format!("client_ca_file = {:?}", ca.display().to_string());
    // Required unless "optional"; without a CA file no client certificate.
    for (keys, want) in [
        (ca.clone(), Some(true)),
        (format!("{ca}\nclient_auth = \"required\""), Some(true)),
        (format!("{ca}\nclient_auth = \"optional\""), Some(false)),
        (String::new(), None),
    ] {
        let s = tls(&keys).unwrap().unwrap();
        let clients = s.proxy.tls.unwrap().client_certificates();
        assert_eq!(clients.map(|c| c.required), want, "{keys}");
    }
    assert_eq!(
        problem_keys(tls("client_auth = \"optional\"").unwrap()),
        vec!["tls.client_auth"]
    );
    assert_eq!(
        problem_keys(tls("client_ca_file = \"/nonexistent/ca.pem\"").unwrap()),
        vec!["tls.client_ca_file"]
    );
    let err = tls(&format!("{ca}\nclient_auth = \"on\"")).unwrap_err();
    assert!(err.to_string().contains("client_auth"), "{err}");
}

#[test]
fn worker_threads_default_to_one_per_core_and_zero_is_named() {
    let with = |v: &str| {
        File::parse(&format!("{MINIMAL}\n[proxy]\n{v}\n"))
            .unwrap()
            .build(&no_env)
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(with("").unwrap().proxy.worker_threads(), cores);
    assert_eq!(
        with("worker_threads = 3").unwrap().proxy.worker_threads(),
        3
    );
    assert_eq!(
        problem_keys(with("worker_threads = 0")),
        vec!["proxy.worker_threads"]
    );
}
