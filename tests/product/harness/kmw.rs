//! The real keystonemiddleware as the reference for what an upstream
//! receives: `tests/product/kmw_oracle.py` runs its `AuthProtocol` (the
//! version pinned in the harness venv, its own memcache off) in front of a
//! WSGI echo app, against the same real Keystone as stonegate.
//!
//! [`Pair`] starts stonegate (in front of an [`Upstream`] echo) and the
//! oracle with the same `[keystone_authtoken]` options, sends both the same
//! request and returns what each application received, byte for byte.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::stonegate::KeystoneTarget;
use super::{Stonegate, Upstream};

/// A running `kmw_oracle.py`; stops when dropped (its stdin closes, and the
/// process is killed).
pub struct Oracle {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Oracle {
    /// Starts keystonemiddleware with these `[keystone_authtoken]` options
    /// (plus the service account of `ks`), waiting at most 60 s for it to
    /// listen. With `auth_version` v2.0 it authenticates with keystoneauth's
    /// `v2password` (v2.0 has no domains) and `kmw_oracle.py` gives it back
    /// the v2.0 token fetch keystonemiddleware dropped.
    pub async fn start(ks: &impl KeystoneTarget, options: &toml::Table) -> Self {
        let (user, password, project) = ks.service_account();
        let v2 = options
            .get("auth_version")
            .and_then(|v| v.as_str())
            .is_some_and(|v| v.trim_start_matches('v').starts_with('2'));
        let mut conf = serde_json::Map::new();
        let account: &[(&str, &str)] = if v2 {
            &[
                ("auth_type", "v2password"),
                ("username", &user),
                ("tenant_name", &project),
            ]
        } else {
            &[
                ("auth_type", "password"),
                ("username", &user),
                ("project_name", &project),
                ("user_domain_name", "Default"),
                ("project_domain_name", "Default"),
            ]
        };
        for (k, v) in account {
            conf.insert((*k).into(), Value::String((*v).into()));
        }
        conf.insert("auth_url".into(), Value::String(ks.auth_url()));
        conf.insert("www_authenticate_uri".into(), Value::String(ks.auth_url()));
        // No caching at all: every request is validated by Keystone.
        conf.insert("token_cache_time".into(), Value::from(-1));
        for (k, v) in options {
            conf.insert(k.clone(), serde_json::to_value(v).unwrap());
        }
        let mut child = tokio::process::Command::new(super::venv_python())
            .arg(super::repo_path("tests/product/kmw_oracle.py"))
            .arg(Value::Object(conf).to_string())
            .env("KMW_PASSWORD", password)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start kmw_oracle.py with the harness venv's Python");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("kmw_oracle.py did not listen within 60 s")
            .expect("read kmw_oracle.py's stdout")
            .expect("kmw_oracle.py exited before listening");
        let port: u16 = line
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("kmw_oracle.py said {line:?}"));
        Oracle {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.start_kill();
    }
}

/// One request, sent to both stacks.
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Request {
    /// A GET of `path` with these headers.
    pub fn get(path: &str, headers: &[(&str, &str)]) -> Self {
        Self::new("GET", path, headers)
    }

    /// Any method.
    pub fn new(method: &str, path: &str, headers: &[(&str, &str)]) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: None,
        }
    }

    /// With a request body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// What one stack did with a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The status the client got.
    pub status: u16,
    /// `WWW-Authenticate` of the answer, if any.
    pub www_authenticate: Option<String>,
    /// The answer's body as JSON, when it is a refusal (not forwarded).
    pub error: Option<Value>,
    /// When the request was forwarded: the identity and token headers the
    /// application received (name in lower case → the exact bytes).
    pub forwarded: Option<BTreeMap<String, Vec<u8>>>,
    /// When forwarded: method, path and body length the application saw.
    pub request_line: Option<(String, String, u64)>,
}

/// The headers compared: every identity header keystonemiddleware or
/// stonegate may set, and the token headers (forwarded unchanged). Any other
/// `x-`/`openstack-` header either stack adds counts too, so a header only
/// one of them sets shows up. Excepted are the headers the README's
/// "sent upstream" table gives the sidecar (`X-Forwarded-*`,
/// `X-OpenStack-Request-ID`): keystonemiddleware runs inside the server, where
/// the WSGI server and oslo.middleware's request_id set their own.
fn compared(name: &str) -> bool {
    (name.starts_with("x-") || name.starts_with("openstack-"))
        && !name.starts_with("x-forwarded-")
        && name != "x-openstack-request-id"
}

/// stonegate and keystonemiddleware, configured alike, on the same Keystone.
pub struct Pair {
    pub stonegate: Stonegate,
    pub upstream: Upstream,
    pub oracle: Oracle,
}

impl Pair {
    /// Starts both with the harness defaults (`service_type = "compute"`,
    /// `interface = "internal"`, catalog on) plus `options`.
    pub async fn start(ks: &impl KeystoneTarget, options: &[(&str, toml::Value)]) -> Self {
        let mut table = toml::Table::new();
        table.insert("interface".into(), "internal".into());
        table.insert("service_type".into(), "compute".into());
        table.insert("include_service_catalog".into(), true.into());
        for (k, v) in options {
            table.insert((*k).into(), v.clone());
        }
        let upstream = Upstream::echo().await;
        let mut b = Stonegate::builder().keystone(ks).upstream(&upstream);
        for (k, v) in &table {
            b = b.option(k, v.clone());
        }
        let (stonegate, oracle) = tokio::join!(b.start(), Oracle::start(ks, &table));
        Pair {
            stonegate,
            upstream,
            oracle,
        }
    }

    /// Sends `req` to stonegate and to keystonemiddleware; what each did.
    pub async fn send(&self, req: &Request) -> (Answer, Answer) {
        let before = self.upstream.hits();
        let sg = send(&self.stonegate.url(&req.path), req).await;
        let sg = match sg {
            (status, www, _body) if self.upstream.hits() > before => {
                assert_eq!(self.upstream.hits(), before + 1);
                let seen = self.upstream.last();
                let mut headers = BTreeMap::new();
                for (name, value) in &seen.headers {
                    if compared(name.as_str()) {
                        let prev =
                            headers.insert(name.as_str().to_owned(), value.as_bytes().to_vec());
                        assert!(prev.is_none(), "stonegate forwarded {name} twice");
                    }
                }
                let len = seen
                    .headers
                    .get("content-length")
                    .map(|v| v.to_str().unwrap().parse().unwrap())
                    .unwrap_or(0);
                Answer {
                    status,
                    www_authenticate: www,
                    error: None,
                    forwarded: Some(headers),
                    request_line: Some((seen.method.to_string(), seen.uri.path().to_owned(), len)),
                }
            }
            (status, www, body) => Answer {
                status,
                www_authenticate: www,
                error: serde_json::from_slice(&body).ok(),
                forwarded: None,
                request_line: None,
            },
        };
        let (status, www, body) = send(&self.oracle.url(&req.path), req).await;
        let doc: Option<Value> = serde_json::from_slice(&body).ok();
        let kmw = match doc {
            Some(doc) if status == 200 && doc.get("headers").is_some() => {
                let mut headers = BTreeMap::new();
                for (name, value) in doc["headers"].as_object().unwrap() {
                    if compared(name) {
                        let bytes = base64::engine::general_purpose::STANDARD
                            .decode(value.as_str().unwrap())
                            .unwrap();
                        headers.insert(name.clone(), bytes);
                    }
                }
                Answer {
                    status,
                    www_authenticate: www,
                    error: None,
                    forwarded: Some(headers),
                    request_line: Some((
                        doc["method"].as_str().unwrap().to_owned(),
                        doc["path"].as_str().unwrap().to_owned(),
                        doc["body_bytes"].as_u64().unwrap(),
                    )),
                }
            }
            doc => Answer {
                status,
                www_authenticate: www,
                error: doc,
                forwarded: None,
                request_line: None,
            },
        };
        (sg, kmw)
    }
}

async fn send(url: &str, req: &Request) -> (u16, Option<String>, Vec<u8>) {
    let mut r = super::client().request(req.method.parse().unwrap(), url);
    for (k, v) in &req.headers {
        r = r.header(k, v);
    }
    if let Some(body) = &req.body {
        r = r.body(body.clone());
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, www, resp.bytes().await.unwrap().to_vec())
}

/// The differences between two header maps, one line per header, values
/// shown as text (both are ASCII here; a non-UTF-8 byte shows as U+FFFD).
pub fn header_diff(
    stonegate: &BTreeMap<String, Vec<u8>>,
    kmw: &BTreeMap<String, Vec<u8>>,
) -> Vec<String> {
    let mut names: Vec<&String> = stonegate.keys().chain(kmw.keys()).collect();
    names.sort();
    names.dedup();
    let show = |v: Option<&Vec<u8>>| v.map(|b| String::from_utf8_lossy(b).into_owned());
    names
        .into_iter()
        .filter(|n| stonegate.get(*n) != kmw.get(*n))
        .map(|n| {
            format!(
                "{n}: stonegate {:?}, keystonemiddleware {:?}",
                show(stonegate.get(n)),
                show(kmw.get(n))
            )
        })
        .collect()
}

/// What a differential case must show.
pub enum Expect {
    /// Both stacks do exactly the same.
    Same,
    /// A documented difference: stonegate's answer is `stonegate`, then the
    /// rest must agree except for the headers listed in `headers` (name,
    /// stonegate's value, keystonemiddleware's value; `None` = absent).
    Differs {
        why: &'static str,
        status: Option<(u16, u16)>,
        headers: &'static [(&'static str, Option<&'static str>, Option<&'static str>)],
    },
}

/// Sends `req` to both stacks of `pair` and asserts `expect` (`what` names
/// the case in failures); what each did.
pub async fn check(pair: &Pair, what: &str, req: Request, expect: Expect) -> (Answer, Answer) {
    let (sg, kmw) = pair.send(&req).await;
    let mut sg_cmp = sg.clone();
    let mut kmw_cmp = kmw.clone();
    if let Expect::Differs {
        why,
        status,
        headers,
    } = &expect
    {
        if let Some((s, k)) = status {
            assert_eq!(
                (sg.status, kmw.status),
                (*s, *k),
                "{what}: the documented difference ({why}) is not there: \
                 stonegate {sg:?}\nkeystonemiddleware {kmw:?}"
            );
            // The rest of a refused-versus-forwarded pair cannot be compared.
            return (sg, kmw);
        }
        for (name, sg_want, kmw_want) in *headers {
            let get = |a: &Answer| {
                a.forwarded
                    .as_ref()
                    .and_then(|h| h.get(*name))
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            assert_eq!(
                (get(&sg).as_deref(), get(&kmw).as_deref()),
                (*sg_want, *kmw_want),
                "{what}: {name}: the documented difference ({why}) is not there"
            );
            for a in [&mut sg_cmp, &mut kmw_cmp] {
                if let Some(h) = a.forwarded.as_mut() {
                    h.remove(*name);
                }
            }
        }
    }
    assert_eq!(
        sg_cmp.status, kmw_cmp.status,
        "{what}: status differs\nstonegate {sg:?}\nkeystonemiddleware {kmw:?}"
    );
    assert_eq!(
        sg_cmp.www_authenticate, kmw_cmp.www_authenticate,
        "{what}: WWW-Authenticate differs"
    );
    assert_eq!(
        sg_cmp.error, kmw_cmp.error,
        "{what}: the refusal's JSON body differs"
    );
    assert_eq!(
        sg_cmp.request_line, kmw_cmp.request_line,
        "{what}: the application saw another request"
    );
    match (&sg_cmp.forwarded, &kmw_cmp.forwarded) {
        (Some(s), Some(k)) => {
            let diff = header_diff(s, k);
            assert!(
                diff.is_empty(),
                "{what}: the application received other headers:\n  {}",
                diff.join("\n  ")
            );
        }
        (None, None) => {}
        _ => panic!("{what}: forwarded by one stack only: {sg:?}\n{kmw:?}"),
    }
    (sg, kmw)
}

/// Whether the request reached the application.
pub fn forwarded(a: &Answer) -> bool {
    a.status == 200 && a.forwarded.is_some()
}

/// The user `token` through `X-Storage-Token`, then through `X-Auth-Token`
/// on a POST with a JSON body: both stacks alike, the whole body reaching
/// the application.
pub async fn check_storage_token_and_a_body(pair: &Pair, token: &str) {
    check(
        pair,
        "X-Storage-Token",
        Request::get("/v2.1/servers", &[("X-Storage-Token", token)]),
        Expect::Same,
    )
    .await;
    let body = r#"{"server": {"name": "vm"}}"#;
    let (sg, _) = check(
        pair,
        "POST with a body",
        Request::new(
            "POST",
            "/v2.1/servers",
            &[
                ("X-Auth-Token", token),
                ("Content-Type", "application/json"),
            ],
        )
        .body(body),
        Expect::Same,
    )
    .await;
    assert_eq!(sg.request_line.unwrap().2, body.len() as u64);
}
