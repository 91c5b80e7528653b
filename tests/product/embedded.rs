//! The tower layer an embedder adds is the product: `examples/axum.rs`, run as
//! a user runs it (`cargo run --example axum -- CONFIG ADDR`), gets local
//! validation and revocation polling when the configuration asks for them,
//! exactly like the sidecar.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{free_addr, Keystone, Stonegate, Upstream};

/// The built `examples/<name>` binary, as `cargo build --example <name>`
/// leaves it (scripts/test.sh builds it first: under `cargo test` an example
/// is built as a test harness, not as the program a user runs).
fn example_binary(name: &str) -> std::path::PathBuf {
    // target/<profile>/deps/product-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("current_exe");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test binary under target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --example {name}` first (scripts/test.sh does)",
        path.display()
    );
    path
}

struct Example(Child);

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn whoami(addr: std::net::SocketAddr, token: &str) -> Option<u16> {
    crate::harness::client()
        .get(format!("http://{addr}/whoami"))
        .header("X-Auth-Token", token)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

#[tokio::test]
async fn the_axum_example_with_fernet_and_revocation_refuses_a_revoked_token_within_one_poll() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let repo = ks.fixtures()["fernet_key_repository"]
        .as_str()
        .expect("fixtures.json: fernet_key_repository")
        .to_owned();
    // The sidecar only writes (and proves valid) the configuration file the
    // example is then started with.
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[fernet]\nkey_repository = {repo:?}\n[revocation]\nrevocation_poll_interval = 1\n"
        ))
        .start()
        .await;
    let addr = free_addr();
    let _example = Example(
        Command::new(example_binary("axum"))
            .arg(&sg.config)
            .arg(addr.to_string())
            .env("STONEGATE_PASSWORD", ks.password("svc"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn examples/axum"),
    );

    let token = ks.demo_token().await;
    let start = Instant::now();
    while whoami(addr, &token).await != Some(200) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the axum example did not serve /whoami with a valid token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Cached now (token_cache_time 300 s): only revocation polling can refuse it.
    assert_eq!(whoami(addr, &token).await, Some(200));
    ks.revoke(&token).await;
    let revoked = Instant::now();
    // One poll interval (1 s) plus a poll's own time and a request's.
    let bound = Duration::from_millis(2500);
    loop {
        let got = whoami(addr, &token).await;
        if got == Some(401) {
            break;
        }
        assert!(
            revoked.elapsed() < bound,
            "a revoked token still gets {got:?} from the embedded layer after {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "embedded layer refused the revoked token after {:?}",
        revoked.elapsed()
    );
    // A token never seen before is decided locally too, and still passes.
    assert_eq!(whoami(addr, &ks.demo_token().await).await, Some(200));
}
