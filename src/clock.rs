//! The clock: the current Unix time and Keystone's RFC 3339 timestamps.
//!
//! A leaf: it imports nothing of the crate. Pure functions elsewhere take
//! `now` as an argument; only their callers read the clock here.

/// Current Unix time in seconds.
pub(crate) fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Seconds since the epoch of a Keystone timestamp (`2026-01-15T22:14:05.000000Z`).
///
/// RFC 3339's `date-time` (§5.6): the date and the time are joined by `T`
/// (or `t`). The `time` crate takes any byte there (`2026-12-02'03:47:47Z`,
/// a finding of the `revocation_events` fuzz target); Keystone writes `T`,
/// and anything else is refused.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn rfc3339_date_and_time_are_joined_by_t_only() {
        assert_eq!(
            parse_rfc3339("2026-12-02T03:47:47.000000Z"),
            Some(1_796_183_267)
        );
        assert_eq!(parse_rfc3339("2026-12-02t03:47:47Z"), Some(1_796_183_267));
        for bad in [
            "2026-12-02'03:47:47.000000Z",
            "2026-12-02 03:47:47Z",
            "2026-12-02x03:47:47Z",
            "2026-12-02",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
