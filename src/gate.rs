//! What every front door decides with: the [`Validator`] and, with
//! `[session]`, the browser [`Sessions`] (and with `[audit]` the
//! [`Auditor`]) — one value, so that a
//! configuration reload replaces both at once ([`Handle`]) and no request
//! sees a new validator with the old sessions.
//!
//! [`crate::stack::build`] makes the [`Gate`]; the layer, the proxy and
//! forward-auth hold a [`Handle`] on it.

use std::sync::{Arc, RwLock};

use crate::{audit::Auditor, session::Sessions, validator::Validator};

/// The validator and the sessions of one configuration.
#[derive(Clone, Debug)]
pub struct Gate {
    /// Decides tokens.
    pub validator: Arc<Validator>,
    /// Browser sessions, when `[session]` is enabled.
    pub sessions: Option<Arc<Sessions>>,
    /// The CADF audit trail, when `[audit]` is enabled.
    pub audit: Option<Arc<Auditor>>,
}

/// A [`Gate`] that can be replaced while requests flow (configuration
/// reload): each request uses the gate current when it started, validator
/// and sessions from the same configuration.
#[derive(Clone, Debug)]
pub struct Handle(Arc<RwLock<Arc<Gate>>>);

impl Handle {
    /// A handle on `gate`.
    pub fn new(gate: Gate) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(gate))))
    }

    /// The current gate.
    pub fn get(&self) -> Arc<Gate> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `gate` in place for the requests that start from now on.
    pub fn replace(&self, gate: Gate) {
        let gate = Arc::new(gate);
        match self.0.write() {
            Ok(mut g) => *g = gate,
            Err(p) => *p.into_inner() = gate,
        }
    }
}
