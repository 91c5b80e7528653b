//! `server::run` in the test process, as an embedder runs it: listeners
//! bound on `127.0.0.1:0` and handed over, the real Keystone, an echo
//! upstream; completing the shutdown future makes `run` return `Ok`.

use std::time::{Duration, Instant};

use stonegate::{config, server};

use crate::harness::{bind_fresh_tokio, client, Keystone, Upstream};

/// Settings for the harness Keystone and `upstream`; the listen addresses
/// are never bound (the listeners are passed to `run`).
fn settings(ks: &Keystone, upstream: &str) -> config::Settings {
    let text = format!(
        "listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"\nupstream = {upstream:?}\n\
         [keystone_authtoken]\nauth_url = {auth:?}\nwww_authenticate_uri = {auth:?}\n\
         username = \"svc\"\nuser_domain_name = \"Default\"\nproject_name = \"service\"\n\
         project_domain_name = \"Default\"\n",
        auth = ks.auth_url,
    );
    let password = ks.password("svc");
    config::File::parse(&text)
        .expect("test config parses")
        .build(&|k| (k == "STONEGATE_PASSWORD").then(|| password.clone()))
        .expect("test config builds")
}

#[tokio::test]
async fn run_on_bound_listeners_serves_a_real_token_and_returns_ok_at_shutdown() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let settings = settings(&ks, &up.url());
    let listeners = server::Listeners {
        proxy: bind_fresh_tokio(),
        admin: bind_fresh_tokio(),
        auth: None,
    };
    let proxy = listeners.proxy.local_addr().unwrap();
    let admin = listeners.admin.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let reloaded = settings.clone();
    let running = server::run(
        settings,
        listeners,
        async {
            let _ = stopped.await;
        },
        move || Ok(reloaded.clone()),
    );

    let token = ks.demo_token().await;
    let client_side = async {
        let http = client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http.get(format!("http://{admin}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "/readyz never answered 200");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let resp = http
            .get(format!("http://{proxy}/v2.1/servers"))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .expect("request through the in-process proxy");
        assert_eq!(resp.status(), 200);
        drop(http);
        stop.send(()).expect("run is still waiting for shutdown");
    };
    let (result, ()) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(running, client_side)
    })
    .await
    .expect("run returns after the shutdown future completes");
    result.expect("run returns Ok");
    assert_eq!(up.hits(), 1);
    assert_eq!(
        up.last().header("x-identity-status").as_deref(),
        Some("Confirmed")
    );
}
