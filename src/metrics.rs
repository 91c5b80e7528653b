//! Prometheus metrics, registered into a caller's [`Registry`] (no globals).
//! Names are `stonegate_<subsystem>_<noun>_<unit>`; label values come from
//! fixed enums only, never from tokens, users or paths.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// What became of a request: the `outcome` label of `stonegate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Forwarded with a confirmed identity.
    Forwarded,
    /// Forwarded under `delay_auth_decision` without a confirmed identity.
    ForwardedUnconfirmed,
    /// A public route, forwarded without authentication.
    Public,
    /// Refused with 401.
    Unauthorized,
    /// Refused with 400: the path could be resolved differently elsewhere.
    AmbiguousPath,
    /// Keystone could not answer (503).
    KeystoneUnavailable,
    /// The upstream could not be reached or failed (502).
    UpstreamUnavailable,
    /// The upstream did not answer in time (504).
    UpstreamTimeout,
    /// Answered by a session endpoint (login, logout).
    SessionEndpoint,
    /// A session cookie or its request refused (CSRF, origin, bad cookie...).
    SessionRejected,
    /// Refused with 403 by an `[authorization]` rule.
    Forbidden,
    /// Refused with 400: `X-Auth-Token` and `Authorization: Bearer` differ.
    ConflictingTokens,
}

impl Outcome {
    /// Every outcome, in the README's order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Forwarded,
        Outcome::ForwardedUnconfirmed,
        Outcome::Public,
        Outcome::Unauthorized,
        Outcome::AmbiguousPath,
        Outcome::KeystoneUnavailable,
        Outcome::UpstreamUnavailable,
        Outcome::UpstreamTimeout,
        Outcome::SessionEndpoint,
        Outcome::SessionRejected,
        Outcome::Forbidden,
        Outcome::ConflictingTokens,
    ];

    /// The exported label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Forwarded => "forwarded",
            Outcome::ForwardedUnconfirmed => "forwarded_unconfirmed",
            Outcome::Public => "public",
            Outcome::Unauthorized => "unauthorized",
            Outcome::AmbiguousPath => "ambiguous_path",
            Outcome::KeystoneUnavailable => "keystone_unavailable",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::SessionEndpoint => "session_endpoint",
            Outcome::SessionRejected => "session_rejected",
            Outcome::Forbidden => "forbidden",
            Outcome::ConflictingTokens => "conflicting_tokens",
        }
    }
}

/// The front door a request came through: the `door` label of
/// `stonegate_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Door {
    /// The tower layer: embedded, and the sidecar proxy (`listen`).
    #[default]
    Layer,
    /// The HTTP forward-auth endpoints (`[[forward_auth]]` nginx, traefik, envoy).
    ForwardAuth,
    /// Envoy `ext_authz` over gRPC (`flavor = "envoy-grpc"`).
    EnvoyGrpc,
    /// The kube-apiserver webhooks (`[kubernetes]`).
    Kubernetes,
}

impl Door {
    /// The exported label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Layer => "layer",
            Door::ForwardAuth => "forward_auth",
            Door::EnvoyGrpc => "envoy_grpc",
            Door::Kubernetes => "kubernetes",
        }
    }
}

/// What became of an upgrade request: the `result` label of
/// `stonegate_proxy_upgrades_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpgradeResult {
    /// Switched protocols and tunnelled.
    Tunnelled,
    /// Forwarded without the upgrade (protocol not on the allowlist).
    NotAllowed,
    /// The upstream's 101 was refused (another protocol, or not HTTP/1.1).
    WrongProtocol,
}

impl UpgradeResult {
    /// The exported label value.
    pub fn as_str(self) -> &'static str {
        match self {
            UpgradeResult::Tunnelled => "tunnelled",
            UpgradeResult::NotAllowed => "not_allowed",
            UpgradeResult::WrongProtocol => "wrong_protocol",
        }
    }
}

/// A browser-session event: the `event` label of `stonegate_session_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// A login that issued a session.
    Login,
    /// A login Keystone refused.
    LoginFailed,
    /// A login request that was malformed.
    LoginBadRequest,
    /// A login from another origin.
    LoginCrossOrigin,
    /// A login refused by the throttle (429).
    LoginThrottled,
    /// A login Keystone could not answer.
    LoginKeystoneUnavailable,
    /// A logout.
    Logout,
    /// A logout whose token revocation Keystone could not answer.
    LogoutKeystoneUnavailable,
    /// A session cookie that could not be opened.
    CookieRejected,
    /// A session past its token's expiry.
    SessionExpired,
    /// A cookie-authenticated unsafe request without a valid CSRF token.
    CsrfRejected,
    /// A cookie-authenticated upgrade from another origin.
    UpgradeCrossOrigin,
}

impl SessionEvent {
    /// The exported label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEvent::Login => "login",
            SessionEvent::LoginFailed => "login_failed",
            SessionEvent::LoginBadRequest => "login_bad_request",
            SessionEvent::LoginCrossOrigin => "login_cross_origin",
            SessionEvent::LoginThrottled => "login_throttled",
            SessionEvent::LoginKeystoneUnavailable => "login_keystone_unavailable",
            SessionEvent::Logout => "logout",
            SessionEvent::LogoutKeystoneUnavailable => "logout_keystone_unavailable",
            SessionEvent::CookieRejected => "cookie_rejected",
            SessionEvent::SessionExpired => "session_expired",
            SessionEvent::CsrfRejected => "csrf_rejected",
            SessionEvent::UpgradeCrossOrigin => "upgrade_cross_origin",
        }
    }
}

/// Every metric stonegate exports.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Requests by final outcome (the `outcome` label values in the README).
    pub requests: IntCounterVec,
    /// Time to reach an auth decision, by source (`cache`, `keystone`).
    pub validation_seconds: HistogramVec,
    /// Cache lookups by result (`hit`, `miss`).
    pub cache_lookups: IntCounterVec,
    /// Entries in the token cache.
    pub cache_entries: IntGauge,
    /// Estimated bytes held by the token cache.
    pub cache_bytes: IntGauge,
    /// Keystone requests by operation and status class.
    pub keystone_requests: IntCounterVec,
    /// Upstream response-header latency.
    pub upstream_seconds: Histogram,
    /// Local (Fernet) decisions by outcome.
    pub local_decisions: IntCounterVec,
    /// Enrichment cache lookups by result (`hit`, `miss`).
    pub enrichment_lookups: IntCounterVec,
    /// Fernet keys loaded.
    pub fernet_keys: IntGauge,
    /// Failed reloads of the key repository (the last good keys stay in use).
    pub fernet_reload_failures: IntCounter,
    /// JWS public keys loaded.
    pub jws_keys: IntGauge,
    /// Failed reloads of the JWS public key repository (the last good keys stay).
    pub jws_reload_failures: IntCounter,
    /// Revocation events held.
    pub revocation_events: IntGauge,
    /// Failed revocation polls.
    pub revocation_poll_failures: IntCounter,
    /// Unix time of the last successful revocation poll.
    pub revocation_last_success: IntGauge,
    /// Browser-session events (`login`, `login_failed`, `csrf_rejected`, ...).
    pub session_events: IntCounterVec,
    /// Shared (memcached/Redis) cache operations by backend, operation, result.
    pub shared_cache_operations: IntCounterVec,
    /// CADF audit events by what became of them (`emitted`: written by the
    /// sink; `dropped`: the queue was full or the sink failed).
    pub audit_events: IntCounterVec,
    /// CADF audit events waiting in the queue for the sink.
    pub audit_queued: IntGauge,
    /// Spans by what became of them (`exported`: the collector took them;
    /// `dropped`: the export queue was full or the export failed).
    pub trace_spans: IntCounterVec,
    /// Upgrade requests by what became of them (`tunnelled`, `not_allowed`, ...).
    pub upgrades: IntCounterVec,
    /// Tunnels ended, by how (`closed`, `lifetime`, `idle`, `error`).
    pub tunnels: IntCounterVec,
    /// Tunnels open now.
    pub tunnels_open: IntGauge,
    /// `[authorization]` decisions by rule name (from the configuration) and
    /// decision (`allow`, `deny`).
    pub authorization_decisions: IntCounterVec,
    /// The door [`Metrics::request`] counts for ([`Metrics::at_door`]).
    door: Door,
    hot: Hot,
}

/// The shared cache's counters for one backend, resolved once.
#[derive(Clone, Debug)]
pub struct SharedCacheCounters {
    /// `get`, found and trusted.
    pub get_hit: IntCounter,
    /// `get`, absent.
    pub get_miss: IntCounter,
    /// `get`, server down, slow or answering garbage.
    pub get_error: IntCounter,
    /// `get`, entry failing its MAC or decryption (never trusted).
    pub get_rejected: IntCounter,
    /// `get`, authentic entry that is not a usable token document.
    pub get_unusable: IntCounter,
    /// `set`, stored.
    pub set_ok: IntCounter,
    /// `set`, not stored.
    pub set_error: IntCounter,
    /// `delete` (logout), done.
    pub delete_ok: IntCounter,
    /// `delete`, failed.
    pub delete_error: IntCounter,
}

/// Children of the per-request metrics, resolved once (a label lookup hashes
/// and locks; these are plain atomics).
#[derive(Clone, Debug)]
struct Hot {
    forwarded: IntCounter,
    unauthorized: IntCounter,
    public: IntCounter,
    cache_hit: IntCounter,
    cache_miss: IntCounter,
    seconds_cache: Histogram,
    seconds_validation: Histogram,
    local_valid: IntCounter,
    enrichment_hit: IntCounter,
    enrichment_miss: IntCounter,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let requests = IntCounterVec::new(
            Opts::new(
                "stonegate_requests_total",
                "Requests by front door and auth outcome.",
            ),
            &["door", "outcome"],
        )?;
        let validation_seconds = HistogramVec::new(
            HistogramOpts::new(
                "stonegate_validation_duration_seconds",
                "Time to reach an auth decision, by where it came from.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["source"],
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new("stonegate_cache_lookups_total", "Token cache lookups."),
            &["result"],
        )?;
        let local_decisions = IntCounterVec::new(
            Opts::new(
                "stonegate_local_decisions_total",
                "Local Fernet validation decisions by outcome.",
            ),
            &["outcome"],
        )?;
        let enrichment_lookups = IntCounterVec::new(
            Opts::new(
                "stonegate_enrichment_lookups_total",
                "Lookups of names and roles learnt for a user and scope.",
            ),
            &["result"],
        )?;
        let door = Door::default();
        let hot = Hot {
            forwarded: requests.with_label_values(&[door.as_str(), Outcome::Forwarded.as_str()]),
            unauthorized: requests
                .with_label_values(&[door.as_str(), Outcome::Unauthorized.as_str()]),
            public: requests.with_label_values(&[door.as_str(), Outcome::Public.as_str()]),
            cache_hit: cache_lookups.with_label_values(&["hit"]),
            cache_miss: cache_lookups.with_label_values(&["miss"]),
            seconds_cache: validation_seconds.with_label_values(&["cache"]),
            seconds_validation: validation_seconds.with_label_values(&["validation"]),
            local_valid: local_decisions.with_label_values(&["valid"]),
            enrichment_hit: enrichment_lookups.with_label_values(&["hit"]),
            enrichment_miss: enrichment_lookups.with_label_values(&["miss"]),
        };
        let m = Self {
            door,
            hot,
            requests,
            validation_seconds,
            cache_lookups,
            cache_entries: IntGauge::new("stonegate_cache_entries", "Entries in the token cache.")?,
            cache_bytes: IntGauge::new(
                "stonegate_cache_size_bytes",
                "Estimated bytes held by the token cache.",
            )?,
            keystone_requests: IntCounterVec::new(
                Opts::new(
                    "stonegate_keystone_requests_total",
                    "Requests to Keystone by operation and status.",
                ),
                &["operation", "status"],
            )?,
            upstream_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "stonegate_upstream_duration_seconds",
                    "Time until the upstream's response headers.",
                )
                .buckets(LATENCY_BUCKETS.to_vec()),
            )?,
            local_decisions,
            enrichment_lookups,
            fernet_keys: IntGauge::new("stonegate_fernet_keys", "Fernet keys loaded.")?,
            fernet_reload_failures: IntCounter::new(
                "stonegate_fernet_key_reload_failures_total",
                "Failed reloads of the Fernet key repository.",
            )?,
            jws_keys: IntGauge::new("stonegate_jws_public_keys", "JWS public keys loaded.")?,
            jws_reload_failures: IntCounter::new(
                "stonegate_jws_key_reload_failures_total",
                "Failed reloads of the JWS public key repository.",
            )?,
            revocation_events: IntGauge::new(
                "stonegate_revocation_events",
                "Revocation events held.",
            )?,
            revocation_poll_failures: IntCounter::new(
                "stonegate_revocation_poll_failures_total",
                "Failed polls of Keystone's revocation events.",
            )?,
            revocation_last_success: IntGauge::new(
                "stonegate_revocation_last_success_timestamp_seconds",
                "Unix time of the last successful revocation poll.",
            )?,
            session_events: IntCounterVec::new(
                Opts::new(
                    "stonegate_session_events_total",
                    "Browser-session logins, logouts and rejected session requests.",
                ),
                &["event"],
            )?,
            shared_cache_operations: IntCounterVec::new(
                Opts::new(
                    "stonegate_shared_cache_operations_total",
                    "Shared token cache (memcached/Redis) operations by result.",
                ),
                &["backend", "op", "result"],
            )?,
            audit_events: IntCounterVec::new(
                Opts::new(
                    "stonegate_audit_events_total",
                    "CADF audit events by result: emitted (written by the sink), dropped \
                     (queue full or sink failing).",
                ),
                &["result"],
            )?,
            audit_queued: IntGauge::new(
                "stonegate_audit_events_queued",
                "CADF audit events waiting for the sink.",
            )?,
            trace_spans: IntCounterVec::new(
                Opts::new(
                    "stonegate_trace_spans_total",
                    "Spans by result: exported (accepted by the OTLP collector), dropped \
                     (export queue full or export failed).",
                ),
                &["result"],
            )?,
            upgrades: IntCounterVec::new(
                Opts::new(
                    "stonegate_proxy_upgrades_total",
                    "Upgrade requests by result: tunnelled, not_allowed (forwarded without the \
                     upgrade), wrong_protocol (the upstream's 101 was refused).",
                ),
                &["result"],
            )?,
            tunnels: IntCounterVec::new(
                Opts::new(
                    "stonegate_proxy_tunnels_total",
                    "Upgraded tunnels ended, by how: closed, lifetime, idle, error.",
                ),
                &["end"],
            )?,
            tunnels_open: IntGauge::new(
                "stonegate_proxy_tunnels_open",
                "Upgraded tunnels open now.",
            )?,
            authorization_decisions: IntCounterVec::new(
                Opts::new(
                    "stonegate_authorization_decisions_total",
                    "[authorization] decisions by rule (a configured rule name, or default) \
                     and decision (allow, deny).",
                ),
                &["rule", "decision"],
            )?,
        };
        registry.register(Box::new(m.authorization_decisions.clone()))?;
        registry.register(Box::new(m.upgrades.clone()))?;
        registry.register(Box::new(m.audit_events.clone()))?;
        registry.register(Box::new(m.audit_queued.clone()))?;
        registry.register(Box::new(m.trace_spans.clone()))?;
        registry.register(Box::new(m.tunnels.clone()))?;
        registry.register(Box::new(m.tunnels_open.clone()))?;
        registry.register(Box::new(m.shared_cache_operations.clone()))?;
        registry.register(Box::new(m.session_events.clone()))?;
        registry.register(Box::new(m.local_decisions.clone()))?;
        registry.register(Box::new(m.enrichment_lookups.clone()))?;
        registry.register(Box::new(m.fernet_keys.clone()))?;
        registry.register(Box::new(m.fernet_reload_failures.clone()))?;
        registry.register(Box::new(m.jws_keys.clone()))?;
        registry.register(Box::new(m.jws_reload_failures.clone()))?;
        registry.register(Box::new(m.revocation_events.clone()))?;
        registry.register(Box::new(m.revocation_poll_failures.clone()))?;
        registry.register(Box::new(m.revocation_last_success.clone()))?;
        registry.register(Box::new(m.requests.clone()))?;
        registry.register(Box::new(m.validation_seconds.clone()))?;
        registry.register(Box::new(m.cache_lookups.clone()))?;
        registry.register(Box::new(m.cache_entries.clone()))?;
        registry.register(Box::new(m.cache_bytes.clone()))?;
        registry.register(Box::new(m.keystone_requests.clone()))?;
        registry.register(Box::new(m.upstream_seconds.clone()))?;
        Ok(m)
    }

    /// Metrics registered nowhere (for embedders that do not export them).
    pub fn unregistered() -> Self {
        // Registering into a fresh registry cannot collide.
        match Self::register(&Registry::new()) {
            Ok(m) => m,
            Err(e) => unreachable!("fresh registry rejected metrics: {e}"),
        }
    }
}

impl Metrics {
    /// The same metrics, counting requests (`stonegate_requests_total`)
    /// under `door`; each front door holds its own.
    pub fn at_door(&self, door: Door) -> Self {
        let mut m = self.clone();
        m.door = door;
        let child = |o: Outcome| m.requests.with_label_values(&[door.as_str(), o.as_str()]);
        m.hot.forwarded = child(Outcome::Forwarded);
        m.hot.unauthorized = child(Outcome::Unauthorized);
        m.hot.public = child(Outcome::Public);
        m
    }

    /// Counts one request under `outcome`, at this door.
    pub fn request(&self, outcome: Outcome) {
        match outcome {
            Outcome::Forwarded => self.hot.forwarded.inc(),
            Outcome::Unauthorized => self.hot.unauthorized.inc(),
            Outcome::Public => self.hot.public.inc(),
            Outcome::ForwardedUnconfirmed
            | Outcome::AmbiguousPath
            | Outcome::KeystoneUnavailable
            | Outcome::UpstreamUnavailable
            | Outcome::UpstreamTimeout
            | Outcome::SessionEndpoint
            | Outcome::SessionRejected
            | Outcome::Forbidden
            | Outcome::ConflictingTokens => self
                .requests
                .with_label_values(&[self.door.as_str(), outcome.as_str()])
                .inc(),
        }
    }

    /// Counts one `[authorization]` decision of the rule named `rule` (a
    /// name from the configuration: the label set is bounded).
    pub fn authorization(&self, rule: &str, allowed: bool) {
        let decision = if allowed { "allow" } else { "deny" };
        self.authorization_decisions
            .with_label_values(&[rule, decision])
            .inc();
    }

    /// Counts one upgrade request under `result`.
    pub fn upgrade(&self, result: UpgradeResult) {
        self.upgrades.with_label_values(&[result.as_str()]).inc();
    }

    /// Counts one tunnel ended under `end` (a fixed label).
    pub fn tunnel_ended(&self, end: &'static str) {
        self.tunnels.with_label_values(&[end]).inc();
    }

    /// Counts one browser-session event.
    pub fn session(&self, event: SessionEvent) {
        self.session_events
            .with_label_values(&[event.as_str()])
            .inc();
    }

    /// The shared-cache counters of `backend` (`memcached` or `redis`).
    pub fn shared_cache(&self, backend: &'static str) -> SharedCacheCounters {
        let c = |op: &str, result: &str| {
            self.shared_cache_operations
                .with_label_values(&[backend, op, result])
        };
        SharedCacheCounters {
            get_hit: c("get", "hit"),
            get_miss: c("get", "miss"),
            get_error: c("get", "error"),
            get_rejected: c("get", "rejected"),
            get_unusable: c("get", "unusable"),
            set_ok: c("set", "ok"),
            set_error: c("set", "error"),
            delete_ok: c("delete", "ok"),
            delete_error: c("delete", "error"),
        }
    }

    /// Counts a token validated locally
    /// (`stonegate_local_decisions_total{outcome="valid"}`).
    pub fn local_valid(&self) {
        self.hot.local_valid.inc();
    }

    /// Counts one lookup of the names and roles learnt for a user and scope.
    pub fn enrichment(&self, hit: bool) {
        if hit {
            self.hot.enrichment_hit.inc();
        } else {
            self.hot.enrichment_miss.inc();
        }
    }

    /// Counts one token-cache lookup and the time its decision took.
    pub fn lookup(&self, hit: bool, seconds: f64) {
        if hit {
            self.hot.cache_hit.inc();
            self.hot.seconds_cache.observe(seconds);
        } else {
            self.hot.cache_miss.inc();
            self.hot.seconds_validation.observe(seconds);
        }
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    let encoder = prometheus::TextEncoder::new();
    if encoder.encode(&registry.gather(), &mut buf).is_err() {
        return String::new();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_outcomes_keep_their_exported_labels() {
        let labels: Vec<_> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(
            labels,
            [
                "forwarded",
                "forwarded_unconfirmed",
                "public",
                "unauthorized",
                "ambiguous_path",
                "keystone_unavailable",
                "upstream_unavailable",
                "upstream_timeout",
                "session_endpoint",
                "session_rejected",
                "forbidden",
                "conflicting_tokens",
            ]
        );
    }

    #[test]
    fn every_outcome_is_counted_under_its_label() {
        let m = Metrics::unregistered();
        let doors = [
            Door::Layer,
            Door::ForwardAuth,
            Door::EnvoyGrpc,
            Door::Kubernetes,
        ];
        for (i, door) in doors.into_iter().enumerate() {
            let at = m.at_door(door);
            for o in Outcome::ALL {
                for _ in 0..=i {
                    at.request(o);
                }
            }
        }
        for (i, door) in doors.into_iter().enumerate() {
            for o in Outcome::ALL {
                assert_eq!(
                    m.requests
                        .with_label_values(&[door.as_str(), o.as_str()])
                        .get(),
                    i as u64 + 1,
                    "{door:?} {o:?}"
                );
            }
        }
    }
}
