//! Memory case (`scripts/bench.sh`): resident memory per cached identity.
//!
//! Inserts N (default 1,000,000) distinct project-scoped identities without
//! catalog — each parsed from its own Keystone validation document, as
//! stonegate does on a cache miss — into a `stonegate::cache::Cache` with a
//! capacity far above what they weigh, and reads VmRSS from
//! `/proc/self/status` before and after.
//!
//! ```text
//! cargo run --release -p stonegate-tools --bin cache_memory            # the cache
//! cargo run --release -p stonegate-tools --bin cache_memory -- 1000000 identities
//! cargo run --release -p stonegate-tools --bin cache_memory -- 1000000 cache catalog
//! ```
//!
//! With `catalog`, every token carries its project's service catalog (seven
//! services, public/internal/admin endpoints; block-storage and object-store
//! URLs name the project, as in most clouds, so each project's catalog is
//! its own), as validations without `?nocatalog` return it.
//!
//! Every identity's user header block is rendered (one request's
//! `headers::set_user`) before it is stored, as the first request through
//! stonegate renders it: the figure is what a cached identity costs once used.
//!
//! Mode `identities` holds the same `Arc<Identity>`s in a `Vec` instead of the
//! cache: the difference between the two runs is the cache's own overhead.
//! Output: one `key=value` line per figure, for the script to parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, sync::Arc, time::Duration, time::Instant};

use sha2::{Digest, Sha256};
use stonegate::{
    cache::{Cache, Key, Outcome},
    identity::Identity,
    keystone::model::parse_token,
    token::Fingerprint,
};

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn hex32(i: u64, salt: u8) -> String {
    let d = Sha256::digest([&i.to_le_bytes()[..], &[salt]].concat());
    hex::encode(&d[..16])
}

fn key(i: u64) -> Key {
    Key {
        fingerprint: Fingerprint(Sha256::digest(i.to_le_bytes()).into()),
        allow_expired: false,
    }
}

/// A project's catalog, Keystone's v3 JSON.
fn catalog(pid: &str) -> String {
    let services = [
        ("identity", "keystone", "http://ctl:5000/v3".to_owned()),
        ("compute", "nova", "http://ctl:8774/v2.1".to_owned()),
        ("image", "glance", "http://ctl:9292".to_owned()),
        ("network", "neutron", "http://ctl:9696".to_owned()),
        ("placement", "placement", "http://ctl:8778".to_owned()),
        (
            "block-storage",
            "cinder",
            format!("http://ctl:8776/v3/{pid}"),
        ),
        (
            "object-store",
            "swift",
            format!("http://ctl:8080/v1/AUTH_{pid}"),
        ),
    ];
    let mut out = Vec::new();
    for (k, (kind, name, url)) in services.iter().enumerate() {
        let eps: Vec<String> = ["public", "internal", "admin"]
            .iter()
            .enumerate()
            .map(|(j, iface)| {
                format!(
                    r#"{{"id": "{eid}", "interface": "{iface}", "region": "RegionOne", "region_id": "RegionOne", "url": "{url}"}}"#,
                    eid = hex32(k as u64 * 3 + j as u64, 4),
                )
            })
            .collect();
        out.push(format!(
            r#"{{"id": "{sid}", "type": "{kind}", "name": "{name}", "endpoints": [{eps}]}}"#,
            sid = hex32(k as u64, 5),
            eps = eps.join(", "),
        ));
    }
    format!("[{}]", out.join(", "))
}

/// A distinct user's project-scoped password token, as `GET /v3/auth/tokens?nocatalog` returns it
/// (or, `with_catalog`, without `?nocatalog`).
fn identity(i: u64, issued: &str, expires: &str, with_catalog: bool) -> Identity {
    let pid = hex32(i / 10, 2);
    let catalog = if with_catalog {
        format!(r#", "catalog": {}"#, catalog(&pid))
    } else {
        String::new()
    };
    let doc = format!(
        r#"{{"token": {{"methods": ["password"],
          "user": {{"domain": {{"id": "default", "name": "Default"}}, "id": "{uid}", "name": "user-{i}", "password_expires_at": null}},
          "audit_ids": ["{audit}"],
          "expires_at": "{expires}", "issued_at": "{issued}",
          "project": {{"domain": {{"id": "default", "name": "Default"}}, "id": "{pid}", "name": "project-{p}"}},
          "is_domain": false,
          "roles": [{{"id": "5e0f3b8a2c1d4e6f9a7b8c0d1e2f3a4b", "name": "reader"}}, {{"id": "7a1b2c3d4e5f60718293a4b5c6d7e8f9", "name": "member"}}]{catalog}}}}}"#,
        uid = hex32(i, 1),
        p = i / 10,
        audit = &hex32(i, 3)[..22],
    );
    parse_token(doc.as_bytes()).expect("document parses")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |s| s.parse().expect("N"));
    let mode = args.next().unwrap_or_else(|| "cache".to_owned());
    let with_catalog = args.next().is_some_and(|a| a == "catalog");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fmt = time::format_description::well_known::Rfc3339;
    let now = time::OffsetDateTime::now_utc();
    let issued = now.format(&fmt).expect("time");
    let expires = (now + time::Duration::hours(2)).format(&fmt).expect("time");

    let cache = Cache::new(1 << 40, Duration::from_secs(3600), Duration::from_secs(10));
    let mut held: Vec<Arc<Identity>> = Vec::new();
    if mode == "identities" {
        held.reserve_exact(usize::try_from(n).expect("N fits"));
    }
    // Warm the allocator and the cache's internals with one entry.
    rt.block_on(async {
        let id = Arc::new(identity(u64::MAX, &issued, &expires, with_catalog));
        stonegate::headers::set_user(&mut http::HeaderMap::new(), &id, false);
        let _ = cache
            .get_or_validate(key(u64::MAX), async {
                Ok::<_, Infallible>(Outcome::Valid(id))
            })
            .await;
    });
    let before = rss_kib();
    let started = Instant::now();
    rt.block_on(async {
        let mut request = http::HeaderMap::new();
        for i in 0..n {
            let id = Arc::new(identity(i, &issued, &expires, with_catalog));
            request.clear();
            stonegate::headers::set_user(&mut request, &id, false);
            match mode.as_str() {
                "identities" => held.push(id),
                _ => {
                    let (_, hit) = cache
                        .get_or_validate(key(i), async { Ok::<_, Infallible>(Outcome::Valid(id)) })
                        .await
                        .expect("insert");
                    assert!(!hit, "keys are distinct");
                }
            }
        }
    });
    let elapsed = started.elapsed();
    let after = rss_kib();

    // Spot-check that the entries are still there (nothing was evicted).
    let mut present = 0u64;
    let step = (n / 1000).max(1);
    let mut checked = 0u64;
    if mode != "identities" {
        rt.block_on(async {
            let mut i = 0;
            while i < n {
                checked += 1;
                let r = cache
                    .get_or_validate(key(i), async { Err::<Outcome, &str>("absent") })
                    .await;
                if matches!(r, Ok((_, true))) {
                    present += 1;
                }
                i += step;
            }
        });
    }

    let per_entry = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    println!("mem_mode={mode}");
    println!("mem_catalog={with_catalog}");
    println!("mem_entries={n}");
    println!("mem_rss_before_kib={before}");
    println!("mem_rss_after_kib={after}");
    println!("mem_bytes_per_entry={per_entry:.0}");
    println!("mem_size_of_identity={}", std::mem::size_of::<Identity>());
    println!(
        "mem_insert_rate_per_s={:.0}",
        n as f64 / elapsed.as_secs_f64()
    );
    if mode == "identities" {
        let held_bytes: usize = held.iter().map(|i| i.held_bytes()).sum();
        println!(
            "mem_held_bytes_per_identity={:.0}",
            held_bytes as f64 / held.len().max(1) as f64
        );
    }
    if mode != "identities" {
        println!("mem_spot_checked={checked}");
        println!("mem_spot_present={present}");
        println!("mem_cache_entry_count={}", cache.entry_count());
        println!(
            "mem_estimated_bytes_per_entry={:.0}",
            cache.weighted_size() as f64 / cache.entry_count().max(1) as f64
        );
    }
    drop(held);
}
