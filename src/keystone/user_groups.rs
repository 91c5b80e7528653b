//! The groups a user belongs to (`GET /v3/users/{user_id}/groups`), asked
//! with the user's own token: Keystone's default policy
//! (`identity:list_groups_for_user`) lets the owner list them, and the
//! service role need not be able to. The kube-apiserver webhook turns them
//! into Kubernetes groups, as k8s-keystone-auth does.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use serde::Deserialize;

use super::{Client, Error, USER_AGENT};
use crate::clock::now;
use crate::token::Token;

/// What Keystone said when asked for a user's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    /// The user's group names, in Keystone's order.
    Listed(Vec<String>),
    /// Keystone refused the token (401: no longer valid) or the listing
    /// (403: its policy does not let the owner list them; 404: no such user).
    Refused(StatusCode),
}

#[derive(Deserialize)]
struct Listing {
    groups: Vec<Group>,
}

#[derive(Deserialize)]
struct Group {
    name: String,
}

impl Client {
    /// `GET {identity endpoint}/users/{user_id}/groups` with `token`
    /// (the user's own) as `X-Auth-Token`.
    pub async fn user_groups(&self, user_id: &str, token: &Token) -> Result<Groups, Error> {
        // The endpoint stonegate validates with (from its service token's catalog).
        let svc = self.inner.auth.current(self, now()).await?;
        let url = format!("{}/users/{}/groups", svc.endpoint, segment(user_id));
        let mut value = HeaderValue::from_str(token.expose())
            .map_err(|_| Error::Malformed("token is not a valid header value".into()))?;
        value.set_sensitive(true);
        let reply = self
            .send("user_groups", || {
                let mut req = Request::builder()
                    .method(Method::GET)
                    .uri(url.as_str())
                    .header(header::ACCEPT, "application/json")
                    .header(header::USER_AGENT, USER_AGENT)
                    .body(Full::new(Bytes::new()))?;
                req.headers_mut().insert("X-Auth-Token", value.clone());
                Ok(req)
            })
            .await?;
        match reply.status {
            StatusCode::OK => {
                let listing: Listing = serde_json::from_slice(&reply.body)
                    .map_err(|e| Error::Malformed(format!("user groups: {e}")))?;
                Ok(Groups::Listed(
                    listing.groups.into_iter().map(|g| g.name).collect(),
                ))
            }
            s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
                Ok(Groups::Refused(s))
            }
            other => Err(Error::Status(other)),
        }
    }
}

/// `id` as one URL path segment: RFC 3986 unreserved bytes as they are,
/// every other byte percent-encoded (so no id can change the path).
fn segment(id: &str) -> String {
    let mut s = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    if s.bytes().all(|b| b == b'.') {
        // `.` and `..` would be dot-segments.
        s = s.replace('.', "%2E");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn a_user_id_stays_one_path_segment() {
        assert_eq!(
            segment("0123456789abcdef0123456789abcdef"),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(segment("../admin"), "..%2Fadmin");
        assert_eq!(segment(".."), "%2E%2E");
        assert_eq!(segment("a b?c#d%"), "a%20b%3Fc%23d%25");
        assert_eq!(segment("cn=alice,ou=x"), "cn%3Dalice%2Cou%3Dx");
    }
}
