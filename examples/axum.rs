//! Embedding stonegate in an axum service: every route behind
//! [`AuthTokenLayer`], handlers reading the validated identity from the
//! request extensions. The layer is built from the same [`stack::build`] as
//! the sidecar, so a `[fernet]` + `[revocation]` configuration validates
//! locally and polls revocation events here too.
//!
//! ```text
//! STONEGATE_PASSWORD=... cargo run --example axum -- config/stonegate.toml 127.0.0.1:3000
//! curl -H "X-Auth-Token: $TOKEN" http://127.0.0.1:3000/whoami
//! ```

use axum::{routing::get, Extension, Router};
use stonegate::{config, metrics::Metrics, stack, AuthContext, AuthTokenLayer};

async fn whoami(Extension(ctx): Extension<AuthContext>) -> String {
    match &ctx.user {
        Some(id) => format!(
            "user {} ({}) roles [{}]\n",
            id.user.name.as_deref().unwrap_or("?"),
            id.user.id.as_deref().unwrap_or("?"),
            id.roles.join(",")
        ),
        // Only reachable with delay_auth_decision = true.
        None => "anonymous\n".into(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .unwrap_or_else(|| "config/stonegate.toml".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let settings = config::File::load(path.as_ref())?.build(&|k| std::env::var(k).ok())?;

    let metrics = Metrics::unregistered();
    // Validator + service-token keeper, key watcher, revocation poller.
    let stack = stack::build(&settings, &metrics)?;
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(AuthTokenLayer::new(stack.gate.clone(), metrics));

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{addr}");
    axum::serve(listener, app).await?;
    drop(stack.background);
    Ok(())
}
