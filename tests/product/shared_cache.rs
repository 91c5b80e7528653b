//! The shared second-level cache against real memcached and Redis servers and
//! the real Keystone: a token validated by one replica is served by another
//! without a Keystone call and with the same headers; entries are unreadable
//! (ENCRYPT) and unforgeable (MAC) without the secret; keystonemiddleware's
//! own cache code reads stonegate's entries and the other way round; and the
//! cache dying, hanging or answering garbage never costs a request; a session
//! logout removes the shared entry.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use stonegate::shared_cache::crypt::{Keys, Strategy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::keystone::{assert_headers, expected_user_headers};
use crate::harness::kv::{Memcached, Redis};
use crate::harness::stonegate::Builder;
use crate::harness::{Keystone, Scope, Stonegate, Upstream, IDENTITY_HEADERS};
use crate::local::{metric, validate_calls};

const SECRET: &str = "a shared secret for the tests";

pub(crate) enum Backend<'a> {
    Memcached(&'a [String]),
    Redis(&'a str),
}

async fn replica(
    ks: &Keystone,
    up: &Upstream,
    backend: Backend<'_>,
    strategy: Strategy,
) -> Stonegate {
    replica_builder(ks, up, backend, strategy).start().await
}

/// A replica using the shared cache `backend` with `strategy` (not started).
pub(crate) fn replica_builder(
    ks: &Keystone,
    up: &Upstream,
    backend: Backend<'_>,
    strategy: Strategy,
) -> Builder {
    let b = Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .option("memcache_security_strategy", strategy.as_str())
        .option("memcache_secret_key", SECRET)
        .option("memcache_pool_socket_timeout", 0.3);
    match backend {
        Backend::Memcached(servers) => b.option("memcached_servers", servers.to_vec()),
        Backend::Redis(url) => b.cache_option("redis_url", url),
    }
}

fn key(token: &str, strategy: Strategy) -> String {
    Keys::derive(SECRET.as_bytes(), token.as_bytes(), strategy).cache_key()
}

async fn shared_ops(sg: &Stonegate, op: &str, result: &str) -> f64 {
    let op = format!("op=\"{op}\"");
    let result = format!("result=\"{result}\"");
    metric(
        sg,
        "stonegate_shared_cache_operations_total",
        &[&op, &result],
    )
    .await
}

async fn status(sg: &Stonegate, token: &str) -> u16 {
    sg.get("/", &[("X-Auth-Token", token)])
        .await
        .status()
        .as_u16()
}

/// Replica A validates with Keystone; replica B is served from the shared
/// cache (no Keystone validation at all) with the very same headers.
async fn second_replica_needs_no_keystone(
    ks: &Keystone,
    a: &Stonegate,
    b: &Stonegate,
    up: &Upstream,
) -> String {
    let token = ks.demo_token().await;
    assert_eq!(status(a, &token).await, 200);
    let seen_a = up.last();
    assert_eq!(validate_calls(a).await, 1.0);
    assert_eq!(shared_ops(a, "set", "ok").await, 1.0);

    assert_eq!(status(b, &token).await, 200);
    let seen_b = up.last();
    assert_eq!(validate_calls(b).await, 0.0, "B asked Keystone");
    assert_eq!(shared_ops(b, "get", "hit").await, 1.0);
    for h in IDENTITY_HEADERS {
        assert_eq!(seen_a.header(h), seen_b.header(h), "{h} differs");
    }
    assert_headers(
        &seen_b.headers,
        &expected_user_headers(&ks.validate(&token).await),
    );
    assert_eq!(seen_b.header("x-user-id"), Some(ks.user_id("demo")));
    assert!(seen_b.header("x-service-catalog").is_some());
    token
}

#[tokio::test]
async fn memcached_replica_b_serves_what_replica_a_validated_without_keystone() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let servers = [mc.server()];
    let up = Upstream::echo().await;
    let a = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    let b = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    let token = second_replica_needs_no_keystone(&ks, &a, &b, &up).await;

    // ENCRYPT: the stored value shows neither the token nor who it is.
    let raw = mc
        .raw_get(&key(&token, Strategy::Encrypt))
        .await
        .expect("entry under keystonemiddleware's key");
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&token));
    assert!(!text.contains(&ks.user_id("demo")));
    assert!(!text.contains(&ks.project_id("demo")));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&raw[64..])
        .unwrap();
    assert!(!String::from_utf8_lossy(&decoded).contains(&ks.user_id("demo")));
}

#[tokio::test]
async fn redis_replica_b_serves_what_replica_a_validated_without_keystone() {
    let ks = Keystone::from_env();
    let redis = Redis::start().await;
    let up = Upstream::echo().await;
    let url = redis.url();
    let a = replica(&ks, &up, Backend::Redis(&url), Strategy::Encrypt).await;
    let b = replica(&ks, &up, Backend::Redis(&url), Strategy::Encrypt).await;
    let token = second_replica_needs_no_keystone(&ks, &a, &b, &up).await;

    let key = key(&token, Strategy::Encrypt);
    let raw = redis.raw_get(&key).await.expect("entry in Redis");
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains(&token));
    assert!(!text.contains(&ks.user_id("demo")));
    // Lives at most token_cache_time (300 s).
    let ttl = redis.raw_ttl(&key).await;
    assert!((1..=300).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn mac_entries_are_authenticated_a_tampered_entry_is_a_miss() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let servers = [mc.server()];
    let up = Upstream::echo().await;
    let a = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Mac).await;
    let token = ks.demo_token().await;
    assert_eq!(status(&a, &token).await, 200);
    let key = key(&token, Strategy::Mac);
    let raw = mc.raw_get(&key).await.expect("entry");
    assert!(!String::from_utf8_lossy(&raw).contains(&token));

    // MAC does not hide the body: an attacker with write access to the cache
    // turns demo into admin, keeping the old MAC (they lack the secret).
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut body: Value = serde_json::from_slice(&b64.decode(&raw[64..]).unwrap()).unwrap();
    assert_eq!(body["token"]["user"]["id"], json!(ks.user_id("demo")));
    body["token"]["user"]["id"] = json!(ks.user_id("admin"));
    body["token"]["user"]["name"] = json!("admin");
    body["token"]["roles"] = json!([{"id": "x", "name": "admin"}]);
    let mut forged = raw[..64].to_vec();
    forged.extend_from_slice(b64.encode(serde_json::to_vec(&body).unwrap()).as_bytes());
    mc.raw_set(&key, &forged, 300).await;

    // A replica with an empty moka: the entry fails its MAC, Keystone is
    // asked, and the answer is demo's.
    let c = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Mac).await;
    assert_eq!(status(&c, &token).await, 200);
    let seen = up.last();
    assert_eq!(seen.header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(seen.header("x-user-name").as_deref(), Some("demo"));
    assert!(!seen.header("x-roles").unwrap().contains("admin"));
    assert_eq!(shared_ops(&c, "get", "rejected").await, 1.0);
    assert_eq!(validate_calls(&c).await, 1.0);
    // ... and it wrote a good entry back.
    assert_ne!(mc.raw_get(&key).await.unwrap(), forged);

    // A value written under another secret is just as useless.
    let other = Keys::derive(b"another secret", token.as_bytes(), Strategy::Mac);
    mc.raw_set(
        &key,
        &other.protect(&serde_json::to_vec(&body).unwrap()).unwrap(),
        300,
    )
    .await;
    let d = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Mac).await;
    assert_eq!(status(&d, &token).await, 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(shared_ops(&d, "get", "rejected").await, 1.0);
}

/// What keystonemiddleware never shares, stonegate never writes: an invalid
/// token's answer, and a validation made with `allow_expired` (an expired
/// user token with a service token). Checked on the memcached server's own
/// key listing and by keystonemiddleware's own cache code reading the
/// token's entry; an ordinary validation is the control.
#[tokio::test]
async fn invalid_and_allow_expired_results_are_never_written_to_the_shared_cache() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let servers = [mc.server()];
    let up = Upstream::echo().await;
    let sg = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    let (expired, expires_at) = ks.short_lived_token(Duration::from_secs(2)).await;
    let service = ks.svc_token().await;

    // Invalid: 401, nothing written.
    let bogus = "gAAAAABnot-a-valid-token-0123456789";
    assert_eq!(status(&sg, bogus).await, 401);
    assert_eq!(
        mc.keys().await,
        Vec::<String>::new(),
        "an invalid token was shared"
    );
    assert_eq!(
        kmw_cache("get", &servers[0], bogus, None).await.trim(),
        "null"
    );

    // allow_expired: forwarded (a service token holding "service"), and only
    // the service token's own, ordinary validation is shared.
    let wait = expires_at
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default()
        + Duration::from_millis(1100);
    tokio::time::sleep(wait).await;
    assert_eq!(
        ks.validate_raw(&expired, false).await.0,
        404,
        "expired for Keystone"
    );
    let resp = sg
        .get(
            "/",
            &[("X-Auth-Token", &expired), ("X-Service-Token", &service)],
        )
        .await;
    assert_eq!(resp.status(), 200, "allow_expired with a service token");
    assert_eq!(mc.keys().await.len(), 1, "only the service token's entry");
    assert_eq!(
        kmw_cache("get", &servers[0], &expired, None).await.trim(),
        "null",
        "an allow_expired validation was shared"
    );
    assert!(kmw_cache("get", &servers[0], &service, None)
        .await
        .contains("\"token\""));

    // The control: an ordinary valid token is written, where kmw reads it.
    let valid = ks.demo_token().await;
    assert_eq!(status(&sg, &valid).await, 200);
    assert_eq!(mc.keys().await.len(), 2);
    assert!(kmw_cache("get", &servers[0], &valid, None)
        .await
        .contains("\"token\""));
}

/// Runs kmw_cache.py (keystonemiddleware's SecureTokenCache) with the venv's Python.
async fn kmw_cache(op: &str, server: &str, token: &str, stdin: Option<&Value>) -> String {
    let mut child = crate::harness::oracle_python()
        .arg(crate::harness::repo_path("tests/product/kmw_cache.py"))
        .arg(op)
        .arg(server)
        .env("TOKEN", token)
        .env("SECRET", SECRET)
        .env("STRATEGY", "ENCRYPT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(v) = stdin {
        input
            .write_all(serde_json::to_string(v).unwrap().as_bytes())
            .await
            .unwrap();
    }
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "kmw_cache.py {op} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn keystonemiddleware_and_stonegate_read_each_others_entries() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let servers = [mc.server()];
    let up = Upstream::echo().await;
    let sg = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;

    // stonegate writes; keystonemiddleware's own code reads it back.
    let token = ks.demo_token().await;
    assert_eq!(status(&sg, &token).await, 200);
    let read: Value = serde_json::from_str(&kmw_cache("get", &servers[0], &token, None).await)
        .expect("kmw's cache.get returns JSON");
    let truth = ks.validate(&token).await;
    for field in [
        "user",
        "project",
        "roles",
        "expires_at",
        "audit_ids",
        "catalog",
    ] {
        assert_eq!(read["token"][field], truth[field], "token.{field}");
    }

    // keystonemiddleware writes (what its fetch_token caches after a
    // validation); stonegate serves the token with no Keystone call.
    let token2 = ks.token("demo", Scope::Project("demo")).await;
    let body = json!({ "token": ks.validate(&token2).await });
    assert_eq!(
        kmw_cache("set", &servers[0], &token2, Some(&body))
            .await
            .trim(),
        "stored"
    );
    let before = validate_calls(&sg).await;
    assert_eq!(status(&sg, &token2).await, 200);
    assert_eq!(
        validate_calls(&sg).await,
        before,
        "stonegate asked Keystone"
    );
    assert_eq!(shared_ops(&sg, "get", "hit").await, 1.0);
    assert_headers(&up.last().headers, &expected_user_headers(&body["token"]));
}

#[tokio::test]
async fn the_cache_server_dying_mid_run_costs_no_request() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let mut mc = Memcached::start().await;
    let mut redis = Redis::start().await;
    let servers = [mc.server()];
    let url = redis.url();
    let backends = [Backend::Memcached(&servers), Backend::Redis(&url)];
    let mut replicas = Vec::new();
    let first = ks.demo_token().await;
    for b in backends {
        let sg = replica(&ks, &up, b, Strategy::Encrypt).await;
        assert_eq!(status(&sg, &first).await, 200);
        assert_eq!(shared_ops(&sg, "set", "ok").await, 1.0);
        replicas.push(sg);
    }
    mc.0.kill();
    redis.0.kill();
    let tokens = [ks.demo_token().await, ks.demo_token().await];
    for sg in &replicas {
        // Cached locally, or new: all answered, none by a 5xx.
        let started = Instant::now();
        assert_eq!(status(sg, &first).await, 200);
        for t in &tokens {
            assert_eq!(status(sg, t).await, 200);
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(shared_ops(sg, "get", "error").await >= 1.0, "{}", sg.log());
    }
    // A replica started while the cache is down works too.
    let late = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    assert_eq!(status(&late, &first).await, 200);
    assert_eq!(validate_calls(&late).await, 1.0);
}

/// An in-process "memcached" that accepts connections and either never
/// answers or answers garbage; counts the connections it got.
async fn broken_server(garbage: bool) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = crate::harness::bind_fresh_tokio();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if garbage {
                        let _ = conn.write_all(b"VALUE what 0 -3\r\n\xff\xfe\r\n").await;
                    }
                }
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_hung_or_garbage_answering_server_is_skipped_for_dead_retry() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    for garbage in [false, true] {
        let (addr, accepted) = broken_server(garbage).await;
        let sg = replica(&ks, &up, Backend::Memcached(&[addr]), Strategy::Encrypt).await;
        let started = Instant::now();
        assert_eq!(status(&sg, &ks.demo_token().await).await, 200);
        assert!(started.elapsed() < Duration::from_secs(5));
        // Marked dead: the next tokens do not even connect.
        for _ in 0..3 {
            assert_eq!(status(&sg, &ks.demo_token().await).await, 200);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(validate_calls(&sg).await, 4.0);
        assert!(shared_ops(&sg, "get", "error").await >= 4.0);
    }
}

/// For each token, the index of the server python-memcached (through
/// keystonemiddleware's own cache key) stores its entry on, given `servers`
/// as they are now (a dead one is skipped the way python-memcached skips it).
async fn python_memcached_home(servers: &[String], tokens: &[String]) -> Vec<usize> {
    let mut child = crate::harness::oracle_python()
        .arg(crate::harness::repo_path("tests/product/kmw_cache.py"))
        .arg("home")
        .arg(servers.join(","))
        .env("SECRET", SECRET)
        .env("STRATEGY", "ENCRYPT")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(tokens.join("\n").as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("kmw_cache.py home within 60 s")
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            l.parse()
                .unwrap_or_else(|_| panic!("kmw_cache.py home said {l:?}"))
        })
        .collect()
}

/// Demo tokens, `batch` at a time (at most `most`), until their homes on
/// `servers` (python-memcached's choice) are `enough`; with those homes. A
/// test that needs its keys spread a certain way asks for more tokens rather
/// than failing on an unlucky draw.
async fn tokens_placed(
    ks: &Keystone,
    servers: &[String],
    batch: usize,
    most: usize,
    enough: impl Fn(&[usize]) -> bool,
) -> (Vec<String>, Vec<usize>) {
    let (mut tokens, mut homes) = (Vec::new(), Vec::new());
    while tokens.len() < most && (tokens.is_empty() || !enough(&homes)) {
        for _ in 0..batch {
            tokens.push(ks.demo_token().await);
        }
        homes = python_memcached_home(servers, &tokens).await;
    }
    (tokens, homes)
}

/// Sends each token through `sg` and returns, per token, the index of the
/// (live) server whose key listing grew by exactly that one entry.
async fn where_stonegate_wrote(
    sg: &Stonegate,
    mcs: &[Memcached],
    live: &[usize],
    tokens: &[String],
) -> Vec<usize> {
    let mut counts = Vec::new();
    for &i in live {
        counts.push(mcs[i].keys().await.len());
    }
    let mut homes = Vec::new();
    for token in tokens {
        assert_eq!(status(sg, token).await, 200);
        let mut grew = Vec::new();
        for (n, &i) in live.iter().enumerate() {
            let now = mcs[i].keys().await.len();
            if now != counts[n] {
                grew.push(i);
                counts[n] = now;
            }
        }
        assert_eq!(grew.len(), 1, "one entry on one server per token: {grew:?}");
        homes.push(grew[0]);
    }
    homes
}

/// stonegate puts each entry on the server python-memcached (what
/// keystonemiddleware uses) picks for keystonemiddleware's key, so either
/// reads what the other wrote; the oracle is python-memcached itself.
#[tokio::test]
async fn entries_live_on_the_server_python_memcached_picks() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let mcs = [Memcached::start().await, Memcached::start().await];
    let servers: Vec<String> = mcs.iter().map(Memcached::server).collect();
    let sg = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    // Eight tokens all land on one of the two servers once in 128 runs.
    let (tokens, homes) =
        tokens_placed(&ks, &servers, 8, 32, |h| h.contains(&0) && h.contains(&1)).await;
    let written = where_stonegate_wrote(&sg, &mcs, &[0, 1], &tokens).await;
    assert_eq!(
        written, homes,
        "stonegate's server choice is python-memcached's"
    );
    assert!(
        homes.contains(&0) && homes.contains(&1),
        "{} tokens, one server: {homes:?}",
        tokens.len()
    );
    // And keystonemiddleware's own cache, over both servers, reads each.
    let read = kmw_cache("get", &servers.join(","), &tokens[0], None).await;
    assert!(read.contains("\"token\""), "{read}");
}

/// A dead server's keys move where python-memcached's rehash puts them, so
/// stonegate and keystonemiddleware still agree while a server is down;
/// nothing fails.
#[tokio::test]
async fn keys_of_a_dead_server_move_where_python_memcached_rehashes_them() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let mut mcs = [
        Memcached::start().await,
        Memcached::start().await,
        Memcached::start().await,
    ];
    let servers: Vec<String> = mcs.iter().map(Memcached::server).collect();
    let sg = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    mcs[0].0.kill();
    // Where the keys lived before server 0 died: python-memcached over three
    // live servers (server 1 answering in server 0's place; the hash only
    // depends on the position). Fewer than two of 16 keys lived on server 0
    // about once in 75 runs.
    let three = [servers[1].clone(), servers[1].clone(), servers[2].clone()];
    let on_0 = |h: &[usize]| h.iter().filter(|&&h| h == 0).count();
    let (tokens, before) = tokens_placed(&ks, &three, 16, 64, |h| on_0(h) >= 2).await;
    let moved = on_0(&before);
    assert!(
        moved >= 2,
        "too few of {} keys had the dead server as home: {before:?}",
        tokens.len()
    );
    let written = where_stonegate_wrote(&sg, &mcs, &[1, 2], &tokens).await;
    let now = python_memcached_home(&servers, &tokens).await;
    assert_eq!(written, now, "stonegate's rehash is python-memcached's");
    assert!(shared_ops(&sg, "set", "error").await == 0.0, "a set failed");
}

#[tokio::test]
async fn a_session_logout_removes_the_shared_entry_for_every_replica() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let up = Upstream::echo().await;
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("session-keys");
    let key = stonegate::session::keys::SessionKeys::generate().unwrap();
    std::fs::write(&ring, format!("{key}\n")).unwrap();
    let start = || {
        Stonegate::builder()
            .keystone(&ks)
            .upstream(&up)
            .option("memcache_security_strategy", "ENCRYPT")
            .option("memcache_secret_key", SECRET)
            .option("memcached_servers", vec![mc.server()])
            .extra_toml(&format!(
                "[session]\nenabled = true\nkeys_file = {:?}\n",
                ring.display().to_string()
            ))
            .start()
    };
    let (a, b) = (start().await, start().await);
    let client = crate::harness::client();
    let login = client
        .post(a.url("/authentication/login/"))
        .json(&json!({"username": "demo", "password": ks.password("demo"), "project_name": "demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let cookies: Vec<String> = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let csrf = cookies
        .iter()
        .find_map(|c| c.strip_prefix("csrftoken="))
        .unwrap()
        .to_owned();
    let cookie = cookies.join("; ");
    // A validates (and shares); B is served from the shared cache.
    assert_eq!(a.get("/", &[("cookie", &cookie)]).await.status(), 200);
    assert_eq!(b.get("/", &[("cookie", &cookie)]).await.status(), 200);
    assert_eq!(validate_calls(&b).await, 0.0);
    let logout = client
        .post(a.url("/authentication/logout/"))
        .header("cookie", &cookie)
        .header("x-csrftoken", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(shared_ops(&a, "delete", "ok").await, 1.0);
    // A does not take the token back from the shared cache ...
    assert_eq!(a.get("/", &[("cookie", &cookie)]).await.status(), 401);
    // ... and a replica that never cached it locally asks Keystone: revoked.
    let c = start().await;
    assert_eq!(c.get("/", &[("cookie", &cookie)]).await.status(), 401);
    assert_eq!(validate_calls(&c).await, 1.0);
}

#[tokio::test]
async fn a_shared_hit_is_reused_locally_no_longer_than_the_shared_entry_lives() {
    let ks = Keystone::from_env();
    let mc = Memcached::start().await;
    let servers = [mc.server()];
    let up = Upstream::echo().await;
    let a = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    let b = replica(&ks, &up, Backend::Memcached(&servers), Strategy::Encrypt).await;
    let token = ks.demo_token().await;
    assert_eq!(status(&a, &token).await, 200);
    // The entry has 2 s left (as if written 298 s ago).
    let key = key(&token, Strategy::Encrypt);
    let value = mc.raw_get(&key).await.unwrap();
    mc.raw_set(&key, &value, 2).await;
    assert_eq!(status(&b, &token).await, 200);
    assert_eq!(validate_calls(&b).await, 0.0);
    // Once it is gone from memcached, B's own cache has let it go too: B
    // asks Keystone rather than reuse it for another token_cache_time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(status(&b, &token).await, 200);
    assert_eq!(validate_calls(&b).await, 1.0);
}
