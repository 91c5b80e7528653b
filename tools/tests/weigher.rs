//! The cache's weigher is a real bound (issue 16): its estimate of an entry
//! is within ±15% of the resident memory an entry really costs.
//!
//! The oracle is the kernel's, not stonegate's: `cache_memory` (run as its own
//! process, so nothing else allocates meanwhile) fills a cache with 20,000
//! distinct identities, each with its user header block rendered as the first
//! request renders it, and reports the growth of its `VmRSS` per entry next
//! to the weigher's estimate (`Cache::weighted_size` / entries). Memory only,
//! no timing. Tokens validated with their catalog are over-estimated (the
//! pooled catalog counts in full for every entry): the second test holds the
//! weigher to being a bound there.

use std::{collections::HashMap, process::Command};

/// `key=value` lines of one `cache_memory` run.
fn run(args: &[&str]) -> HashMap<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cache_memory"))
        .args(args)
        .output()
        .expect("cache_memory runs");
    assert!(out.status.success(), "cache_memory failed: {out:?}");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn number(figures: &HashMap<String, String>, key: &str) -> f64 {
    figures
        .get(key)
        .unwrap_or_else(|| panic!("{key} in {figures:?}"))
        .parse()
        .unwrap_or_else(|_| panic!("{key} is a number: {figures:?}"))
}

#[test]
fn the_weighers_estimate_is_within_15_percent_of_resident_memory_per_entry() {
    let n = 20_000.0;
    let figures = run(&["20000"]);
    // Every entry is there (and the one that warmed the cache up): the
    // estimate is an average over all of them.
    assert_eq!(
        number(&figures, "mem_cache_entry_count"),
        n + 1.0,
        "{figures:?}"
    );
    assert_eq!(
        number(&figures, "mem_spot_present"),
        number(&figures, "mem_spot_checked"),
        "nothing evicted: {figures:?}"
    );
    let measured = number(&figures, "mem_bytes_per_entry");
    let estimated = number(&figures, "mem_estimated_bytes_per_entry");
    // A run that measured nothing (RSS unchanged) must not pass.
    assert!(measured > 100.0, "RSS grew by {measured} B per entry");
    let off = (estimated - measured) / measured;
    assert!(
        off.abs() <= 0.15,
        "weigher {estimated} B per entry, resident {measured} B: off by {:+.1}%",
        off * 100.0
    );
}

/// With their catalogs (pooled, one per project here, but counted in full
/// for every entry) the weigher over-estimates: `capacity_bytes` stays a
/// bound of resident memory, a loose one (README: Performance, Memory).
#[test]
fn with_catalogs_the_weigher_over_estimates_and_stays_a_bound() {
    let n = 10_000.0;
    let figures = run(&["10000", "cache", "catalog"]);
    assert_eq!(figures["mem_catalog"], "true", "{figures:?}");
    assert_eq!(
        number(&figures, "mem_cache_entry_count"),
        n + 1.0,
        "{figures:?}"
    );
    let measured = number(&figures, "mem_bytes_per_entry");
    let estimated = number(&figures, "mem_estimated_bytes_per_entry");
    assert!(measured > 100.0, "RSS grew by {measured} B per entry");
    assert!(
        estimated >= measured,
        "weigher {estimated} B per entry under resident {measured} B"
    );
}
