//! Micro-benchmarks of the per-request hot path:
//!
//! - `cache_hit`: SHA-256 fingerprint of the token + `cache::Cache` lookup of a
//!   present entry + `headers::set_user` into the forwarded request's headers;
//! - `layer`: one request with a cached token through the whole
//!   `AuthTokenLayer` (head sanitized, request id, path check, decision,
//!   identity headers, the answer's request id) around a service that answers
//!   at once: the auth work of a cached request, its future's box included;
//! - `strip_identity`: a 30-header request, 5 of them forged identity headers
//!   (and the same request with none forged, the usual case), and beside it
//!   `sanitize`, the whole head step every door runs (the `Connection` list,
//!   identity headers, aliases);
//! - `path_matches`: application-credential access-rule patterns;
//! - `canonical_path`: the path check every request goes through (an
//!   ordinary path is borrowed, never allocated);
//! - `is_public`: the public-route check on the canonical path;
//! - `session`: opening a browser-session cookie (base64, XChaCha20-Poly1305,
//!   JSON), the extra cost of a cookie request over an `X-Auth-Token` one,
//!   and sealing one at login;
//! - `shared_cache`: a shared-cache hit without the network (key derivation,
//!   MAC check, decryption, token parsing) and the protection of a write, for
//!   a body with a devstack-sized catalog;
//! - `request_id`: what every request adds for its `X-OpenStack-Request-ID`:
//!   a new id, and the whole step on a 30-header request (the incoming id and
//!   trace headers taken out, the id set on the request and on the answer).
//!
//! - `authorization`: the `[authorization]` decision on a cached identity:
//!   ten rule entries, Keystone's own default policy (204 named rules) as the
//!   policy file; a simple role + project check, a named Keystone rule three
//!   `rule:` levels deep with a path capture, and no entry matching (default).
//!
//! Run: `cargo bench --bench core` (HTML report under `target/criterion/`).
//! Local Fernet validation and revocation matching join when they land.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::{convert::Infallible, hint::black_box, sync::Arc, time::Duration};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use stonegate::{
    access_rules::path_matches,
    cache::{Cache, Key, Outcome},
    gate::Gate,
    headers,
    identity::Identity,
    keystone::model::parse_token,
    metrics::Metrics,
    path::Canonical,
    request_id::{Correlation, RequestId},
    routes::{PublicRoute, PublicRoutes},
    token::Token,
    validator::Validator,
    AuthTokenLayer,
};

/// A Fernet-sized token (the value is never a real credential).
const TOKEN: &str = "gAAAAABpZ3F0Qm9ndXNCZW5jaG1hcmtUb2tlbi0xMjM0NTY3ODkwYWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXpBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWjAxMjM0NTY3ODktX2FiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo";

/// A devstack-like catalog: `n` services, three interfaces each.
fn catalog_json() -> String {
    let services = [
        ("identity", "keystone", "5000/v3"),
        ("compute", "nova", "8774/v2.1"),
        ("image", "glance", "9292"),
        ("network", "neutron", "9696"),
        (
            "volumev3",
            "cinder",
            "8776/v3/9c4fdf3a1b2c4d5e8f90a1b2c3d4e5f6",
        ),
        ("placement", "placement", "8778"),
        (
            "object-store",
            "swift",
            "8080/v1/AUTH_9c4fdf3a1b2c4d5e8f90a1b2c3d4e5f6",
        ),
        (
            "orchestration",
            "heat",
            "8004/v1/9c4fdf3a1b2c4d5e8f90a1b2c3d4e5f6",
        ),
    ];
    let mut out = Vec::new();
    for (i, (kind, name, path)) in services.iter().enumerate() {
        let eps: Vec<String> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(j, iface)| {
                format!(
                    r#"{{"id": "e{i}{j}5f0c2a9d8e7b6c5d4e3f2a1b0c9d8e7", "interface": "{iface}", "region": "RegionOne", "region_id": "RegionOne", "url": "http://{iface}.cloud.example.org:{path}"}}"#
                )
            })
            .collect();
        out.push(format!(
            r#"{{"id": "s{i}a1b2c3d4e5f60718293a4b5c6d7e8f9", "type": "{kind}", "name": "{name}", "endpoints": [{}]}}"#,
            eps.join(", ")
        ));
    }
    format!("[{}]", out.join(", "))
}

/// A project-scoped password token as Keystone returns it from
/// `GET /v3/auth/tokens`, expiring in an hour.
fn identity(with_catalog: bool) -> Identity {
    parse_token(token_doc(with_catalog).as_bytes()).expect("sample token document parses")
}

/// Keystone's validation body of [`identity`].
fn token_doc(with_catalog: bool) -> String {
    let fmt = time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let issued = now.format(&fmt).unwrap();
    let expires = (now + time::Duration::hours(1)).format(&fmt).unwrap();
    let catalog = if with_catalog {
        format!(r#", "catalog": {}"#, catalog_json())
    } else {
        String::new()
    };
    format!(
        r#"{{"token": {{"methods": ["password"],
          "user": {{"domain": {{"id": "default", "name": "Default"}}, "id": "1f5e2c7a9b3d4e6f8a0b1c2d3e4f5a6b", "name": "demo", "password_expires_at": null}},
          "audit_ids": ["9JsolhssRzKfyayTIiCRUg"],
          "expires_at": "{expires}", "issued_at": "{issued}",
          "project": {{"domain": {{"id": "default", "name": "Default"}}, "id": "9c4fdf3a1b2c4d5e8f90a1b2c3d4e5f6", "name": "demo"}},
          "is_domain": false,
          "roles": [{{"id": "5e0f3b8a2c1d4e6f9a7b8c0d1e2f3a4b", "name": "reader"}}, {{"id": "7a1b2c3d4e5f60718293a4b5c6d7e8f9", "name": "member"}}]{catalog}}}}}"#
    )
}

/// The headers of a typical API request as it reaches the proxy.
fn request_headers(token: bool) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("host", "compute.cloud.example.org:8774"),
        (
            "user-agent",
            "python-novaclient keystoneauth1/5.9.1 python-requests/2.32.3 CPython/3.11.7",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        ("x-openstack-nova-api-version", "2.96"),
    ] {
        h.insert(n, HeaderValue::from_static(v));
    }
    if token {
        h.insert("x-auth-token", HeaderValue::from_static(TOKEN));
    }
    h
}

fn bench_cache_hit(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("cache_hit");
    for with_catalog in [true, false] {
        let cache = Cache::new(64 << 20, Duration::from_secs(300), Duration::from_secs(10));
        let key = Key {
            fingerprint: Token::from_header(&HeaderValue::from_static(TOKEN))
                .unwrap()
                .fingerprint(),
            allow_expired: false,
        };
        let id = Arc::new(identity(with_catalog));
        rt.block_on(async {
            let (_, hit) = cache
                .get_or_validate(key, async { Ok::<_, Infallible>(Outcome::Valid(id)) })
                .await
                .unwrap();
            assert!(!hit);
        });
        let base = request_headers(true);
        let name = if with_catalog {
            "hash+lookup+set_user (with X-Service-Catalog)"
        } else {
            "hash+lookup+set_user (no catalog)"
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || base.clone(),
                |mut h| {
                    let cache = &cache;
                    async move {
                        let token = Token::from_header(h.get("x-auth-token").unwrap()).unwrap();
                        let key = Key {
                            fingerprint: token.fingerprint(),
                            allow_expired: false,
                        };
                        let (outcome, hit) = cache
                            .get_or_validate(key, async {
                                Err::<Outcome, &'static str>("not cached")
                            })
                            .await
                            .unwrap();
                        debug_assert!(hit);
                        if let Outcome::Valid(id) = outcome {
                            headers::set_user(&mut h, &id, with_catalog);
                        }
                        h
                    }
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

/// A request with a cached token through `AuthTokenLayer` around a service
/// that answers at once (the Keystone of the configuration is never called).
fn bench_layer(c: &mut Criterion) {
    use http_body_util::Empty;
    use tower::{Layer, Service, ServiceExt};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let toml = r#"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:8000"
admin_listen = "127.0.0.1:9090"
[keystone_authtoken]
auth_url = "http://127.0.0.1:9/v3"
username = "svc"
password = "pw"
user_domain_name = "Default"
project_name = "service"
project_domain_name = "Default"
include_service_catalog = false
"#;
    let settings = stonegate::config::File::parse(toml)
        .unwrap()
        .build(&|_| None)
        .unwrap();
    let metrics = Metrics::unregistered();
    let keystone = stonegate::keystone::Client::new(settings.keystone, metrics.clone()).unwrap();
    let validator = Validator::new(keystone, settings.auth, metrics.clone());
    let key = Key {
        fingerprint: Token::from_header(&HeaderValue::from_static(TOKEN))
            .unwrap()
            .fingerprint(),
        allow_expired: false,
    };
    let id = Arc::new(identity(false));
    rt.block_on(async {
        let cached = async { Ok::<_, Infallible>(Outcome::Valid(id)) };
        validator
            .cache()
            .get_or_validate(key, cached)
            .await
            .unwrap();
    });
    let gate = Gate {
        validator: Arc::new(validator),
        sessions: None,
        audit: None,
    };
    let inner = tower::service_fn(|_req: http::Request<Empty<bytes::Bytes>>| async {
        Ok::<_, Infallible>(http::Response::new(()))
    });
    let svc = AuthTokenLayer::new(gate, metrics).layer(inner);
    let base = request_headers(true);
    let mut group = c.benchmark_group("layer");
    group.bench_function("cached token, no catalog: the whole layer", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let mut req = http::Request::get("/v2.1/servers/detail?limit=10")
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap();
                *req.headers_mut() = base.clone();
                (svc.clone(), req)
            },
            |(mut svc, req)| async move {
                let svc = svc.ready().await.unwrap();
                let resp = svc.call(req).await.unwrap();
                debug_assert_eq!(resp.status(), 200);
                resp
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// 30 headers: 25 that an API client and the ingress commonly send, plus 5
/// forged identity headers (various spellings) when `forged` is true, else 5
/// more harmless ones.
fn thirty_headers(forged: bool) -> HeaderMap {
    let mut h = request_headers(true);
    for (n, v) in [
        ("content-type", "application/json"),
        ("content-length", "142"),
        ("connection", "keep-alive"),
        (
            "x-openstack-request-id",
            "req-6f1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
        ),
        ("openstack-api-version", "compute 2.96"),
        ("x-forwarded-for", "203.0.113.7, 10.0.0.12"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "compute.cloud.example.org"),
        ("x-forwarded-port", "443"),
        ("x-real-ip", "203.0.113.7"),
        ("x-request-id", "3f2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "congo=t61rcWkgMzE"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("x-b3-spanid", "e457b5a2e4d86bd1"),
        ("x-b3-sampled", "1"),
        ("x-envoy-expected-rq-timeout-ms", "15000"),
        ("cache-control", "no-cache"),
        ("accept-language", "en-US,en;q=0.9"),
    ] {
        h.insert(n, HeaderValue::from_static(v));
    }
    let extra: &[(&str, &str)] = if forged {
        &[
            ("x-user-id", "admin"),
            ("X_Roles", "admin"),
            ("x-project-id", "9c4fdf3a1b2c4d5e8f90a1b2c3d4e5f6"),
            ("x-identity-status", "Confirmed"),
            ("x-service-catalog", "[]"),
        ]
    } else {
        &[
            (
                "x-compute-request-id",
                "req-0d1c2b3a-4d5e-4f60-8a9b-0c1d2e3f4a5b",
            ),
            ("x-subject-token-hint", "none"),
            ("origin", "https://dashboard.cloud.example.org"),
            (
                "referer",
                "https://dashboard.cloud.example.org/project/instances/",
            ),
            ("dnt", "1"),
        ]
    };
    for (n, v) in extra {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_static(v),
        );
    }
    assert_eq!(h.len(), 30);
    h
}

fn bench_strip(c: &mut Criterion) {
    let mut group = c.benchmark_group("strip_identity");
    for (name, forged, removed) in [
        ("30 headers, 5 forged", true, 5),
        ("30 headers, none forged", false, 0),
    ] {
        let base = thirty_headers(forged);
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || base.clone(),
                |h| {
                    let n = headers::strip_identity(black_box(h));
                    debug_assert_eq!(n, removed);
                    n
                },
                BatchSize::SmallInput,
            );
        });
        // What every door runs: the Connection list, identity, aliases.
        group.bench_function(format!("sanitize: {name}"), |b| {
            b.iter_batched_ref(
                || base.clone(),
                |h| headers::sanitize(black_box(h)),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn bench_path_matches(c: &mut Criterion) {
    let mut group = c.benchmark_group("path_matches");
    let path = "/v2.1/servers/4a0b7c1e-2d3f-4e5a-8b9c-0d1e2f3a4b5c/action";
    for (name, pattern, want) in [
        (
            "{id} segment, match",
            "/v2.1/servers/{server_id}/action",
            true,
        ),
        ("* segment, mismatch", "/v2.1/servers/*/metadata", false),
        ("** anything, match", "/v2.1/servers/**", true),
    ] {
        assert_eq!(path_matches(path, pattern), want, "{pattern}");
        group.bench_function(name, |b| {
            b.iter(|| path_matches(black_box(path), black_box(pattern)));
        });
    }
    group.finish();
}

fn bench_is_public(c: &mut Criterion) {
    let routes = PublicRoutes::new(
        [
            ("GET", "/"),
            ("GET", "/healthz"),
            ("GET", "/v2.1"),
            ("GET", "/v2.1/versions/**"),
        ]
        .into_iter()
        .map(|(m, p)| PublicRoute::new(Method::from_bytes(m.as_bytes()).unwrap(), p))
        .collect(),
        true,
    );
    let headers = request_headers(true);
    let mut group = c.benchmark_group("is_public");
    for (name, method, path, want) in [
        (
            "protected API path (the common case)",
            Method::GET,
            "/v2.1/servers/4a0b7c1e-2d3f-4e5a-8b9c-0d1e2f3a4b5c/action",
            false,
        ),
        ("public /healthz", Method::GET, "/healthz", true),
        (
            "public versions document",
            Method::GET,
            "/v2.1/versions/v2.1",
            true,
        ),
    ] {
        assert_eq!(routes.is_public(&method, path, &headers), want, "{path}");
        group.bench_function(name, |b| {
            b.iter(|| routes.is_public(black_box(&method), black_box(path), black_box(&headers)));
        });
    }
    group.finish();
}

fn bench_canonical_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("canonical_path");
    for (name, path, ok) in [
        (
            "ordinary API path (borrowed)",
            "/v2.1/servers/4a0b7c1e-2d3f-4e5a-8b9c-0d1e2f3a4b5c/action",
            true,
        ),
        (
            "percent-escapes (decoded copy)",
            "/v1/AUTH_x/c/my%20object%2Etxt",
            true,
        ),
        (
            "encoded dot segment (refused)",
            "/v2.1/versions/%2e%2e/servers",
            false,
        ),
    ] {
        assert_eq!(Canonical::parse(path).is_ok(), ok, "{path}");
        group.bench_function(name, |b| {
            b.iter(|| Canonical::parse(black_box(path)).is_ok());
        });
    }
    group.finish();
}

fn bench_session(c: &mut Criterion) {
    use stonegate::session::{
        keys::SessionKeys,
        seal::{open, seal, SessionData},
    };
    let keys = SessionKeys::parse(&SessionKeys::generate().unwrap()).unwrap();
    let data = SessionData {
        token: TOKEN.to_owned(),
        csrf: "0123456789abcdef".repeat(4),
        expires_at: 1_900_000_000,
        user_id: "a1b2c3d4e5f60718293a4b5c6d7e8f90".to_owned(),
    };
    let cookie = seal(&keys, "sessionid", &data).unwrap();
    let mut group = c.benchmark_group("session");
    group.bench_function("open cookie", |b| {
        b.iter(|| open(black_box(&keys), "sessionid", black_box(&cookie)).unwrap())
    });
    group.bench_function("seal cookie (login)", |b| {
        b.iter(|| seal(black_box(&keys), "sessionid", black_box(&data)).unwrap())
    });
    group.finish();
}

fn bench_shared_cache(c: &mut Criterion) {
    use stonegate::shared_cache::crypt::{Keys, Strategy};
    let body = token_doc(true);
    let secret = b"a shared secret of some length";
    let mut group = c.benchmark_group("shared_cache");
    for strategy in [Strategy::Mac, Strategy::Encrypt] {
        let keys = Keys::derive(secret, TOKEN.as_bytes(), strategy);
        let value = keys.protect(body.as_bytes()).unwrap();
        let name = strategy.as_str();
        // A shared hit minus the network: derive the keys and the entry's
        // name, check the MAC, decrypt, parse the token document.
        group.bench_function(format!("hit {name} (catalog body)"), |b| {
            b.iter(|| {
                let k = Keys::derive(secret, black_box(TOKEN).as_bytes(), strategy);
                black_box(k.cache_key());
                parse_token(&k.unprotect(black_box(&value)).unwrap()).unwrap()
            })
        });
        group.bench_function(format!("protect {name} (catalog body)"), |b| {
            b.iter(|| {
                let k = Keys::derive(secret, black_box(TOKEN).as_bytes(), strategy);
                k.protect(black_box(body.as_bytes())).unwrap()
            })
        });
    }
    group.finish();
}

fn bench_authorization(c: &mut Criterion) {
    use stonegate::policy::{IdentityCredentials, Section};
    let policy_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/keystone-policy.yaml"
    );
    let mut text = format!("default = \"deny\"\npolicy_file = {policy_file:?}\n");
    for i in 0..8 {
        text.push_str(&format!(
            "[[rules]]\nname = \"other{i}\"\nmethods = [\"PUT\"]\npath = \"/v{i}/{{project_id}}/**\"\ncheck = \"role:admin\"\n"
        ));
    }
    text.push_str(
        "[[rules]]\nname = \"servers:list\"\nmethods = [\"GET\"]\npath = \"/v2.1/{project_id}/servers/**\"\n\
         check = \"role:reader and project_id:%(project_id)s\"\n\
         [[rules]]\nname = \"app_cred:get\"\npath = \"/v3/users/{user_id}/application_credentials/{id}\"\n\
         check = \"rule:identity:get_application_credential\"\n",
    );
    let section: Section = toml::from_str(&text).unwrap();
    let mut problems = Vec::new();
    let policy = section.build(&mut problems).expect("bench policy builds");
    assert!(problems.is_empty(), "{problems:?}");
    let id = identity(false);
    let project = match &id.scope {
        stonegate::identity::Scope::Project(p) => p.project.id.clone().unwrap(),
        _ => unreachable!("a project-scoped sample"),
    };
    let user = id.user.id.clone().unwrap();
    let creds = IdentityCredentials {
        user: Some(&id),
        service: None,
    };
    let servers = format!("/v2.1/{project}/servers/detail");
    let app_cred = format!("/v3/users/{user}/application_credentials/abc");
    let mut group = c.benchmark_group("authorization");
    for (name, method, path, allowed, rule) in [
        (
            "role and project, allow",
            Method::GET,
            servers.as_str(),
            true,
            "servers:list",
        ),
        (
            "keystone rule:, allow",
            Method::GET,
            app_cred.as_str(),
            true,
            "app_cred:get",
        ),
        (
            "no entry matches, default",
            Method::GET,
            "/v9/x",
            false,
            "default",
        ),
    ] {
        let d = policy.decide(&creds, &method, path);
        assert_eq!((d.allowed(), d.rule()), (allowed, rule), "{name}");
        group.bench_function(name, |b| {
            b.iter(|| {
                policy
                    .decide(black_box(&creds), black_box(&method), black_box(path))
                    .allowed()
            });
        });
    }
    group.finish();
}

fn bench_request_id(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_id");
    group.bench_function("generate", |b| b.iter(RequestId::generate));
    let base = thirty_headers(false);
    group.bench_function("take + set on request and answer: 30 headers", |b| {
        b.iter_batched_ref(
            || (base.clone(), HeaderMap::new()),
            |(h, answer)| {
                let c = Correlation::take(black_box(h), false);
                c.set_on(h);
                c.set_id_on(answer);
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(
    benches,
    bench_cache_hit,
    bench_layer,
    bench_strip,
    bench_path_matches,
    bench_canonical_path,
    bench_is_public,
    bench_session,
    bench_shared_cache,
    bench_request_id,
    bench_authorization
);
criterion_main!(benches);
