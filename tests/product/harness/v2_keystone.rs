//! An in-process Identity v2.0 Keystone serving golden documents: no
//! Keystone serves v2.0 any more (removed in Queens), so the documents are
//! the ones keystoneauth's own fixtures (`keystoneauth1.fixture.V2Token`,
//! `V2Discovery`, the reference implementation of the format) wrote into
//! `tests/fixtures/v2/served.json` (`tests/fixtures/v2/generate.py`).
//!
//! - `GET /v2.0/` (and under `/internal`, `/admin`): the version document;
//! - `POST /v2.0/tokens`: `passwordCredentials` of `svc` with
//!   [`V2Keystone::PASSWORD`] (tenant `service` by name, or none): 200 with
//!   the golden service token, its id fresh each time; else 401;
//! - `GET {/v2.0, /internal/v2.0, /admin/v2.0}/tokens/{id}`: 401 unless
//!   `X-Auth-Token` is a service token it issued; 200 with the golden
//!   document of that id, 404 for any other id.
//!
//! It is the stand-in both keystonemiddleware (the v2.0 oracle) and
//! stonegate are pointed at in `tests/product/v2_differential.rs`, and the
//! v2.0 Keystone of `tests/product/v2.rs` (with its two faults:
//! [`V2Keystone::forget_service_tokens`], [`V2Keystone::stop`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::stonegate::KeystoneTarget;

struct Inner {
    version: Value,
    service: Value,
    /// Token id → document.
    tokens: BTreeMap<String, Value>,
    issued: Mutex<HashSet<String>>,
    auth_calls: AtomicUsize,
    validations: Mutex<Vec<String>>,
}

/// The running server; stops when dropped.
pub struct V2Keystone {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    names: BTreeMap<String, String>,
    inner: Arc<Inner>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl V2Keystone {
    /// The service user's password.
    pub const PASSWORD: &'static str = "v2-golden-service-secret";

    /// Starts serving `tests/fixtures/v2/served.json`.
    pub async fn start() -> Self {
        let listener = super::bind_fresh_tokio();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let text = std::fs::read_to_string(super::repo_path("tests/fixtures/v2/served.json"))
            .expect("tests/fixtures/v2/served.json");
        let golden: Value =
            serde_json::from_str(&text.replace("@KEYSTONE@", &base)).expect("served.json is JSON");
        let mut tokens = BTreeMap::new();
        let mut names = BTreeMap::new();
        for (name, doc) in golden["tokens"].as_object().expect("tokens") {
            let id = doc["access"]["token"]["id"].as_str().expect("token id");
            names.insert(name.clone(), id.to_owned());
            tokens.insert(id.to_owned(), doc.clone());
        }
        let inner = Arc::new(Inner {
            version: golden["version"].clone(),
            service: golden["service"].clone(),
            tokens,
            issued: Mutex::new(HashSet::new()),
            auth_calls: AtomicUsize::new(0),
            validations: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v2.0/tokens", post(authenticate))
            .route("/v2.0/tokens/{id}", get(validate))
            .route("/{interface}/v2.0/tokens/{id}", get(validate_at))
            .route("/v2.0", get(version))
            .route("/v2.0/", get(version))
            .route("/{interface}/v2.0", get(version))
            .route("/{interface}/v2.0/", get(version))
            .with_state(inner.clone());
        let server = super::serve_stoppable(listener, app);
        V2Keystone {
            base,
            names,
            inner,
            server: Some(server),
        }
    }

    /// The id of the golden token `name` (a key of `served.json`'s `tokens`).
    pub fn token(&self, name: &str) -> &str {
        self.names
            .get(name)
            .unwrap_or_else(|| panic!("no golden v2.0 token {name:?} in served.json"))
    }

    /// `POST /v2.0/tokens` answered 200 so far.
    pub fn auth_calls(&self) -> usize {
        self.inner.auth_calls.load(Ordering::SeqCst)
    }

    /// The paths of every token validation so far.
    pub fn validations(&self) -> Vec<String> {
        self.inner.validations.lock().unwrap().clone()
    }

    /// Fault: forgets every service token it issued (Keystone restarted), so
    /// the next validation with one is 401.
    pub fn forget_service_tokens(&self) {
        self.inner.issued.lock().unwrap().clear();
    }

    /// Fault: stops listening and drops every connection (connection
    /// refused from now on).
    pub fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.abort();
        }
    }
}

impl Drop for V2Keystone {
    fn drop(&mut self) {
        self.stop();
    }
}

impl KeystoneTarget for V2Keystone {
    fn auth_url(&self) -> String {
        format!("{}/v2.0", self.base)
    }
    fn service_account(&self) -> (String, String, String) {
        ("svc".into(), Self::PASSWORD.into(), "service".into())
    }
}

fn unauthorized() -> Response {
    let body = json!({"error": {"code": 401, "title": "Unauthorized",
        "message": "The request you have made requires authentication."}});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

async fn version(State(inner): State<Arc<Inner>>) -> Response {
    Json(inner.version.clone()).into_response()
}

async fn authenticate(State(inner): State<Arc<Inner>>, Json(doc): Json<Value>) -> Response {
    let auth = &doc["auth"];
    let creds = &auth["passwordCredentials"];
    let tenant_ok =
        auth.get("tenantId").is_none() && auth.get("tenantName").is_none_or(|n| n == "service");
    if creds["username"] != "svc" || creds["password"] != V2Keystone::PASSWORD || !tenant_ok {
        return unauthorized();
    }
    let n = inner.auth_calls.fetch_add(1, Ordering::SeqCst);
    let id = format!("svc{n:029}");
    inner.issued.lock().unwrap().insert(id.clone());
    let mut body = inner.service.clone();
    body["access"]["token"]["id"] = id.into();
    Json(body).into_response()
}

async fn validate(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(&inner, "", &id, &headers)
}

async fn validate_at(
    State(inner): State<Arc<Inner>>,
    Path((interface, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(&inner, &interface, &id, &headers)
}

fn answer(inner: &Inner, interface: &str, id: &str, headers: &HeaderMap) -> Response {
    let prefix = if interface.is_empty() {
        String::new()
    } else {
        format!("/{interface}")
    };
    inner
        .validations
        .lock()
        .unwrap()
        .push(format!("{prefix}/v2.0/tokens/{id}"));
    let admin = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    if !admin.is_some_and(|t| inner.issued.lock().unwrap().contains(t)) {
        return unauthorized();
    }
    match inner.tokens.get(id) {
        Some(doc) => Json(doc.clone()).into_response(),
        None => {
            let body = json!({"error": {"code": 404, "title": "Not Found",
                "message": format!("Could not find token: {id}")}});
            (StatusCode::NOT_FOUND, Json(body)).into_response()
        }
    }
}
