//! Cold start (`scripts/bench.sh`): N concurrent requests (default 1,000)
//! carrying ONE token stonegate has never seen, released at the same instant
//! over N already-open keep-alive connections. Reports how many Keystone
//! validations stonegate made for them (from its admin `/metrics`,
//! `stonegate_keystone_requests_total{operation="validate"}` after − before;
//! single-flight means 1) and the latency distribution.
//!
//! ```text
//! BENCH_COLD_TOKEN=... cargo run --release -p stonegate-tools --bin cold_start -- \
//!     http://127.0.0.1:18080 http://127.0.0.1:19090 [N]
//! ```
//!
//! With `-` for the admin URL the target is not stonegate (the same burst
//! through the bare proxy, as a baseline) and no call count is printed.
//!
//! The token comes from the environment (never argv, never printed). Output:
//! one `key=value` line per figure, for the script to parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Semaphore};

const OVERALL: Duration = Duration::from_secs(60);

async fn connect(base: &Uri) -> http1::SendRequest<Empty<Bytes>> {
    let authority = base.authority().expect("URL with host:port");
    let stream = TcpStream::connect(authority.as_str())
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (send, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    send
}

/// Sum of `stonegate_keystone_requests_total{operation="validate",...}`
/// (`None` without an admin URL: a target that is not stonegate).
async fn validate_calls(admin: Option<&Uri>) -> Option<u64> {
    let admin = admin?;
    let mut send = connect(admin).await;
    let req = Request::get("/metrics")
        .header("host", admin.authority().expect("authority").as_str())
        .body(Empty::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("GET /metrics");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body);
    let calls = text
        .lines()
        .filter(|l| {
            l.starts_with("stonegate_keystone_requests_total{")
                && l.contains("operation=\"validate\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64;
    Some(calls)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let usage = "usage: cold_start PROXY_URL ADMIN_URL [N] (token in BENCH_COLD_TOKEN)";
    let mut args = std::env::args().skip(1);
    let proxy: Uri = args.next().expect(usage).parse().expect(usage);
    // "-": the target is not stonegate (a baseline): no Keystone call count.
    let admin: Option<Uri> = match args.next().expect(usage).as_str() {
        "-" => None,
        a => Some(a.parse().expect(usage)),
    };
    let n: usize = args.next().map_or(1000, |s| s.parse().expect(usage));
    let token = std::env::var("BENCH_COLD_TOKEN").expect("BENCH_COLD_TOKEN is not set");
    let mut token = HeaderValue::from_str(token.trim()).expect("token is a header value");
    token.set_sensitive(true);

    let run = async {
        let before = validate_calls(admin.as_ref()).await;

        // 1. N open connections (at most 64 handshakes in flight: the accept
        //    backlog is not what this measures).
        let gate = Arc::new(Semaphore::new(64));
        let mut opening = Vec::with_capacity(n);
        for _ in 0..n {
            let gate = gate.clone();
            let proxy = proxy.clone();
            opening.push(tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.expect("semaphore");
                connect(&proxy).await
            }));
        }
        let mut conns = Vec::with_capacity(n);
        for o in opening {
            let mut send = o.await.expect("connect task");
            send.ready().await.expect("connection ready");
            conns.push(send);
        }

        // 2. Every request built, then all released at once.
        let (go_tx, go_rx) = tokio::sync::watch::channel(false);
        let host = proxy.authority().expect("authority").to_string();
        let mut tasks = Vec::with_capacity(n);
        for mut send in conns {
            let mut go = go_rx.clone();
            let req = Request::get("/v2.1/servers/cold-start")
                .header("host", host.as_str())
                .header("x-auth-token", token.clone())
                .body(Empty::<Bytes>::new())
                .expect("request");
            tasks.push(tokio::spawn(async move {
                let _ = go.wait_for(|v| *v).await;
                let t0 = Instant::now();
                let resp = send.send_request(req).await.expect("response");
                let status = resp.status().as_u16();
                let _ = resp.into_body().collect().await;
                (status, t0.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        go_tx.send(true).expect("release");
        let mut lat = Vec::with_capacity(n);
        let mut ok = 0usize;
        for t in tasks {
            let (status, d) = t.await.expect("request task");
            if status == 200 {
                ok += 1;
            }
            lat.push(d);
        }
        let wall = started.elapsed();
        // The metrics are updated before the response is sent.
        let after = validate_calls(admin.as_ref()).await;
        lat.sort_unstable();
        println!("cold_requests={n}");
        println!("cold_ok={ok}");
        if let (Some(before), Some(after)) = (before, after) {
            println!("cold_validate_calls={}", after.saturating_sub(before));
        }
        println!("cold_p50_ms={}", ms(percentile(&lat, 50.0)));
        println!("cold_p99_ms={}", ms(percentile(&lat, 99.0)));
        println!("cold_max_ms={}", ms(percentile(&lat, 100.0)));
        println!("cold_wall_ms={}", ms(wall));
    };
    tokio::time::timeout(OVERALL, run)
        .await
        .expect("cold start run took longer than 60 s");
}
