//! How stonegate authenticates itself to the real Keystone: password from the
//! environment (every other test), from `password_file`, or an application
//! credential (`auth_type = "v3applicationcredential"`).

use crate::harness::{Keystone, Stonegate, Upstream};

#[tokio::test]
async fn service_password_can_come_from_password_file() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .password_in_file()
        .start()
        .await;
    let token = ks.demo_token().await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));
}

#[tokio::test]
async fn stonegate_authenticates_with_an_application_credential() {
    let ks = Keystone::from_env();
    let ac = ks.fixtures()["application_credentials"]["service"].clone();
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .application_credential(ac["id"].as_str().unwrap(), ac["secret"].as_str().unwrap())
        .start()
        .await;
    let token = ks.demo_token().await;
    assert_eq!(sg.get("/", &[("X-Auth-Token", &token)]).await.status(), 200);
    assert_eq!(up.last().header("x-user-id"), Some(ks.user_id("demo")));
    assert_eq!(
        sg.get("/", &[("X-Auth-Token", "garbage")]).await.status(),
        401
    );
}
