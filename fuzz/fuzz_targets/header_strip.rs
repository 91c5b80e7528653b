//! Arbitrary header names and values: after `strip_identity`, no identity
//! header (in any spelling) may remain.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use stonegate::headers::{is_identity_header, strip_identity};

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for line in data.split(|b| *b == b'\n') {
        let mut parts = line.splitn(2, |b| *b == b':');
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    strip_identity(&mut headers);
    for name in headers.keys() {
        assert!(!is_identity_header(name.as_str()), "{name} survived stripping");
    }
});
