//! Tests of the oslo.config and paste.deploy import.

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn nova_style_section_becomes_the_table_with_origins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(
        d,
        "nova.conf",
        "[DEFAULT]\nmy_ip = 10.0.0.5\n\n[keystone_authtoken]\n\
         auth_uri = http://$my_ip:5000\nauth_url = http://keystone:5000/v3\n\
         auth_plugin = v3password\nusername = nova\npassword = pa$$word\n\
         project_name = service\ndefault_domain_name = Default\n\
         delay_auth_decision = Yes\nservice_token_roles = service, admin\n\
         token_cache_time = 600\nmemcached_servers = 10.0.0.1:11211\n\
         enforce_token_bind = permissive\nfrobnicate = 3\n",
    );
    let i = import(std::slice::from_ref(&f)).unwrap();
    let t = &i.table;
    assert_eq!(
        t["www_authenticate_uri"].as_str(),
        Some("http://10.0.0.5:5000")
    );
    assert_eq!(t["auth_type"].as_str(), Some("password"));
    assert_eq!(t["password"].as_str(), Some("pa$word"));
    assert_eq!(t["user_domain_name"].as_str(), Some("Default"));
    assert_eq!(t["project_domain_name"].as_str(), Some("Default"));
    assert_eq!(t["delay_auth_decision"].as_bool(), Some(true));
    assert_eq!(t["token_cache_time"].as_integer(), Some(600));
    let roles: Vec<_> = t["service_token_roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(roles, ["service", "admin"]);
    let o = i
        .origin_of("keystone_authtoken.www_authenticate_uri")
        .unwrap();
    assert_eq!((o.line, o.written_as.as_str()), (5, "auth_uri"));
    let w = i.warnings.join("\n");
    assert!(
        w.contains("auth_uri: deprecated name, read as www_authenticate_uri"),
        "{w}"
    );
    assert!(w.contains("frobnicate: ignored"), "{w}");
    assert!(w.contains("enforce_token_bind: ignored"), "{w}");
    // The result is a valid stonegate [keystone_authtoken] table.
    let mut file = toml::Table::new();
    file.insert("listen".into(), "127.0.0.1:1".into());
    file.insert("upstream".into(), "http://127.0.0.1:2".into());
    file.insert(GROUP.into(), toml::Value::Table(i.table.clone()));
    let parsed: super::super::File = toml::Value::Table(file).try_into().unwrap();
    assert_eq!(parsed.keystone_authtoken.username.as_deref(), Some("nova"));
}

#[test]
fn paste_filter_overrides_the_oslo_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "glance-api.conf",
        "[keystone_authtoken]\nauth_url = http://a:5000\nusername = glance\ninterface = public\n",
    );
    let paste = write(
        d,
        "glance-api-paste.ini",
        "[pipeline:main]\npipeline = authtoken app\n\n[filter:authtoken]\n\
         paste.filter_factory = keystonemiddleware.auth_token:filter_factory\n\
         oslo_config_file = glance-api.conf\ninterface = admin\n",
    );
    let i = import(&[paste]).unwrap();
    assert_eq!(i.table["interface"].as_str(), Some("admin"));
    assert_eq!(i.table["username"].as_str(), Some("glance"));
    assert_eq!(i.files.len(), 2);
    assert_eq!(i.origins["interface"].section, "filter:authtoken");
}

#[test]
fn later_files_win_and_canonical_names_beat_aliases() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = write(
        d,
        "a.conf",
        "[keystone_authtoken]\nusername = one\ntenant_name = t\nproject_name = p\n",
    );
    let b = write(d, "b.conf", "[keystone_authtoken]\nusername = two\n");
    let i = import(&[a, b]).unwrap();
    assert_eq!(i.table["username"].as_str(), Some("two"));
    assert_eq!(i.table["project_name"].as_str(), Some("p"));
    assert!(i
        .warnings
        .iter()
        .any(|w| w.contains("tenant_name: ignored, project_name is also set")));
}

#[test]
fn security_relevant_values_it_cannot_honour_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(
        d,
        "x.conf",
        "[keystone_authtoken]\nenforce_token_bind = required\nmemcache_tls_enabled = true\n\
         admin_token = ADMIN\ndelay_auth_decision = maybe\n",
    );
    let p = import(&[f]).unwrap_err();
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&"keystone_authtoken.enforce_token_bind"),
        "{p:?}"
    );
    assert!(
        keys.contains(&"keystone_authtoken.memcache_tls_enabled"),
        "{p:?}"
    );
    assert!(keys.contains(&"keystone_authtoken.admin_token"), "{p:?}");
    assert!(
        keys.contains(&"keystone_authtoken.delay_auth_decision"),
        "{p:?}"
    );
    assert!(p.iter().all(|p| p.message.contains("x.conf:")), "{p:?}");
    assert!(
        p.iter().all(|p| !p.message.contains("ADMIN")),
        "a secret was repeated: {p:?}"
    );
}

#[test]
fn legacy_admin_options_and_auth_host_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(
        d,
        "old.conf",
        "[keystone_authtoken]\nauth_host = 10.1.1.1\nauth_port = 35357\nauth_protocol = http\n\
         admin_user = nova\nadmin_password = secret\nadmin_tenant_name = service\n\
         auth_version = v2.0\n",
    );
    let i = import(&[f]).unwrap();
    assert_eq!(i.table["auth_url"].as_str(), Some("http://10.1.1.1:35357"));
    assert_eq!(i.table["username"].as_str(), Some("nova"));
    assert_eq!(i.table["project_name"].as_str(), Some("service"));
    assert_eq!(i.table["user_domain_id"].as_str(), Some("default"));
    assert_eq!(i.table["project_domain_id"].as_str(), Some("default"));
    assert_eq!(i.table["auth_version"].as_str(), Some("v2.0"));
}

#[test]
fn auth_section_and_missing_sections_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = write(
        d,
        "s.conf",
        "[keystone_authtoken]\nauth_section = svc_auth\n[svc_auth]\nauth_url = http://k:5000\nusername = svc\n",
    );
    let i = import(&[f]).unwrap();
    assert_eq!(i.table["username"].as_str(), Some("svc"));
    assert_eq!(i.origins["username"].section, "svc_auth");
    let g = write(d, "none.conf", "[DEFAULT]\nx = 1\n");
    let p = import(&[g]).unwrap_err();
    assert!(p[0].message.contains("neither"), "{p:?}");
    let h = write(d, "bad.conf", "[keystone_authtoken]\npassword = a$\n");
    let p = import(&[h]).unwrap_err();
    assert_eq!(p[0].key, "keystone_authtoken.password");
    let h = write(
        d,
        "bad2.conf",
        "[keystone_authtoken]\npassword = s3cr${et\n",
    );
    let p = import(&[h]).unwrap_err();
    assert!(!p[0].message.contains("s3cr"), "{p:?}");
}

/// Every golden file of `tests/fixtures/oslo-golden/` (generated by its
/// `generate.py` with oslo.config itself) reads as oslo.config reads it. The
/// one deliberate difference: a `$` that starts no name, which oslo.config
/// keeps as it is, is refused here (fail closed).
#[test]
fn group_values_agree_with_oslo_config_on_the_golden_files() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oslo-golden");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let conf = entry.unwrap().path();
        if conf.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        files += 1;
        let golden: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(conf.with_extension("json")).unwrap())
                .unwrap();
        let ours = group_values(&std::fs::read_to_string(&conf).unwrap()).unwrap();
        let name = conf.display();
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            golden
                .keys()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
            "{name}"
        );
        for (key, expected) in &golden {
            match (&ours[key], expected.as_str()) {
                (Ok(v), Some(e)) => assert_eq!(v, e, "{name}: {key}"),
                (Ok(v), None) => panic!("{name}: {key} = {v:?}, oslo.config raises {expected}"),
                (Err(_), None) => {}
                (Err(why), Some(e)) => assert!(
                    why.contains("lone `$`") || why.contains("unterminated"),
                    "{name}: {key} refused ({why}), oslo.config reads {e:?}"
                ),
            }
        }
    }
    assert!(files >= 7, "golden files missing from {}", dir.display());
}

#[test]
fn a_bare_name_is_looked_up_in_its_own_section_first_then_in_default() {
    let v = group_values(
        "[DEFAULT]\nusername = d\nregion = r\n[keystone_authtoken]\nusername = nova\n\
         project_name = $username\nregion_name = ${region}\nloop = $loop\n",
    )
    .unwrap();
    assert_eq!(v["project_name"].as_deref(), Ok("nova"));
    assert_eq!(v["region_name"].as_deref(), Ok("r"));
    assert!(v["loop"].is_err());
}
