//! The clock: the current Unix time and Keystone's RFC 3339 timestamps.
//!
//! A leaf: it imports nothing of the crate. Pure functions elsewhere take
//! `now` as an argument; only their callers read the clock here.

/// Current Unix time in seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Seconds since the epoch of a Keystone timestamp (`2026-01-15T22:14:05.000000Z`).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}
