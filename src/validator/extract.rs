//! Which headers carry a request's tokens: `X-Service-Token`; the user
//! token in `X-Auth-Token`, else `X-Storage-Token`, else (with `[oauth2]
//! bearer`, as keystonemiddleware's `oauth2_token`) `Authorization: Bearer`.
//! A header the upstream could read differently from the one validated
//! (repeated, or two sources with different values) is never taken.

use http::{header::AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use crate::token::Token;

/// `X-Auth-Token`. The names are parsed once: a `&str` name would be parsed
/// and lower-cased again on every lookup of every request.
const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
/// `X-Storage-Token` (Swift's name for the user token).
const X_STORAGE_TOKEN: HeaderName = HeaderName::from_static("x-storage-token");
/// `X-Service-Token`.
pub(super) const X_SERVICE_TOKEN: HeaderName = HeaderName::from_static("x-service-token");

/// Two user-token sources disagree: `X-Auth-Token` (or `X-Storage-Token`)
/// and `Authorization: Bearer` name different tokens (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conflict;

/// The one value of a token header: `None` if absent, `Some(None)` if it is
/// repeated (the upstream might read another value than the one validated, so
/// a repeated token header counts as an invalid token).
pub(super) fn single<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<Option<&'a HeaderValue>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    Some(values.next().is_none().then_some(first))
}

/// The user token: `Ok(None)` when none was sent or the one sent is not a
/// usable token (repeated, malformed: refused as invalid); [`Conflict`]
/// when `bearer` is on and `Authorization: Bearer` names another token
/// than `X-Auth-Token` / `X-Storage-Token`.
pub(super) fn user_token(headers: &HeaderMap, bearer: bool) -> Result<Option<Token>, Conflict> {
    let header = user_token_header(headers);
    let from_header = || header.flatten().and_then(Token::from_header);
    if !bearer {
        return Ok(from_header());
    }
    match (header, bearer_token(headers)) {
        (_, None) => Ok(from_header()),
        (None, Some(bearer)) => Ok(bearer),
        // The same token twice is one token; anything else is two.
        (Some(_), Some(bearer)) => match (from_header(), bearer) {
            (Some(a), Some(b)) if a == b => Ok(Some(a)),
            _ => Err(Conflict),
        },
    }
}

/// Whether the request names a user token in any header the validator
/// reads (a session cookie then stands aside, as for `X-Auth-Token`).
pub(super) fn has_user_token(headers: &HeaderMap, bearer: bool) -> bool {
    user_token_header(headers).is_some() || (bearer && bearer_token(headers).is_some())
}

/// The user token header: `X-Auth-Token`, else `X-Storage-Token`. Both
/// present with different values count as a repeated header: the upstream
/// (Swift reads either) might use the one stonegate did not validate.
fn user_token_header(headers: &HeaderMap) -> Option<Option<&HeaderValue>> {
    match (
        single(headers, &X_AUTH_TOKEN),
        single(headers, &X_STORAGE_TOKEN),
    ) {
        (Some(Some(auth)), Some(Some(storage))) if auth != storage => Some(None),
        (Some(_), Some(None)) => Some(None),
        (Some(auth), _) => Some(auth),
        (None, storage) => storage,
    }
}

/// The `Authorization: Bearer` token: `None` when no `Authorization` of
/// the Bearer scheme was sent (another scheme is the upstream's business),
/// `Some(None)` when one was but it is not one well-formed token, or
/// `Authorization` is repeated with a Bearer value among them (what a
/// comma-merging proxy would have turned into one value).
fn bearer_token(headers: &HeaderMap) -> Option<Option<Token>> {
    match single(headers, &AUTHORIZATION)? {
        Some(value) => Token::from_authorization(value),
        None => headers
            .get_all(AUTHORIZATION)
            .iter()
            .any(|v| Token::from_authorization(v).is_some())
            .then_some(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn user(
        pairs: &[(&'static str, &'static str)],
        bearer: bool,
    ) -> Result<Option<String>, Conflict> {
        user_token(&headers(pairs), bearer).map(|t| t.map(|t| t.expose().to_owned()))
    }

    #[test]
    fn bearer_is_read_only_when_enabled() {
        let req = [("authorization", "Bearer tok")];
        assert_eq!(user(&req, false), Ok(None));
        assert_eq!(user(&req, true), Ok(Some("tok".into())));
        assert!(has_user_token(&headers(&req), true));
        assert!(!has_user_token(&headers(&req), false));
        // Another scheme is no token, on or off.
        assert_eq!(user(&[("authorization", "Basic dTpw")], true), Ok(None));
        assert!(!has_user_token(
            &headers(&[("authorization", "Basic dTpw")]),
            true
        ));
    }

    #[test]
    fn x_auth_token_wins_and_a_different_bearer_conflicts() {
        let same = [("x-auth-token", "tok"), ("authorization", "Bearer tok")];
        assert_eq!(user(&same, true), Ok(Some("tok".into())));
        let different = [("x-auth-token", "tok"), ("authorization", "Bearer other")];
        assert_eq!(user(&different, true), Err(Conflict));
        let storage = [
            ("x-storage-token", "tok"),
            ("authorization", "Bearer other"),
        ];
        assert_eq!(user(&storage, true), Err(Conflict));
        let malformed = [("x-auth-token", "tok"), ("authorization", "Bearer a b")];
        assert_eq!(user(&malformed, true), Err(Conflict));
        // Bearer off: Authorization is not read at all.
        assert_eq!(user(&different, false), Ok(Some("tok".into())));
        // A Basic Authorization beside X-Auth-Token is the upstream's.
        let basic = [("x-auth-token", "tok"), ("authorization", "Basic dTpw")];
        assert_eq!(user(&basic, true), Ok(Some("tok".into())));
    }

    #[test]
    fn repeated_or_merged_authorization_is_no_token() {
        let repeated = [
            ("authorization", "Bearer tok"),
            ("authorization", "Bearer tok"),
        ];
        assert_eq!(user(&repeated, true), Ok(None));
        assert!(has_user_token(&headers(&repeated), true));
        let mixed = [
            ("authorization", "Basic dTpw"),
            ("authorization", "Bearer tok"),
        ];
        assert_eq!(user(&mixed, true), Ok(None));
        let merged = [("authorization", "Bearer tok, Bearer other")];
        assert_eq!(user(&merged, true), Ok(None));
    }
}
