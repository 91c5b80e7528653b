//! stonegate's product tests: the real `stonegate` binary between a client
//! and an echo upstream, against the real Keystone of the test harness
//! (`scripts/test.sh` starts it and exports `STONEGATE_TEST_KEYSTONE_FIXTURES`)
//! or, for faults and call counts, an in-process fake Keystone.
//!
//! One test binary: one link, one Keystone per run. Every listener binds a
//! `127.0.0.1:0`-derived port.

// A test binary: helpers may unwrap (a panic is the report), and `pub` only
// shares harness items between its modules.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    unreachable_pub
)]

mod harness;

mod audit;
mod audit_messaging;
mod bearer;
mod boundary;
mod cache;
mod cli;
mod connections;
mod embedded;
mod envoy_grpc;
mod faults;
mod forged;
mod holes;
mod identity;
mod in_process;
mod ingress;
mod ingress_session;
mod jws;
mod kmw_differential;
mod kube;
mod kube_authz;
mod kube_groups;
mod layer;
mod local;
mod mtls;
mod oslo;
mod paths;
mod policy;
mod proxy;
mod rejection;
mod reload;
mod request_id;
mod service_auth;
mod service_token;
mod session;
mod shared_cache;
mod tls;
mod tracing;
mod upgrade;
mod upstream_pool;
mod v2;
mod v2_differential;
