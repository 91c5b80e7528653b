//! Soak driver for `scripts/soak.sh`: a verifying upstream plus a bounded
//! load of mixed valid, invalid and revoked tokens through stonegate.
//!
//! ```text
//! soak UPSTREAM_ADDR STONEGATE_URL TOKENS_DIR SECONDS
//! ```
//!
//! `TOKENS_DIR` holds `valid.txt` (one token per line, with `user_id`
//! after a space), `invalid.txt` and `revoked.txt` (tokens whose revocation
//! Keystone recorded before the run started). The upstream records every
//! request it receives; a request is a **violation** when it arrives without
//! `X-Identity-Status: Confirmed` and a `X-User-Id` that belongs to a valid
//! token's user, or carries an invalid or revoked token. Prints a JSON report;
//! exits 1 on any violation.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{
    collections::{BTreeMap, HashSet},
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

struct Upstream {
    users: HashSet<String>,
    bad_tokens: HashSet<String>,
    served: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Upstream {
    fn check(&self, req: &Request<Incoming>) {
        self.served.fetch_add(1, Ordering::Relaxed);
        let h = req.headers();
        let status = h.get("x-identity-status").and_then(|v| v.to_str().ok());
        let user = h.get("x-user-id").and_then(|v| v.to_str().ok());
        let token = h.get("x-auth-token").and_then(|v| v.to_str().ok());
        let problem = if status != Some("Confirmed") {
            Some(format!("identity status {status:?}"))
        } else if !user.is_some_and(|u| self.users.contains(u)) {
            Some(format!("unknown user {user:?}"))
        } else if token.is_some_and(|t| self.bad_tokens.contains(t)) {
            Some("an invalid or revoked token was forwarded".to_string())
        } else {
            None
        };
        if let Some(p) = problem {
            self.violations.lock().unwrap().push(p);
        }
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, upstream_addr, stonegate_url, dir, seconds] = args.as_slice() else {
        eprintln!("usage: soak UPSTREAM_ADDR STONEGATE_URL TOKENS_DIR SECONDS");
        std::process::exit(2);
    };
    let dir = std::path::Path::new(dir);
    let valid: Vec<(String, String)> = lines(&dir.join("valid.txt"))
        .into_iter()
        .map(|l| {
            let (t, u) = l.split_once(' ').expect("valid.txt: TOKEN USER_ID");
            (t.to_owned(), u.to_owned())
        })
        .collect();
    let invalid = lines(&dir.join("invalid.txt"));
    let revoked = lines(&dir.join("revoked.txt"));
    assert!(!valid.is_empty(), "no valid tokens");
    let up = Arc::new(Upstream {
        users: valid.iter().map(|(_, u)| u.clone()).collect(),
        bad_tokens: invalid.iter().chain(&revoked).cloned().collect(),
        served: AtomicU64::new(0),
        violations: Mutex::new(Vec::new()),
    });

    // The verifying upstream.
    let listener = tokio::net::TcpListener::bind(upstream_addr).await.unwrap();
    let server_up = up.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let up = server_up.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    up.check(&req);
                    async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });

    // Bounded load: 16 workers for SECONDS seconds.
    let deadline = Instant::now() + Duration::from_secs(seconds.parse().expect("SECONDS"));
    let outcomes: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    let mut workers = Vec::new();
    for w in 0..16usize {
        let (client, outcomes, url) = (client.clone(), outcomes.clone(), stonegate_url.clone());
        let (valid, invalid, revoked) = (valid.clone(), invalid.clone(), revoked.clone());
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while Instant::now() < deadline {
                i += 1;
                let (kind, token) = match i % 10 {
                    0..=6 => ("valid", valid[i % valid.len()].0.clone()),
                    7 | 8 if !invalid.is_empty() => ("invalid", invalid[i % invalid.len()].clone()),
                    _ if !revoked.is_empty() => ("revoked", revoked[i % revoked.len()].clone()),
                    _ => ("valid", valid[i % valid.len()].0.clone()),
                };
                let key = match client
                    .get(format!("{url}/soak/{i}"))
                    .header("x-auth-token", token)
                    .header("x-user-id", "forged-user")
                    .header("x-roles", "admin")
                    .send()
                    .await
                {
                    Ok(r) => format!("{kind} -> {}", r.status().as_u16()),
                    Err(e) if e.is_timeout() => format!("{kind} -> client timeout"),
                    Err(_) => format!("{kind} -> connection error"),
                };
                *outcomes.lock().unwrap().entry(key).or_default() += 1;
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let violations = up.violations.lock().unwrap().clone();
    let report = serde_json::json!({
        "requests_by_outcome": *outcomes.lock().unwrap(),
        "requests_reaching_upstream": up.served.load(Ordering::Relaxed),
        "violations": violations.len(),
        "violation_examples": violations.iter().take(5).collect::<Vec<_>>(),
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if !violations.is_empty() {
        std::process::exit(1);
    }
}
