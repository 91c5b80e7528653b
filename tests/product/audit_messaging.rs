//! The oslo.messaging audit sink against a real RabbitMQ (Debian's
//! `rabbitmq-server`, started here on its own port and node name): a
//! consumer written with oslo.messaging (tests/product/oslo_notify_consumer.py)
//! reads stonegate's audit notifications; with the broker stopped, requests
//! are as fast as a stonegate's without audit and the dropped-events counter
//! rises.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{free_addr, venv_python, Keystone, Stonegate, Upstream};

/// A RabbitMQ node of its own; killed (with its process group) on drop.
struct Rabbit {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Rabbit {
    async fn start() -> Self {
        let bin = crate::harness::installed(
            &[
                "/usr/lib/rabbitmq/bin/rabbitmq-server",
                "/usr/sbin/rabbitmq-server",
            ],
            "the audit messaging tests need a real RabbitMQ",
            "rabbitmq-server",
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_addr().port();
        let dist = free_addr().port();
        let d = dir.path();
        let log = std::fs::File::create(d.join("stdout.log")).unwrap();
        let child = Command::new(bin)
            .env("RABBITMQ_NODENAME", format!("sgtest{port}@localhost"))
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", d.join("rabbitmq"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start rabbitmq-server");
        let r = Rabbit {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "RabbitMQ did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        r
    }

    fn url(&self) -> String {
        format!("rabbit://guest:guest@127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let pgid = self.child.id();
        // The whole group: the script, beam.smp and its helpers.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -KILL -{pgid}"))
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Rabbit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn consume(url: &str, want: usize, secs: u64) -> Vec<Value> {
    let out = Command::new(venv_python())
        .arg(crate::harness::repo_path(
            "tests/product/oslo_notify_consumer.py",
        ))
        .args([url, &want.to_string(), &secs.to_string()])
        .output()
        .expect("run the oslo.messaging consumer");
    assert!(
        out.status.success(),
        "consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (up to 10 s) until `sg` counts `n` notifications confirmed by the
/// broker, and says whether it did.
async fn emitted_reaches(sg: &Stonegate, n: f64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let emitted = sg
            .metric("stonegate_audit_events_total{result=\"emitted\"}")
            .await;
        if emitted >= n {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The latency of one authenticated request, answered 200.
async fn latency(sg: &Stonegate, token: &str) -> Duration {
    let t = Instant::now();
    let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", token)]).await;
    let took = t.elapsed();
    assert_eq!(resp.status(), 200);
    took
}

fn median(d: &[Duration]) -> Duration {
    let mut d = d.to_vec();
    d.sort();
    d[d.len() / 2]
}

#[tokio::test]
async fn an_oslo_messaging_consumer_reads_the_events_and_a_broker_outage_costs_no_request() {
    let mut rabbit = Rabbit::start().await;
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[audit]\nenabled = true\nsink = \"messaging\"\ntransport_url = {:?}\nqueue_size = 8\n",
            rabbit.url()
        ))
        .start()
        .await;
    let token = ks.demo_token().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
        assert_eq!(resp.status(), 200);
        ids.push(
            resp.headers()["x-openstack-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The publisher is connected and confirming before the paced requests,
    // and each request's pair is confirmed before the next is sent: however
    // loaded the machine, none is dropped from the small queue.
    assert!(
        emitted_reaches(&sg, 6.0).await,
        "the first 6 events not confirmed"
    );
    for k in 1..=20 {
        latency(&sg, &token).await;
        assert!(
            emitted_reaches(&sg, (6 + 2 * k) as f64).await,
            "request {k}'s events not confirmed"
        );
    }
    // A pair for each of the 3 + 20 requests.
    let got = consume(&rabbit.url(), 46, 30);
    assert_eq!(got.len(), 46, "{got:#?}");
    for id in &ids {
        let types: Vec<_> = got
            .iter()
            .filter(|n| n["payload"]["initiator"]["request_id"] == id.as_str())
            .map(|n| n["event_type"].as_str().unwrap().to_owned())
            .collect();
        // The listener's threads may hand them over in either order.
        let mut types = types;
        types.sort();
        assert_eq!(types, ["audit.http.request", "audit.http.response"], "{id}");
    }
    assert!(got.iter().all(|n| n["publisher_id"] == "stonegate"));
    assert_eq!(got[1]["payload"]["initiator"]["id"], ks.user_id("demo"));

    // The broker goes away: requests go on as fast, events are dropped. The
    // reference is a stonegate without audit in front of the same upstream,
    // its requests interleaved with the audited ones, so a loaded machine
    // slows both alike.
    let plain = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .start()
        .await;
    latency(&plain, &token).await;
    rabbit.stop();
    // Measured during the outage, not while the node's processes die.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dropped_before = sg
        .metric("stonegate_audit_events_total{result=\"dropped\"}")
        .await;
    let (mut down_latency, mut plain_latency) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        down_latency.push(latency(&sg, &token).await);
        plain_latency.push(latency(&plain, &token).await);
    }
    let (plain, down) = (median(&plain_latency), median(&down_latency));
    let max_down = *down_latency.iter().max().unwrap();
    eprintln!("median latency with the broker down: {down:?} (max {max_down:?}), without audit: {plain:?}");
    // Loose enough for a loaded CI machine, tight enough to catch a request
    // that waits on the broker (a connect timeout, a blocked queue).
    assert!(
        down <= plain * 3 + Duration::from_millis(20),
        "median latency {down:?} with the broker down, {plain:?} without audit"
    );
    assert!(
        max_down < Duration::from_secs(1),
        "a request took {max_down:?} with the broker down"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let dropped = loop {
        let d = sg
            .metric("stonegate_audit_events_total{result=\"dropped\"}")
            .await;
        if d >= dropped_before + 31.0 || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // 40 events, at most 8 queued for the broker's return (and one in hand).
    assert!(
        dropped >= dropped_before + 31.0,
        "dropped {dropped_before} -> {dropped}"
    );
    // What waits for the broker stays within the bound.
    let queued = sg.metric("stonegate_audit_events_queued").await;
    assert!((0.0..=8.0).contains(&queued), "{queued} queued");
}
