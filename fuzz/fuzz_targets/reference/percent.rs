//! Percent-decoding written out as a fuzz oracle, shared by the targets
//! that need it (`canonical_path`, `forward_auth_uri`, `session_headers`):
//! RFC 3986 §2.1 / WHATWG URL §1.3, where a `%` not followed by two hex
//! digits stays as it is. Included with `#[path]`: fuzz targets are
//! separate binaries.

/// The bytes `b` stands for.
pub fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                out.push(h * 16 + l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
