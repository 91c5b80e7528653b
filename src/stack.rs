//! The assembly every front door is built from: checked [`Settings`] in, the
//! one [`Gate`] out (the [`Validator`] and, with `[session]`, the browser
//! [`Sessions`]), with the background tasks that keep it current (the
//! service-token keeper, the Fernet key-repository watcher, the
//! revocation-event poller).
//!
//! The sidecar (`stonegate serve`), forward-auth and an embedder's
//! [`AuthTokenLayer`](crate::AuthTokenLayer) are all built from [`build`], so
//! a `[fernet]` + `[revocation]` configuration validates locally and polls
//! revocation events in every one of them. This module is library code, not
//! behind the `server` feature.
//!
//! ```no_run
//! # async fn demo(settings: stonegate::config::Settings) -> Result<(), Box<dyn std::error::Error>> {
//! use stonegate::{metrics::Metrics, stack, AuthTokenLayer};
//!
//! let metrics = Metrics::unregistered();
//! let stack = stack::build(&settings, &metrics)?;
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "hello" }))
//!     .layer(AuthTokenLayer::new(stack.gate.clone(), metrics));
//! // Keep `stack.background` alive for as long as the layer serves.
//! # let _ = app; Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;

use crate::{
    audit::Auditor, config::Settings, gate::Gate, keystone, local::Local, metrics::Metrics,
    revocation::poller::Revocations, session::Sessions, validator::Validator,
};

/// Why the stack could not be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Keystone client could not be built.
    #[error(transparent)]
    Keystone(#[from] keystone::Error),
    /// The Fernet key or JWS public key repository could not be loaded.
    #[error(transparent)]
    Keys(#[from] crate::local::OpenError),
    /// The audit trail's sink could not be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::Error),
}

/// What every front door needs, and what keeps it current.
#[derive(Debug)]
pub struct Stack {
    /// The validator and sessions every front door decides with.
    pub gate: Gate,
    /// The tasks that keep the validator current; dropping it stops them.
    pub background: Background,
}

/// The background tasks of one [`Stack`]; they are aborted when this is
/// dropped (a configuration reload replaces them with the new stack's).
#[derive(Debug, Default)]
pub struct Background(Vec<JoinHandle<()>>);

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Builds the validator and the sessions for `settings` and starts the
/// background tasks on the current tokio runtime: a fresh service token kept
/// ahead of expiry, and with `[fernet]` the key watcher, with `[revocation]`
/// the poller. Sessions count login attempts in the shared cache, when
/// there is one.
///
/// Must be called inside a tokio runtime.
pub fn build(settings: &Settings, metrics: &Metrics) -> Result<Stack, Error> {
    let keystone = keystone::Client::new(settings.keystone.clone(), metrics.clone())?;
    let mut validator = Validator::new(keystone.clone(), settings.auth.clone(), metrics.clone());
    let mut tasks = vec![tokio::spawn(keep_service_token(keystone.clone()))];
    if let Some(local_settings) = &settings.auth.local {
        let local = Arc::new(Local::new(local_settings.clone())?);
        count_keys(&local, metrics);
        tasks.push(tokio::spawn(watch_keys(local.clone(), metrics.clone())));
        validator = validator.with_local(local);
    }
    if let Some(r) = &settings.auth.revocation {
        let revocations = Arc::new(Revocations::new(r.poll));
        let m = metrics.clone();
        tasks.push(tokio::spawn(revocations.clone().run(
            keystone,
            move |result: Result<usize, &keystone::Error>| match result {
                Ok(held) => {
                    m.revocation_events.set(gauge(held));
                    m.revocation_last_success.set(crate::clock::now());
                }
                Err(_) => m.revocation_poll_failures.inc(),
            },
        )));
        validator = validator.with_revocations(revocations);
    }
    let sessions = settings
        .session
        .clone()
        .map(|s| Arc::new(Sessions::new(s, validator.shared_cache().cloned())));
    let audit = match &settings.audit {
        None => None,
        Some(a) => {
            let service_type = settings.auth.service_type.clone();
            Some(Arc::new(Auditor::start(
                a.clone(),
                service_type,
                metrics.clone(),
            )?))
        }
    };
    Ok(Stack {
        gate: Gate {
            validator: Arc::new(validator),
            sessions,
            audit,
        },
        background: Background(tasks),
    })
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Keeps a fresh service token so that `/readyz` tells the truth and the first
/// request does not pay for authentication.
async fn keep_service_token(keystone: keystone::Client) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match keystone.ensure_service_token().await {
            Ok(()) => {
                backoff = Duration::from_millis(500);
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot obtain a service token");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The keys-loaded gauges, which every reload then keeps current (also
/// the one a token of an unknown key triggers: `KeyStore::report_to`).
fn count_keys(local: &Local, metrics: &Metrics) {
    if let Some(keys) = &local.keys {
        keys.report_to(metrics.fernet_keys.clone());
    }
    if let Some(keys) = &local.public_keys {
        keys.report_to(metrics.jws_keys.clone());
    }
}

/// Picks up key rotations: checks the repositories every
/// `key_reload_interval`; a bad repository is logged and counted, and the
/// last good keys stay.
async fn watch_keys(local: Arc<Local>, metrics: Metrics) {
    let interval = local.settings().key_reload_interval;
    loop {
        tokio::time::sleep(interval).await;
        if let Some(Err(e)) = local.keys.as_ref().map(|k| k.refresh(false)) {
            metrics.fernet_reload_failures.inc();
            tracing::error!(error = %e, "Fernet key repository reload failed; keeping the last good keys");
        }
        if let Some(Err(e)) = local.public_keys.as_ref().map(|k| k.refresh(false)) {
            metrics.jws_reload_failures.inc();
            tracing::error!(error = %e, "JWS public key repository reload failed; keeping the last good keys");
        }
    }
}
