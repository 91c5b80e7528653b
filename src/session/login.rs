//! The login endpoint: a username and password (JSON or form body) traded
//! for a Keystone token, answered with the user and the session cookies.
//! Checked for method and origin first, then throttled per username
//! (whatever domain it names) and client address ([`super::throttle`]).

use std::net::IpAddr;

use http::{header, Method, Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::{
    json_response, origin, random, request_is_tls, seal, throttle::Attempt, Answer, SessionError,
    Sessions,
};
use crate::{
    keystone::{
        self,
        user_tokens::{Issued, LoginOutcome},
    },
    metrics::{Metrics, SessionEvent},
    rejection::SessionRejection,
    token::Fingerprint,
    validator::Validator,
};
use seal::SessionData;

/// Largest login body read (a username, a password and a scope).
const MAX_LOGIN_BODY: usize = 16 * 1024;
/// Time the login body has to arrive (then 408): at 16 KiB, a client
/// slower than 1.6 KB/s cannot hold a login (and its Keystone slot) open.
const LOGIN_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The parts of a login body stonegate reads (JSON or form).
#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginForm {
    username: Option<String>,
    /// Wiped from memory when the form is dropped.
    password: Option<Zeroizing<String>>,
    user_domain_name: Option<String>,
    user_domain_id: Option<String>,
    /// Horizon's name for the user's domain.
    domain: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    project_domain_name: Option<String>,
    project_domain_id: Option<String>,
}

impl Sessions {
    /// Answers the login endpoint.
    pub async fn login<B>(
        &self,
        validator: &Validator,
        metrics: &Metrics,
        req: Request<B>,
    ) -> Answer
    where
        B: Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if let Some(refusal) = self.refuse_login_request(&req, metrics) {
            return refusal;
        }
        let tls = request_is_tls(&req);
        let address = self.client_address(&req);
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(resp) => {
                metrics.session(SessionEvent::LoginBadRequest);
                return resp;
            }
        };
        let Some((username, password)) = form.credentials() else {
            metrics.session(SessionEvent::LoginBadRequest);
            return SessionRejection::MissingCredentials.into_response();
        };
        let user_domain = form.user_domain(&self.settings.default_user_domain);
        let (attempt, who) = match self.admit(metrics, username, &user_domain, address).await {
            Ok(admitted) => admitted,
            Err(resp) => return resp,
        };
        let auth = form.password_auth(username, password, user_domain);
        let outcome = issue(validator, auth).await;
        self.answer_login(validator, metrics, outcome, attempt, tls, who, address)
            .await
    }

    /// The refusal of a login that is not a `POST` from this site (or a
    /// trusted origin), if it is not.
    fn refuse_login_request<B>(&self, req: &Request<B>, metrics: &Metrics) -> Option<Answer> {
        if req.method() != Method::POST {
            return Some(SessionRejection::MethodNotAllowed.into_response());
        }
        if let Err(origin) =
            origin::check_login(req.headers(), req.uri(), &self.settings.trusted_origins)
        {
            metrics.session(SessionEvent::LoginCrossOrigin);
            tracing::warn!(origin = %origin, "cross-origin login refused");
            return Some(SessionRejection::CrossOriginLogin { origin }.into_response());
        }
        None
    }

    /// The throttle's leave to try this login, and the user's printable
    /// fingerprint (for logs); `Err`: the 429.
    async fn admit(
        &self,
        metrics: &Metrics,
        username: &str,
        user_domain: &Value,
        address: Option<IpAddr>,
    ) -> Result<(Attempt, Fingerprint), Answer> {
        let throttle_key = throttle_key(username);
        let spelling = json!([username, user_domain]).to_string();
        let who = Fingerprint::of(throttle_key.as_bytes());
        match self
            .throttle
            .attempt(&throttle_key, &spelling, address)
            .await
        {
            Ok(a) => Ok((a, who)),
            Err(retry) => {
                metrics.session(SessionEvent::LoginThrottled);
                tracing::warn!(user = %who, client = ?address, "login throttled");
                Err(SessionRejection::Throttled { retry_after: retry }.into_response())
            }
        }
    }

    /// The answer to what Keystone said of the password.
    #[allow(clippy::too_many_arguments)]
    async fn answer_login(
        &self,
        validator: &Validator,
        metrics: &Metrics,
        outcome: Result<LoginOutcome, keystone::Error>,
        attempt: Attempt,
        tls: bool,
        who: Fingerprint,
        address: Option<IpAddr>,
    ) -> Answer {
        match outcome {
            Ok(LoginOutcome::Issued(issued)) => {
                self.throttle.succeeded(attempt).await;
                match self.start(&issued, tls) {
                    Ok(resp) => {
                        metrics.session(SessionEvent::Login);
                        tracing::info!(
                            user_id = issued.body["user"]["id"].as_str(),
                            token = %issued.token.fingerprint(),
                            "session login"
                        );
                        resp
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot seal a session");
                        SessionRejection::SessionNotCreated.into_response()
                    }
                }
            }
            Ok(LoginOutcome::Refused) => {
                metrics.session(SessionEvent::LoginFailed);
                tracing::info!(user = %who, client = ?address, "login refused by Keystone");
                SessionRejection::LoginRefused {
                    www_authenticate: validator.settings().challenges.keystone().clone(),
                }
                .into_response()
            }
            Ok(LoginOutcome::BadRequest) => {
                metrics.session(SessionEvent::LoginBadRequest);
                SessionRejection::LoginNotUnderstood.into_response()
            }
            Err(e) => {
                metrics.session(SessionEvent::LoginKeystoneUnavailable);
                tracing::warn!(error = %e, "login: Keystone unavailable");
                SessionRejection::LoginKeystoneUnavailable.into_response()
            }
        }
    }

    /// The login answer: cookies and the user.
    fn start(&self, issued: &Issued, tls: bool) -> Result<Answer, SessionError> {
        let mut csrf = [0u8; 32];
        random(&mut csrf)?;
        let csrf = hex::encode(csrf);
        let body = &issued.body;
        let data = SessionData {
            token: issued.token.expose().to_owned(),
            csrf: csrf.clone(),
            expires_at: issued.expires_at,
            user_id: body["user"]["id"].as_str().unwrap_or_default().to_owned(),
        };
        let sealed = seal::seal(&self.settings.keys, &self.settings.cookie_name, &data)?;
        let max_age = (issued.expires_at - crate::clock::now()).max(0);
        let roles: Vec<&Value> = body["roles"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r.get("name")).collect())
            .unwrap_or_default();
        let answer = json!({
            "user": body.get("user"),
            "project": body.get("project"),
            "domain": body.get("domain"),
            "roles": roles,
            "expires_at": body.get("expires_at"),
            "csrf_token": csrf,
        });
        let mut resp = json_response(StatusCode::OK, &answer);
        let h = resp.headers_mut();
        h.append(
            header::SET_COOKIE,
            self.cookie(
                &self.settings.cookie_name,
                &sealed,
                Some(max_age),
                true,
                tls,
            ),
        );
        h.append(
            header::SET_COOKIE,
            self.cookie(
                &self.settings.csrf_cookie_name,
                &csrf,
                Some(max_age),
                false,
                tls,
            ),
        );
        Ok(resp)
    }
}

impl LoginForm {
    /// The username and password, when both are given and not empty.
    fn credentials(&self) -> Option<(&str, &str)> {
        let (Some(username), Some(password)) = (
            self.username.as_deref(),
            self.password.as_ref().map(|p| p.as_str()),
        ) else {
            return None;
        };
        (!username.is_empty() && !password.is_empty()).then_some((username, password))
    }

    /// The user's domain as Keystone's password method names it: by id, by
    /// name (`user_domain_name`, else Horizon's `domain`), else `default`.
    fn user_domain(&self, default: &str) -> Value {
        match (&self.user_domain_id, &self.user_domain_name, &self.domain) {
            (Some(id), _, _) => json!({ "id": id }),
            (None, Some(name), _) | (None, None, Some(name)) => json!({ "name": name }),
            (None, None, None) => json!({ "name": default }),
        }
    }

    /// Keystone's password `auth` object, scoped to the form's project when
    /// it names one (in its project domain, else the user's).
    fn password_auth(&self, username: &str, password: &str, user_domain: Value) -> Value {
        let project_domain = match (&self.project_domain_id, &self.project_domain_name) {
            (Some(id), _) => json!({ "id": id }),
            (None, Some(name)) => json!({ "name": name }),
            (None, None) => user_domain.clone(),
        };
        let mut auth = json!({
            "identity": {"methods": ["password"], "password": {"user": {
                "name": username, "domain": user_domain, "password": password}}}
        });
        match (&self.project_id, &self.project_name) {
            (Some(id), _) => auth["scope"] = json!({"project": {"id": id}}),
            (None, Some(name)) => {
                auth["scope"] = json!({"project": {"name": name, "domain": project_domain}})
            }
            (None, None) => {}
        }
        auth
    }
}

/// Asks Keystone for a token with `auth`, then wipes the password's copy in it.
async fn issue(validator: &Validator, mut auth: Value) -> Result<LoginOutcome, keystone::Error> {
    let outcome = validator.keystone().issue_user_token(&auth).await;
    if let Some(pw) = auth.pointer_mut("/identity/password/user/password") {
        drop(Zeroizing::new(
            std::mem::take(pw).as_str().map(str::to_owned),
        ));
    }
    outcome
}

/// The login throttle's bucket for `username`: the name alone, trimmed and
/// lower-cased, whatever domain the login names. A user's domain can be
/// spelt by name or id, in any case (`user_domain_name`, `user_domain_id`,
/// `domain`), and only Keystone knows which spellings are the same domain;
/// a bucket per spelling would multiply a guesser's attempts. So every
/// spelling of one user shares a bucket — and so do users of the same name
/// in different domains, which can only make throttling stricter. (A success
/// refunds only the attempts of its exact spelling: [`super::throttle`].)
///
/// The name is folded as Keystone's usual MySQL collations compare names
/// (`utf8_general_ci`: case, trailing spaces and Latin accents ignored, so
/// `José`, `jose` and `JOSE ` are one user there).
fn throttle_key(username: &str) -> String {
    username
        .trim()
        .to_lowercase()
        .chars()
        // Combining accents (a decomposed "é").
        .filter(|c| !('\u{300}'..='\u{36f}').contains(c))
        .map(|c| {
            ACCENTED
                .iter()
                .find(|(accented, _)| accented.contains(c))
                .map_or(c, |(_, base)| *base)
        })
        .collect()
}

/// Lower-case Latin letters with accents, by base letter.
const ACCENTED: &[(&str, char)] = &[
    ("àáâãäåāăą", 'a'),
    ("çćĉċč", 'c'),
    ("ďđ", 'd'),
    ("èéêëēĕėęě", 'e'),
    ("ĝğġģ", 'g'),
    ("ĥħ", 'h'),
    ("ìíîïĩīĭįı", 'i'),
    ("ĵ", 'j'),
    ("ķ", 'k'),
    ("ĺļľŀł", 'l'),
    ("ñńņňŉ", 'n'),
    ("òóôõöøōŏő", 'o'),
    ("ŕŗř", 'r'),
    ("śŝşšß", 's'),
    ("ţťŧ", 't'),
    ("ùúûüũūŭůűų", 'u'),
    ("ŵ", 'w'),
    ("ýÿŷ", 'y'),
    ("źżž", 'z'),
];

/// Reads the login body (JSON or form, at most [`MAX_LOGIN_BODY`], within
/// [`LOGIN_BODY_TIMEOUT`]); `Err`: the 4xx to send.
async fn read_form<B>(req: Request<B>) -> Result<LoginForm, Answer>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let Some(json) = is_json(&content_type) else {
        return Err(SessionRejection::UnsupportedMediaType.into_response());
    };
    let collected = tokio::time::timeout(
        LOGIN_BODY_TIMEOUT,
        Limited::new(req.into_body(), MAX_LOGIN_BODY).collect(),
    )
    .await;
    let Ok(collected) = collected else {
        return Err(SessionRejection::LoginBodyTimeout(LOGIN_BODY_TIMEOUT).into_response());
    };
    let body = match collected {
        Ok(b) => Zeroizing::new(b.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(SessionRejection::LoginBodyTooLarge.into_response())
        }
        Err(_) => return Err(SessionRejection::LoginBodyUnreadable.into_response()),
    };
    parse_form(json, &body).ok_or_else(|| SessionRejection::LoginBodyInvalid.into_response())
}

/// Whether a login body of media type `content_type` (lower-case, no
/// parameters) is JSON (`Some(true)`), a form (`Some(false)`) or refused.
fn is_json(content_type: &str) -> Option<bool> {
    match content_type {
        "application/json" => Some(true),
        "application/x-www-form-urlencoded" => Some(false),
        _ => None,
    }
}

/// A login body, JSON or form.
fn parse_form(json: bool, body: &[u8]) -> Option<LoginForm> {
    if json {
        serde_json::from_slice::<LoginForm>(body).ok()
    } else {
        serde_urlencoded::from_bytes::<LoginForm>(body).ok()
    }
}

/// What a login body asks Keystone for: the username and the password
/// `auth` object, or `None` when the body is refused (media type, syntax,
/// missing credentials). The login endpoint's parsing, without the body
/// reading and throttling around it; `pub` for the `session_headers` fuzz
/// target only, not API.
#[doc(hidden)]
pub fn login_auth(
    content_type: &str,
    body: &[u8],
    default_user_domain: &str,
) -> Option<(String, Value)> {
    let form = parse_form(is_json(content_type)?, body)?;
    let (username, password) = form.credentials()?;
    let auth = form.password_auth(username, password, form.user_domain(default_user_domain));
    Some((username.to_owned(), auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_keys_fold_what_keystones_database_would_not_tell_apart() {
        let key = throttle_key("José");
        for same in ["jose", "JOSE ", " JoSé", "jose\u{301}", "JOSÉ"] {
            assert_eq!(throttle_key(same), key, "{same:?}");
        }
        assert_eq!(throttle_key("Łukasz Straße"), "lukasz strase");
        assert_ne!(throttle_key("josh"), key);
        assert_eq!(throttle_key("用户"), "用户");
    }
}
