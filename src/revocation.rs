//! Keystone revocation events (`GET /v3/OS-REVOKE/events`) and the exact
//! matching rules of Keystone's revoke model (`revoke_model.py matches`):
//! a token is revoked iff some event matches all eleven rules. Pure functions
//! take `now`; the polling loop lives in [`poller`].
//!
//! Data a local validator may lack (an OAuth1 token's consumer, the token's
//! roles before enrichment) is [`Known::Unknown`], and an event that needs it
//! counts as matching: unknown fails closed.

pub mod poller;
pub mod settings;

use std::collections::HashMap;

use serde::Deserialize;

use crate::{clock::parse_rfc3339, identity::Identity};

pub use settings::{Section, Settings};

/// One revocation event (all columns of Keystone's `RevocationEvent`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Event {
    /// Revokes tokens of this user (as user, trustor or trustee).
    pub user_id: Option<String>,
    /// ... scoped to this project.
    pub project_id: Option<String>,
    /// ... whose user's domain or domain scope is this.
    pub domain_id: Option<String>,
    /// ... domain-scoped to this domain.
    pub domain_scope_id: Option<String>,
    /// ... holding this role.
    pub role_id: Option<String>,
    /// ... of this trust.
    pub trust_id: Option<String>,
    /// ... of this OAuth1 consumer.
    pub consumer_id: Option<String>,
    /// OAuth1 access token (never compared, as in Keystone).
    pub access_token_id: Option<String>,
    /// ... with this audit id.
    pub audit_id: Option<String>,
    /// ... re-scoped from the token with this audit id.
    pub audit_chain_id: Option<String>,
    /// Tokens issued at or before this instant (Unix seconds).
    pub issued_before: i64,
    /// ... expiring at exactly this second.
    pub expires_at: Option<i64>,
    /// When the event was recorded (Unix seconds).
    pub revoked_at: i64,
}

#[derive(Deserialize)]
struct EventDoc {
    user_id: Option<String>,
    project_id: Option<String>,
    domain_id: Option<String>,
    domain_scope_id: Option<String>,
    role_id: Option<String>,
    #[serde(rename = "OS-TRUST:trust_id")]
    trust_id: Option<String>,
    #[serde(rename = "OS-OAUTH1:consumer_id")]
    consumer_id: Option<String>,
    #[serde(rename = "OS-OAUTH1:access_token_id")]
    access_token_id: Option<String>,
    audit_id: Option<String>,
    audit_chain_id: Option<String>,
    issued_before: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

#[derive(Deserialize)]
struct EventsDoc {
    events: Vec<EventDoc>,
}

/// Why an events document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// Not the expected JSON.
    #[error("malformed revocation events: {0}")]
    Json(#[from] serde_json::Error),
    /// A timestamp could not be parsed.
    #[error("revocation event with an unparseable {0}")]
    Time(&'static str),
}

/// Parses a `GET /v3/OS-REVOKE/events` body.
pub fn parse_events(body: &[u8]) -> Result<Vec<Event>, EventsError> {
    let doc: EventsDoc = serde_json::from_slice(body)?;
    doc.events
        .into_iter()
        .map(|e| {
            let issued_before =
                parse_rfc3339(&e.issued_before).ok_or(EventsError::Time("issued_before"))?;
            let expires_at = match &e.expires_at {
                Some(s) => Some(parse_rfc3339(s).ok_or(EventsError::Time("expires_at"))?),
                None => None,
            };
            let revoked_at = match &e.revoked_at {
                Some(s) => parse_rfc3339(s).ok_or(EventsError::Time("revoked_at"))?,
                None => issued_before,
            };
            // Keystone's model: domain + expiry marks a domain-scoped-token event.
            let (domain_id, domain_scope_id) = match (e.domain_id, e.domain_scope_id, expires_at) {
                (Some(d), None, Some(_)) => (None, Some(d)),
                (d, s, _) => (d, s),
            };
            Ok(Event {
                user_id: e.user_id,
                project_id: e.project_id,
                domain_id,
                domain_scope_id,
                role_id: e.role_id,
                trust_id: e.trust_id,
                consumer_id: e.consumer_id,
                access_token_id: e.access_token_id,
                audit_id: e.audit_id,
                audit_chain_id: e.audit_chain_id,
                issued_before,
                expires_at,
                revoked_at,
            })
        })
        .collect()
}

/// A token value that may be unknown to a local validator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known<T> {
    /// Known (possibly absent).
    Is(T),
    /// Not known here: an event constraining it matches (fail closed).
    Unknown,
}

/// What a token contributes to matching (Keystone's `build_token_values`).
#[derive(Debug, Clone)]
pub struct TokenValues<'a> {
    /// The token's user.
    pub user_id: Option<&'a str>,
    /// Trustor (trust tokens).
    pub trustor_id: Option<&'a str>,
    /// Trustee (trust tokens).
    pub trustee_id: Option<&'a str>,
    /// The user's domain.
    pub identity_domain_id: Known<Option<&'a str>>,
    /// Project scope.
    pub project_id: Option<&'a str>,
    /// Domain scope (null for project-scoped tokens: a Keystone quirk).
    pub assignment_domain_id: Option<&'a str>,
    /// Trust id.
    pub trust_id: Option<&'a str>,
    /// OAuth1 consumer.
    pub consumer_id: Known<Option<&'a str>>,
    /// `audit_ids[0]`.
    pub audit_id: Option<&'a str>,
    /// `audit_ids[1]` (tokens obtained by re-scoping).
    pub parent_audit_id: Option<&'a str>,
    /// Effective role ids.
    pub roles: Known<&'a [std::sync::Arc<str>]>,
    /// Issue time, Unix seconds.
    pub issued_at: i64,
    /// Expiry, Unix seconds.
    pub expires_at: i64,
}

impl<'a> TokenValues<'a> {
    /// Values of a token validated online (roles and user domain known).
    pub fn from_identity(id: &'a Identity) -> Self {
        use crate::identity::Scope;
        let (project_id, assignment_domain_id) = match &id.scope {
            Scope::Project(p) => (p.project.id.as_deref(), None),
            Scope::Domain(d) => (None, d.id.as_deref()),
            Scope::System | Scope::Unscoped => (None, None),
        };
        Self {
            user_id: id.user.id.as_deref(),
            trustor_id: id.trust_users().map(|t| t.0),
            trustee_id: id.trust_users().map(|t| t.1),
            identity_domain_id: Known::Is(id.user_domain.id.as_deref()),
            project_id,
            assignment_domain_id,
            trust_id: id.trust_id(),
            consumer_id: if id.methods.iter().any(|m| &**m == "oauth1") {
                Known::Unknown
            } else {
                Known::Is(None)
            },
            audit_id: id.audit_ids.first(),
            parent_audit_id: id.audit_ids.get(1),
            roles: Known::Is(&id.role_ids),
            issued_at: id.issued_at,
            expires_at: id.expires_at,
        }
    }
}

fn eq(rule: &Option<String>, value: Option<&str>) -> bool {
    rule.as_deref().is_none_or(|r| Some(r) == value)
}

impl Event {
    /// Keystone's `matches`: rules 1–11 of the spec, all required.
    pub fn matches(&self, t: &TokenValues<'_>) -> bool {
        // 1. Issued at or before the event (same second is revoked).
        self.issued_before >= t.issued_at
            // 2. user, trustor or trustee.
            && self.user_id.as_deref().is_none_or(|u| {
                [t.user_id, t.trustor_id, t.trustee_id].contains(&Some(u))
            })
            // 3. project.
            && eq(&self.project_id, t.project_id)
            // 4. audit id.
            && eq(&self.audit_id, t.audit_id)
            // 5. trust.
            && eq(&self.trust_id, t.trust_id)
            // 6. user's domain or domain scope.
            && self.domain_id.as_deref().is_none_or(|d| {
                t.assignment_domain_id == Some(d)
                    || match t.identity_domain_id {
                        Known::Is(v) => v == Some(d),
                        Known::Unknown => true,
                    }
            })
            // 7. domain scope.
            && eq(&self.domain_scope_id, t.assignment_domain_id)
            // 8. exact expiry.
            && self.expires_at.is_none_or(|e| e == t.expires_at)
            // 9. OAuth1 consumer.
            && self.consumer_id.as_deref().is_none_or(|c| match t.consumer_id {
                Known::Is(v) => v == Some(c),
                Known::Unknown => true,
            })
            // 10. chain: the token's parent audit id.
            && eq(&self.audit_chain_id, t.parent_audit_id)
            // 11. role.
            && self.role_id.as_deref().is_none_or(|r| match t.roles {
                Known::Is(roles) => roles.iter().any(|x| **x == *r),
                Known::Unknown => true,
            })
    }
}

/// The field an event is indexed under (the most selective one it has):
/// the position of its map in [`List::index`].
#[derive(Debug, Clone, Copy)]
enum Field {
    Audit,
    Chain,
    User,
    Project,
    Trust,
}

/// The number of [`Field`]s: the length of [`List::index`].
const FIELDS: usize = Field::Trust as usize + 1;

impl Field {
    /// The field `e` is indexed under, and its value.
    fn of(e: &Event) -> Option<(Self, &str)> {
        [
            (Field::Audit, &e.audit_id),
            (Field::Chain, &e.audit_chain_id),
            (Field::User, &e.user_id),
            (Field::Project, &e.project_id),
            (Field::Trust, &e.trust_id),
        ]
        .into_iter()
        .find_map(|(f, v)| v.as_deref().map(|v| (f, v)))
    }
}

/// An immutable, indexed set of events.
#[derive(Debug, Default, Clone)]
pub struct List {
    events: Vec<Event>,
    /// Per [`Field`], the events indexed under each value of it: a token's
    /// values are looked up as they are (`&str`), with no key to build.
    index: [HashMap<String, Vec<usize>>; FIELDS],
    unindexed: Vec<usize>,
}

impl List {
    /// An indexed list of `events` (duplicates removed).
    pub fn new(mut events: Vec<Event>) -> Self {
        let mut seen = std::collections::HashSet::new();
        events.retain(|e| seen.insert(e.clone()));
        let mut index: [HashMap<String, Vec<usize>>; FIELDS] = Default::default();
        let mut unindexed = Vec::new();
        for (i, e) in events.iter().enumerate() {
            match Field::of(e) {
                Some((f, v)) => index[f as usize].entry(v.to_owned()).or_default().push(i),
                None => unindexed.push(i),
            }
        }
        Self {
            events,
            index,
            unindexed,
        }
    }

    /// This list plus `more`, de-duplicated by full content.
    pub fn merged(&self, more: Vec<Event>) -> Self {
        let mut all = self.events.clone();
        all.extend(more);
        Self::new(all)
    }

    /// Without events that can no longer match any acceptable token: those
    /// issued before `now - max_token_lifetime - allow_expired_window`.
    pub fn pruned(&self, now: i64, max_token_lifetime: i64, allow_expired_window: i64) -> Self {
        let cutoff = now - max_token_lifetime - allow_expired_window;
        Self::new(
            self.events
                .iter()
                .filter(|e| e.issued_before >= cutoff)
                .cloned()
                .collect(),
        )
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The newest `revoked_at`, for the next poll's `since`.
    pub fn newest(&self) -> Option<i64> {
        self.events.iter().map(|e| e.revoked_at).max()
    }

    /// Whether some event revokes the token: the unindexed events and those
    /// indexed under one of its values are matched against it (no
    /// allocation: it runs for every locally validated token).
    pub fn is_revoked(&self, t: &TokenValues<'_>) -> bool {
        let users = [t.user_id, t.trustor_id, t.trustee_id];
        let keys = [
            (Field::Audit, t.audit_id),
            (Field::Chain, t.parent_audit_id),
            (Field::Project, t.project_id),
            (Field::Trust, t.trust_id),
        ]
        .into_iter()
        .chain(users.into_iter().map(|u| (Field::User, u)));
        let indexed = keys
            .filter_map(|(f, v)| self.index[f as usize].get(v?))
            .flatten();
        self.unindexed
            .iter()
            .chain(indexed)
            .any(|&i| self.events.get(i).is_some_and(|e| e.matches(t)))
    }
}

#[cfg(test)]
mod tests;
