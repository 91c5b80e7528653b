//! The smaller holes of the proxy boundary (issue 12), tried as an attacker
//! would, against the real Keystone and real tokens: login throttling that a
//! second spelling of the user's domain escapes, a client address header
//! believed from anyone, a service token without the service role lifting an
//! application credential's access rules, certificate-bound (OAuth 2.0 mTLS)
//! tokens accepted without their certificate, and Redis throttle counters
//! that a crash can leave without an expiry.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};
use std::time::Duration;

use rmpv::Value as Msgpack;
use serde_json::json;
use stonegate::shared_cache::crypt::Strategy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::kv::Redis;
use crate::harness::{bind_fresh_tokio, Keystone, Scope, Stonegate, Upstream};
use crate::local::{fernet_token, key_bytes, key_ids, key_repository, local_toml, metric};
use crate::session::{login, new_key, ring, throwaway_user, Ring};
use crate::shared_cache::{replica_builder, Backend};

fn session_toml(r: &Ring, extra: &str) -> String {
    format!(
        "[session]\nenabled = true\nkeys_file = {:?}\n{extra}\n",
        r.path.display().to_string()
    )
}

async fn with_sessions(ks: &Keystone, up: &Upstream, r: &Ring, extra: &str) -> Stonegate {
    Stonegate::builder()
        .keystone(ks)
        .upstream(up)
        .extra_toml(&session_toml(r, extra))
        .start()
        .await
}

/// A username Keystone does not know (a failed login writes nothing there).
fn nobody(i: usize) -> String {
    format!("nobody-{i}-{}", std::process::id())
}

// ------------------------------------------------ 1. one bucket per user

/// Naming the user's domain by name, by id, or Horizon's `domain`, in any
/// case, are all the same user: the attempts add up in one bucket.
#[tokio::test]
async fn login_throttle_counts_every_spelling_of_the_users_domain_in_one_bucket() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = with_sessions(
        &ks,
        &up,
        &r,
        "login_attempts_per_user = 4\nlogin_failures_per_address = 100",
    )
    .await;
    let (user, password) = throwaway_user(&ks).await;
    let spellings = [
        json!({"user_domain_name": "Default"}),
        json!({"user_domain_id": "default"}),
        json!({"domain": "DEFAULT"}),
        json!({"user_domain_id": "DeFault"}),
    ];
    for s in &spellings {
        let mut body = s.clone();
        body["username"] = json!(user);
        body["password"] = json!("wrong-password");
        assert_eq!(login(&sg, body).await.status(), 401, "{s}");
    }
    // The fifth attempt, in any spelling, even with the right password.
    for s in &spellings {
        let mut body = s.clone();
        body["username"] = json!(user);
        body["password"] = json!(password);
        let resp = login(&sg, body).await;
        assert_eq!(
            resp.status(),
            429,
            "{s}: the domain's spelling opened a new bucket"
        );
        assert!(resp.headers().contains_key("retry-after"));
    }
}

/// One bucket per name means namesakes in other domains share it, so a
/// success must not clear it wholesale: logging in as your own `bob` of
/// another domain gives back only your own attempt, never the guesses made
/// against the victim `bob`.
#[tokio::test]
async fn a_namesakes_successful_login_does_not_clear_the_victims_count() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = with_sessions(
        &ks,
        &up,
        &r,
        "login_attempts_per_user = 3\nlogin_failures_per_address = 100",
    )
    .await;
    let (victim, victim_password) = throwaway_user(&ks).await;
    // The attacker's own account of the same name, in demo-domain.
    let admin = ks.token("admin", Scope::Project("admin")).await;
    let other_domain = ks.fixtures()["domains"]["demo-domain"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = crate::harness::client()
        .post(format!("{}/users", ks.auth_url))
        .header("x-auth-token", admin)
        .json(
            &json!({"user": {"name": victim, "password": "attacker-own-password",
                               "domain_id": other_domain}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let guess = json!({"username": victim, "password": "guess", "user_domain_id": "default"});
    for _ in 0..2 {
        assert_eq!(login(&sg, guess.clone()).await.status(), 401);
    }
    let own = json!({"username": victim, "password": "attacker-own-password",
                     "user_domain_id": other_domain});
    assert_eq!(login(&sg, own).await.status(), 200);
    assert_eq!(login(&sg, guess.clone()).await.status(), 401);
    let resp = login(
        &sg,
        json!({"username": victim, "password": victim_password, "user_domain_id": "default"}),
    )
    .await;
    assert_eq!(
        resp.status(),
        429,
        "the namesake's login cleared the guesses against the victim"
    );
}

// ------------------------------------------------ 2. trusted proxies only

/// `client_address_header` is read only from `trusted_proxies`: a client
/// connecting from elsewhere cannot move its failures to made-up addresses.
#[tokio::test]
async fn client_address_header_is_believed_only_from_trusted_proxies() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let limits = "login_attempts_per_user = 100\nlogin_failures_per_address = 3\n\
                  client_address_header = \"X-Forwarded-For\"\n";
    // The test client is 127.0.0.1: not a trusted proxy.
    let untrusted = with_sessions(
        &ks,
        &up,
        &r,
        &format!("{limits}trusted_proxies = [\"10.0.0.0/8\", \"fd00::/8\"]"),
    )
    .await;
    let attempt = |sg: &Stonegate, i: usize, forwarded: String| {
        let req = crate::harness::client()
            .post(sg.url("/authentication/login/"))
            .header("x-forwarded-for", forwarded)
            .json(&json!({"username": nobody(i), "password": "wrong"}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    for i in 0..3 {
        assert_eq!(attempt(&untrusted, i, format!("192.0.2.{i}")).await, 401);
    }
    for i in 3..6 {
        assert_eq!(
            attempt(&untrusted, i, format!("192.0.2.{i}")).await,
            429,
            "a made-up X-Forwarded-For moved the failures to another address"
        );
    }

    // From a trusted proxy, the header is the client: the nearest address
    // that is not a trusted proxy, so a forged leftmost entry changes nothing.
    let trusted = with_sessions(
        &ks,
        &up,
        &r,
        &format!("{limits}trusted_proxies = [\"127.0.0.0/8\"]"),
    )
    .await;
    for i in 10..13 {
        assert_eq!(attempt(&trusted, i, "198.51.100.1".into()).await, 401);
    }
    assert_eq!(
        attempt(&trusted, 13, "203.0.113.9, 198.51.100.1".into()).await,
        429,
        "the client forged a leftmost entry"
    );
    assert_eq!(
        attempt(&trusted, 14, "198.51.100.1, 127.0.0.7".into()).await,
        429,
        "a second trusted hop is skipped"
    );
    assert_eq!(
        attempt(&trusted, 15, "198.51.100.2".into()).await,
        401,
        "another client behind the proxy has its own bucket"
    );
}

// ------------------------------------------------ 3. service tokens and access rules

/// With `service_token_roles_required = false` a service token without one
/// of `service_token_roles` is still accepted as a service identity, but it
/// no longer lifts the user token's access rules; one with the role does.
#[tokio::test]
async fn a_service_token_without_the_service_role_never_lifts_access_rules() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .option("service_token_roles_required", false)
        .start()
        .await;
    // The rule: compute, GET /v2.1/servers.
    let user = ks.app_cred_token("access_rules").await;
    let not_a_service = ks.token("demo", Scope::Domain("demo-domain")).await;
    let service = ks.svc_token().await;
    let allowed = sg
        .get(
            "/v2.1/servers",
            &[("X-Auth-Token", &user), ("X-Service-Token", &not_a_service)],
        )
        .await;
    assert_eq!(allowed.status(), 200);
    let outside = sg
        .get(
            "/v2.1/os-hypervisors",
            &[("X-Auth-Token", &user), ("X-Service-Token", &not_a_service)],
        )
        .await;
    assert_eq!(
        outside.status(),
        401,
        "a service token without the service role lifted the access rules"
    );
    assert_eq!(up.hits(), 1);
    let lifted = sg
        .get(
            "/v2.1/os-hypervisors",
            &[("X-Auth-Token", &user), ("X-Service-Token", &service)],
        )
        .await;
    assert_eq!(lifted.status(), 200, "a real service token lifts them");
    assert_eq!(up.hits(), 2);
}

// ------------------------------------------------ 4. certificate-bound tokens

/// A Fernet payload v10 (OAuth 2.0 mTLS, Keystone's
/// `Oauth2CredentialsScopedPayload`) of `user` on `project`, minted with the
/// primary key of the real Keystone's repository: byte for byte what
/// Keystone's `/v3/OS-OAUTH2/token` issues for a client certificate.
fn certificate_bound_token(ks: &Keystone, user: &str, project: &str) -> String {
    let repo = std::path::PathBuf::from(key_repository(ks));
    let primary = *key_ids(&repo).last().unwrap();
    let hex_id = |id: &str| {
        Msgpack::Array(vec![
            Msgpack::Boolean(true),
            Msgpack::Binary(hex::decode(id).unwrap()),
        ])
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = Msgpack::Array(vec![
        Msgpack::from(10),
        hex_id(user),
        Msgpack::from(2), // password, in Keystone's default [auth] methods
        hex_id(project),
        Msgpack::Array(vec![Msgpack::Boolean(false), Msgpack::Nil]),
        Msgpack::F64((now + 3600) as f64),
        Msgpack::Array(vec![Msgpack::Binary(now.to_be_bytes().repeat(2).to_vec())]),
        Msgpack::Array(vec![
            Msgpack::Boolean(false),
            Msgpack::from("Ymy0cdRyOk_ZyEPfjqTgk8_yMjbhH-tH8zxZ0Q5QvWM"),
        ]),
    ]);
    let mut plaintext = Vec::new();
    rmpv::encode::write_value(&mut plaintext, &payload).unwrap();
    fernet_token(&key_bytes(&repo, primary), 0x80, now, &plaintext)
}

/// A certificate-bound token presented without its certificate is refused:
/// online (Keystone's body names `oauth2_credential`), and locally (the
/// payload is v10) enriched or not — even when the enrichment entry it
/// borrows names and roles from was learnt from an ordinary token of the
/// same user and project — never forwarded with the identity of whoever's
/// token was stolen.
#[tokio::test]
async fn certificate_bound_tokens_without_their_certificate_are_refused_online_and_locally() {
    let ks = Keystone::from_env();
    let token = certificate_bound_token(&ks, &ks.user_id("demo"), &ks.project_id("demo"));
    // The real Keystone accepts it and says it is bound to a certificate.
    let body = ks.validate(&token).await;
    assert_eq!(
        body["oauth2_credential"]["x5t#S256"],
        "Ymy0cdRyOk_ZyEPfjqTgk8_yMjbhH-tH8zxZ0Q5QvWM"
    );
    let up = Upstream::echo().await;
    let online = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    let repo = key_repository(&ks);
    let enriched = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&local_toml(&repo, ""))
        .start()
        .await;
    let proven_only = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&local_toml(&repo, "enrich = false"))
        .start()
        .await;
    // An ordinary token of the same user and project first: the enrichment
    // cache then knows the names and roles a v10 token would borrow.
    let demo = ks.demo_token().await;
    for sg in [&online, &enriched, &proven_only] {
        assert_eq!(sg.get("/", &[("X-Auth-Token", &demo)]).await.status(), 200);
    }
    let before = up.hits();
    for (name, sg) in [
        ("online", &online),
        ("local", &enriched),
        ("local, enrich = false", &proven_only),
    ] {
        for _ in 0..2 {
            let resp = sg.get("/", &[("X-Auth-Token", &token)]).await;
            assert_eq!(resp.status(), 401, "{name}: a certificate-bound token");
            assert!(resp.headers().contains_key("www-authenticate"));
        }
        assert!(
            sg.log_with("certificate-bound token without its certificate")
                .await
                .contains("certificate-bound token without its certificate"),
            "{name}: the log says why"
        );
        assert!(
            !sg.log().contains(&token),
            "{name}: the token is never logged"
        );
    }
    assert_eq!(up.hits(), before, "nothing was forwarded");
    for (sg, online) in [(&enriched, 1.0), (&proven_only, 0.0)] {
        assert_eq!(
            metric(
                sg,
                "stonegate_local_decisions_total",
                &["outcome=\"online\""]
            )
            .await,
            online,
            "decided locally (the one online validation is the ordinary token's)"
        );
    }
}

// ------------------------------------------------ 5. atomic Redis counters

/// A TCP relay to Redis that, once armed, forwards the first command that
/// writes and then drops the connection: a replica dying (or its link)
/// between two commands. Later connections are relayed whole.
struct Cutter {
    url: String,
    armed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The first complete RESP command in `buf`: (its length, its name).
fn resp_command(buf: &[u8]) -> Option<(usize, String)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut name = String::new();
    for i in 0..n {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        if i == 0 {
            name = String::from_utf8_lossy(&buf[next..next + len]).to_ascii_uppercase();
        }
        at = next + len + 2;
    }
    Some((at, name))
}

impl Cutter {
    async fn start(redis: &Redis) -> Self {
        let target = redis
            .url()
            .trim_start_matches("redis://")
            .trim_end_matches("/0")
            .to_owned();
        let listener = bind_fresh_tokio();
        let url = format!("redis://{}/0", listener.local_addr().unwrap());
        let armed = Arc::new(AtomicBool::new(false));
        let flag = armed.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let flag = flag.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let server = tokio::net::TcpStream::connect(&target).await.unwrap();
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let back = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    });
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while let Ok(n @ 1..) = cr.read(&mut chunk).await {
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some((len, name)) = resp_command(&buf) {
                            let command: Vec<u8> = buf.drain(..len).collect();
                            if sw.write_all(&command).await.is_err() {
                                return;
                            }
                            let writes = [
                                "INCR", "INCRBY", "DECRBY", "SET", "MULTI", "EVAL", "EVALSHA",
                                "FCALL",
                            ];
                            if writes.contains(&name.as_str()) && flag.swap(false, Ordering::SeqCst)
                            {
                                // Let Redis run it, then die before the next one.
                                tokio::time::sleep(Duration::from_millis(200)).await;
                                back.abort();
                                return;
                            }
                        }
                    }
                    back.abort();
                });
            }
        });
        Cutter { url, armed, task }
    }
}

async fn throttle_keys(redis: &Redis) -> Vec<(String, i64)> {
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("stonegate/throttle/*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    for k in keys {
        let ttl = redis.raw_ttl(&k).await;
        out.push((k, ttl));
    }
    out
}

/// A throttle counter in Redis is created with its expiry in one atomic
/// step: a replica dying between "count" and "expire" never leaves a counter
/// that lives forever (a user locked out for good), and every counter a
/// throttled login leaves has a lifetime within the window.
#[tokio::test]
async fn redis_throttle_counters_get_their_expiry_atomically() {
    let ks = Keystone::from_env();
    let redis = Redis::start().await;
    let cutter = Cutter::start(&redis).await;
    let up = Upstream::echo().await;
    let r = ring(&[&new_key()]);
    let sg = replica_builder(&ks, &up, Backend::Redis(&cutter.url), Strategy::Encrypt)
        .extra_toml(&session_toml(
            &r,
            "login_attempts_per_user = 2\nlogin_throttle_window = 120",
        ))
        .start()
        .await;
    let wrong = |i: usize| json!({"username": nobody(100 + i), "password": "wrong"});
    // Connected and counting.
    assert_eq!(login(&sg, wrong(0)).await.status(), 401);
    // The link dies right after the first write of the next attempt.
    cutter.armed.store(true, Ordering::SeqCst);
    assert_eq!(login(&sg, wrong(1)).await.status(), 401);
    assert!(!cutter.armed.load(Ordering::SeqCst), "the cut happened");
    for (key, ttl) in throttle_keys(&redis).await {
        assert!(
            (1..=120).contains(&ttl),
            "{key} has TTL {ttl}: a counter without an expiry"
        );
    }
    // Throttled through Redis (a replica whose link is whole): every
    // counter there has a lifetime.
    let sg = replica_builder(&ks, &up, Backend::Redis(&redis.url()), Strategy::Encrypt)
        .extra_toml(&session_toml(
            &r,
            "login_attempts_per_user = 2\nlogin_throttle_window = 120",
        ))
        .start()
        .await;
    let user = json!({"username": nobody(200), "password": "wrong"});
    for _ in 0..2 {
        assert_eq!(login(&sg, user.clone()).await.status(), 401);
    }
    assert_eq!(login(&sg, user).await.status(), 429);
    let keys = throttle_keys(&redis).await;
    assert!(keys.len() >= 2, "{keys:?}");
    for (key, ttl) in keys {
        assert!((1..=120).contains(&ttl), "{key} has TTL {ttl}");
    }
}
