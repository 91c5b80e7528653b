//! An in-process fake Keystone (axum) for what the real one cannot show:
//! faults and call counts. It implements just enough of Identity v3:
//!
//! - `POST /v3/auth/tokens`: 201 with a fresh service token
//!   (`fake-service-token-<n>`) in `X-Subject-Token` and a catalog whose
//!   identity endpoints point at the fake itself, one path prefix per
//!   interface (`/public/v3`, `/internal/v3`, `/admin/v3`, as devstack-style
//!   deployments have), so a test can see which one stonegate chose;
//! - `GET /v3/auth/tokens` (under any of those prefixes): 401 unless `X-Auth-Token` is a service token it
//!   issued (and has not rejected); then 200 for subject tokens starting with
//!   [`FakeKeystone::VALID`] and 404 for anything else — unless a [`Fault`] says
//!   otherwise.
//!
//! - `GET /v3/users/{id}/groups` (under any prefix): the user's groups
//!   (one, `fake-group`) for a subject token it calls valid, sent as
//!   `X-Auth-Token` (the user's own token, as the Kubernetes webhook asks);
//!   else 401 — unless [`FakeKeystone::set_groups_fault`] says otherwise.
//!
//! [`FakeKeystone::stop`] closes the listener and every open connection
//! (connection refused from then on).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// How `GET /v3/auth/tokens` misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Behave.
    None,
    /// Never answer (until the test ends).
    Hang,
    /// Answer this status with a Keystone-style error body.
    Status(u16),
    /// Answer 401 to the first validation (as if stonegate's own token had
    /// been revoked) and reject that service token from then on.
    RejectServiceTokenOnce,
}

/// One validation request as the fake received it.
#[derive(Clone, Debug)]
pub struct ValidationRequest {
    /// Path, e.g. `/internal/v3/auth/tokens`.
    pub path: String,
    /// Query string (`nocatalog`, `allow_expired=1`), empty if none.
    pub query: String,
    /// Request headers.
    pub headers: HeaderMap,
}

struct Inner {
    url: String,
    base: String,
    last_validation: Mutex<Option<ValidationRequest>>,
    fault: Mutex<Fault>,
    auth_fault: Mutex<Option<u16>>,
    validate_delay: Mutex<Duration>,
    service_token_lifetime: Mutex<Duration>,
    auth_calls: AtomicUsize,
    validate_calls: AtomicUsize,
    rejected: Mutex<HashSet<String>>,
    rejected_once: AtomicBool,
    groups_fault: Mutex<Option<u16>>,
    group_calls: AtomicUsize,
}

/// The running fake; stops when dropped.
pub struct FakeKeystone {
    inner: Arc<Inner>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl FakeKeystone {
    /// Subject tokens starting with this are valid.
    pub const VALID: &'static str = "fake-valid-";
    /// The service user's password the fake accepts.
    pub const PASSWORD: &'static str = "fake-svc-pass";

    /// A well-behaved fake.
    pub async fn start() -> Self {
        let listener = super::bind_fresh_tokio();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            url: format!("http://{addr}/v3"),
            base: format!("http://{addr}"),
            last_validation: Mutex::new(None),
            fault: Mutex::new(Fault::None),
            auth_fault: Mutex::new(None),
            validate_delay: Mutex::new(Duration::ZERO),
            service_token_lifetime: Mutex::new(Duration::from_secs(3600)),
            auth_calls: AtomicUsize::new(0),
            validate_calls: AtomicUsize::new(0),
            rejected: Mutex::new(HashSet::new()),
            rejected_once: AtomicBool::new(false),
            groups_fault: Mutex::new(None),
            group_calls: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/v3/auth/tokens", post(issue).get(validate))
            .route("/{interface}/v3/auth/tokens", axum::routing::get(validate))
            .route("/v3", axum::routing::get(version))
            .route("/v3/users/{id}/groups", axum::routing::get(groups))
            .route(
                "/{interface}/v3/users/{id}/groups",
                axum::routing::get(groups),
            )
            .with_state(inner.clone());
        let server = super::serve_stoppable(listener, app);
        FakeKeystone {
            inner,
            server: Some(server),
        }
    }

    /// Service tokens issued from now on expire after `lifetime` (default
    /// one hour).
    pub fn set_service_token_lifetime(&self, lifetime: Duration) {
        *self.inner.service_token_lifetime.lock().unwrap() = lifetime;
    }

    /// Sends a valid token `n` through `sg` (200 expected) and returns the
    /// service token that validated it.
    pub async fn last_validation_token_after(&self, sg: &super::Stonegate, n: usize) -> String {
        let resp = sg
            .get("/", &[("X-Auth-Token", &Self::valid_token(n))])
            .await;
        assert_eq!(resp.status(), 200);
        self.last_validation().headers["x-auth-token"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// `http://127.0.0.1:<port>/v3`.
    pub fn auth_url(&self) -> String {
        self.inner.url.clone()
    }

    /// A subject token the fake calls valid (distinct per `n`).
    pub fn valid_token(n: usize) -> String {
        format!("{}{n}", Self::VALID)
    }

    /// Make validations misbehave from now on.
    pub fn set_fault(&self, fault: Fault) {
        *self.inner.fault.lock().unwrap() = fault;
    }

    /// Make `POST /v3/auth/tokens` answer `status` (None: behave).
    pub fn set_auth_fault(&self, status: Option<u16>) {
        *self.inner.auth_fault.lock().unwrap() = status;
    }

    /// Delay every validation answer (to make concurrent requests overlap).
    pub fn set_validate_delay(&self, d: Duration) {
        *self.inner.validate_delay.lock().unwrap() = d;
    }

    /// Make `GET /v3/users/{id}/groups` answer `status` (None: behave).
    pub fn set_groups_fault(&self, status: Option<u16>) {
        *self.inner.groups_fault.lock().unwrap() = status;
    }

    /// `GET /v3/users/{id}/groups` calls so far.
    pub fn group_calls(&self) -> usize {
        self.inner.group_calls.load(Ordering::SeqCst)
    }

    /// `POST /v3/auth/tokens` calls so far (stonegate authenticating itself).
    pub fn auth_calls(&self) -> usize {
        self.inner.auth_calls.load(Ordering::SeqCst)
    }

    /// `GET /v3/auth/tokens` calls so far (token validations).
    pub fn validate_calls(&self) -> usize {
        self.inner.validate_calls.load(Ordering::SeqCst)
    }

    /// The last validation request received.
    pub fn last_validation(&self) -> ValidationRequest {
        self.inner
            .last_validation
            .lock()
            .unwrap()
            .clone()
            .expect("no validation request reached the fake Keystone")
    }

    /// Stop listening and drop every connection: connection refused from now on.
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.stop();
    }
}

fn timestamps(lifetime: Duration) -> (String, String) {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000000Z");
    let now = time::OffsetDateTime::now_utc();
    let exp = now + lifetime;
    (now.format(&fmt).unwrap(), exp.format(&fmt).unwrap())
}

fn token_body(
    inner: &Inner,
    user: &str,
    roles: &[&str],
    with_catalog: bool,
    lifetime: Duration,
) -> Value {
    let (issued, expires) = timestamps(lifetime);
    let mut token = json!({
        "methods": ["password"],
        "user": {"id": format!("{user}-id"), "name": user,
                 "domain": {"id": "default", "name": "Default"}, "password_expires_at": null},
        "audit_ids": ["fakeAuditId0123456789A"],
        "issued_at": issued,
        "expires_at": expires,
        "project": {"id": "fake-project-id", "name": "fake-project",
                    "domain": {"id": "default", "name": "Default"}},
        "is_domain": false,
        "roles": roles.iter().map(|r| json!({"id": format!("{r}-id"), "name": r})).collect::<Vec<_>>(),
    });
    if with_catalog {
        let endpoints: Vec<Value> = ["public", "internal", "admin"]
            .iter()
            .map(|i| {
                json!({
                    "id": format!("{i}-endpoint-id"), "interface": i, "region": "RegionOne",
                    "region_id": "RegionOne", "url": format!("{}/{i}/v3", inner.base),
                })
            })
            .collect();
        token["catalog"] = json!([{
            "id": "identity-service-id", "type": "identity", "name": "keystone",
            "endpoints": endpoints,
        }]);
    }
    json!({ "token": token })
}

fn error(status: u16, title: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    (
        code,
        Json(json!({"error": {"code": status, "title": title, "message": "fake keystone"}})),
    )
        .into_response()
}

async fn version() -> Json<Value> {
    Json(json!({"version": {"id": "v3.14", "status": "stable"}}))
}

async fn groups(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    inner.group_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *inner.groups_fault.lock().unwrap() {
        return error(status, "Fault");
    }
    let own = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    if !own.is_some_and(|t| t.starts_with(FakeKeystone::VALID)) {
        return error(401, "Unauthorized");
    }
    Json(
        json!({"groups": [{"id": "fake-group-id", "name": "fake-group",
        "domain_id": "default", "description": ""}]}),
    )
    .into_response()
}

async fn issue(State(inner): State<Arc<Inner>>, Json(body): Json<Value>) -> Response {
    inner.auth_calls.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *inner.auth_fault.lock().unwrap() {
        return error(status, "Fault");
    }
    let password = &body["auth"]["identity"]["password"]["user"]["password"];
    if password != FakeKeystone::PASSWORD {
        return error(401, "Unauthorized");
    }
    let n = inner.auth_calls.load(Ordering::SeqCst);
    let mut resp = (
        StatusCode::CREATED,
        Json(token_body(
            &inner,
            "svc",
            &["service", "admin"],
            true,
            *inner.service_token_lifetime.lock().unwrap(),
        )),
    )
        .into_response();
    resp.headers_mut().insert(
        "x-subject-token",
        format!("fake-service-token-{n}").parse().unwrap(),
    );
    resp
}

async fn validate(State(inner): State<Arc<Inner>>, req: Request) -> Response {
    inner.validate_calls.fetch_add(1, Ordering::SeqCst);
    let headers: &HeaderMap = req.headers();
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (caller, subject) = (get("x-auth-token"), get("x-subject-token"));
    let with_catalog = !req.uri().query().unwrap_or("").contains("nocatalog");
    *inner.last_validation.lock().unwrap() = Some(ValidationRequest {
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: headers.clone(),
    });
    let delay = *inner.validate_delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if !caller.starts_with("fake-service-token-")
        || inner.rejected.lock().unwrap().contains(&caller)
    {
        return error(401, "Unauthorized");
    }
    let fault = *inner.fault.lock().unwrap();
    match fault {
        Fault::None => {}
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        Fault::Status(status) => return error(status, "Fault"),
        Fault::RejectServiceTokenOnce => {
            if !inner.rejected_once.swap(true, Ordering::SeqCst) {
                inner.rejected.lock().unwrap().insert(caller);
                return error(401, "Unauthorized");
            }
        }
    }
    if subject.starts_with(FakeKeystone::VALID) {
        let mut resp = Json(token_body(
            &inner,
            "fake-user",
            &["member", "reader"],
            with_catalog,
            Duration::from_secs(3600),
        ))
        .into_response();
        resp.headers_mut()
            .insert("x-subject-token", subject.parse().unwrap());
        resp
    } else {
        error(404, "Not Found")
    }
}
