//! Tests of the session cookies' header handling.

use super::*;

#[test]
fn cookie_header_parsing_and_removal() {
    let mut h = HeaderMap::new();
    h.append(
        header::COOKIE,
        HeaderValue::from_static("a=1; sessionid=abc; csrftoken=x"),
    );
    h.append(
        header::COOKIE,
        HeaderValue::from_static("sessionid=\"def\""),
    );
    let v: Vec<&str> = cookie_values(&h, "sessionid").collect();
    assert_eq!(v, ["abc", "def"]);
    remove_cookie(&mut h, "sessionid");
    assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
    assert_eq!(h[header::COOKIE], "a=1; csrftoken=x");
    let mut only = HeaderMap::new();
    only.insert(header::COOKIE, HeaderValue::from_static("sessionid=abc"));
    remove_cookie(&mut only, "sessionid");
    assert!(only.get(header::COOKIE).is_none());
}
