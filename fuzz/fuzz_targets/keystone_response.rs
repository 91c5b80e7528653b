//! Keystone's answers are input too: arbitrary bytes as a v3 token document
//! (`GET /v3/auth/tokens`) and as a v2.0 access document
//! (`GET /v2.0/tokens/{id}`). Parsing never panics; an accepted document
//! always names a user and an expiry (the fields a wrong answer would turn
//! into a security bug); and injecting the identity it yields never panics
//! and only ever writes identity headers, whatever bytes the names hold.
#![no_main]

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use stonegate::headers::{is_identity_header, set_service, set_user};
use stonegate::keystone::{model, model_v2};

fuzz_target!(|data: &[u8]| {
    for parsed in [model::parse_token(data), model_v2::parse_access(data)] {
        let Ok(id) = parsed else { continue };
        assert!(id.user.id.is_some(), "accepted a document without a user id");
        let mut headers = HeaderMap::new();
        set_user(&mut headers, &id, true);
        set_service(&mut headers, &id);
        for name in headers.keys() {
            assert!(
                is_identity_header(name.as_str()),
                "injected a non-identity header {name}"
            );
        }
    }
});
