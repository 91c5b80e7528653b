//! Local validation of Fernet tokens with Keystone's key repository, and of
//! JWS tokens with Keystone's public keys (the two told apart by their
//! shape, see [`jws::looks_like_jws`]): decrypt or verify,
//! decode, check expiry — no network call — then attach the names and roles
//! learnt from one online validation of another token of the same user and
//! scope (enrichment), so a new token of a known user costs no Keystone call.
//!
//! Trust (v3) and OAuth1 (v7) tokens are always validated online when
//! enrichment is on: whether they are revoked depends on their trustor or
//! consumer, which the token does not carry.

pub(crate) mod jws_settings;
pub(crate) mod settings;

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant, SystemTime},
};

use crate::{
    identity::{
        self, intern, ApplicationCredential, AuditIds, Extras, Identity, Named, Names, Project,
        Scope,
    },
    revocation::{Known, TokenValues},
    token::{
        fernet::{self, FernetError},
        jws::{self, JwsError},
        jws_keys::{self, PublicKeyError, PublicKeys},
        keys::{KeyError, KeySet},
        payload::{self, Federation, Payload, PayloadError},
        Token, MAX_TOKEN_LEN,
    },
};

pub(crate) use settings::{Section, Settings};

/// Why a token was rejected locally (a metric label each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalRejection {
    /// Not a Fernet token of ours (bad encoding, MAC, or key rotated out).
    #[error("undecryptable: {0}")]
    Undecryptable(#[from] FernetError),
    /// Not a JWS token of ours (refused unparsed, or no public key verifies it).
    #[error("JWS: {0}")]
    Jws(#[from] JwsError),
    /// Decrypted but not a payload Keystone issues.
    #[error("malformed payload: {0}")]
    Malformed(#[from] PayloadError),
    /// Past its expiry.
    #[error("expired")]
    Expired,
    /// Matched by a revocation event.
    #[error("revoked")]
    Revoked,
    /// An application-credential token whose access rules cannot be known
    /// without Keystone (`enrich = false`).
    #[error("application credential rules unknown without enrichment")]
    RulesUnknown,
}

impl LocalRejection {
    /// True when no key stonegate holds opens (Fernet) or verifies (JWS) the
    /// token: it may be forged, or signed with a key that has reached
    /// Keystone but not yet this node. Such a refusal is not cached
    /// ([`crate::cache::Outcome::Unopened`]).
    pub fn keys_may_lag(&self) -> bool {
        matches!(
            self,
            LocalRejection::Undecryptable(FernetError::Signature)
                | LocalRejection::Jws(JwsError::Signature)
        )
    }

    /// Label for `stonegate_local_decisions_total{outcome}`.
    pub fn label(&self) -> &'static str {
        match self {
            LocalRejection::Undecryptable(_) => "undecryptable",
            // Refused before any signature work: shape, length, header.
            LocalRejection::Jws(JwsError::TooLong | JwsError::Format | JwsError::Header) => {
                "jws_malformed"
            }
            LocalRejection::Jws(JwsError::Algorithm(_)) => "jws_algorithm",
            LocalRejection::Jws(JwsError::Signature) => "jws_unverified",
            LocalRejection::Jws(JwsError::Claims(_)) => "malformed",
            LocalRejection::Malformed(_) => "malformed",
            LocalRejection::Expired => "expired",
            LocalRejection::Revoked => "revoked",
            LocalRejection::RulesUnknown => "rules_unknown",
        }
    }
}

/// A token decoded locally.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The payload.
    pub payload: Payload,
    /// The Fernet timestamp or the JWS `iat` (issued_at), Unix seconds.
    pub issued_at: i64,
    /// The key that opened it.
    pub key: KeyRef,
}

/// The key that opened a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A Fernet key's file number.
    Fernet(u64),
    /// A JWS public key's file name.
    Jws(Arc<str>),
}

impl Decoded {
    /// Revocation values from the token alone (roles and user domain unknown).
    pub fn token_values(&self) -> TokenValues<'_> {
        let p = &self.payload;
        let (project_id, assignment_domain_id) = match &p.scope {
            payload::Scope::Project(id) => (Some(id.as_str()), None),
            payload::Scope::Domain(id) => (None, Some(id.as_str())),
            payload::Scope::System(_) | payload::Scope::Unscoped => (None, None),
        };
        TokenValues {
            user_id: Some(&p.user_id),
            trustor_id: None,
            trustee_id: p.trust_id.as_ref().map(|_| p.user_id.as_str()),
            identity_domain_id: Known::Unknown,
            project_id,
            assignment_domain_id,
            trust_id: p.trust_id.as_deref(),
            consumer_id: if p.access_token_id.is_some() {
                Known::Unknown
            } else {
                Known::Is(None)
            },
            audit_id: p.audit_ids.first().map(String::as_str),
            parent_audit_id: p.audit_ids.get(1).map(String::as_str),
            roles: Known::Unknown,
            issued_at: self.issued_at,
            expires_at: p.expires_at,
        }
    }

    /// Whether only an online validation can decide this token (see module docs).
    pub fn needs_online(&self) -> bool {
        self.payload.trust_id.is_some() || self.payload.access_token_id.is_some()
    }
}

/// What makes two tokens share names and roles.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct EnrichKey {
    user_id: String,
    scope: payload::Scope,
    trust_id: Option<String>,
    app_cred_id: Option<String>,
    federation: Option<Federation>,
    access_token_id: Option<String>,
}

impl EnrichKey {
    /// The key of a decoded token.
    pub(crate) fn of(p: &Payload) -> Self {
        Self {
            user_id: p.user_id.clone(),
            scope: p.scope.clone(),
            trust_id: p.trust_id.clone(),
            app_cred_id: p.app_cred_id.clone(),
            federation: p.federation.clone(),
            access_token_id: p.access_token_id.clone(),
        }
    }
}

/// An [`EnrichKey`] borrowed from a decoded payload: the enrichment cache is
/// looked up, on every locally validated token, without copying the ids.
/// Its fields are the key's, in the key's order, each hashing as the
/// key's does (`&str` as `String`, `Option<&T>` as `Option<T>`).
#[derive(Hash)]
struct EnrichKeyRef<'a> {
    user_id: &'a str,
    scope: &'a payload::Scope,
    trust_id: Option<&'a str>,
    app_cred_id: Option<&'a str>,
    federation: Option<&'a Federation>,
    access_token_id: Option<&'a str>,
}

impl<'a> EnrichKeyRef<'a> {
    fn of(p: &'a Payload) -> Self {
        Self {
            user_id: &p.user_id,
            scope: &p.scope,
            trust_id: p.trust_id.as_deref(),
            app_cred_id: p.app_cred_id.as_deref(),
            federation: p.federation.as_ref(),
            access_token_id: p.access_token_id.as_deref(),
        }
    }
}

impl moka::Equivalent<EnrichKey> for EnrichKeyRef<'_> {
    fn equivalent(&self, k: &EnrichKey) -> bool {
        self.user_id == k.user_id
            && *self.scope == k.scope
            && self.trust_id == k.trust_id.as_deref()
            && self.app_cred_id == k.app_cred_id.as_deref()
            && self.federation == k.federation.as_ref()
            && self.access_token_id == k.access_token_id.as_deref()
    }
}

/// A key repository format a [`KeyStore`] reloads.
pub trait Repository: Sized {
    /// Why it could not be loaded.
    type Error: std::fmt::Display;
    /// What it is, for logs.
    const WHAT: &'static str;
    /// Loads the directory.
    fn load(dir: &Path) -> Result<Self, Self::Error>;
    /// Whether a file of the directory is read as a key.
    fn is_key_file(name: &str) -> bool;
    /// The keys' names, in trial order.
    fn names(&self) -> Vec<String>;
    /// Number of keys.
    fn len(&self) -> usize;
}

impl Repository for KeySet {
    type Error = KeyError;
    const WHAT: &'static str = "Fernet key repository";
    fn load(dir: &Path) -> Result<Self, KeyError> {
        KeySet::load(dir)
    }
    fn is_key_file(name: &str) -> bool {
        name.parse::<u64>().is_ok()
    }
    fn names(&self) -> Vec<String> {
        self.ids().iter().map(u64::to_string).collect()
    }
    fn len(&self) -> usize {
        self.keys().len()
    }
}

impl Repository for PublicKeys {
    type Error = PublicKeyError;
    const WHAT: &'static str = "JWS public key repository";
    fn load(dir: &Path) -> Result<Self, PublicKeyError> {
        PublicKeys::load(dir)
    }
    fn is_key_file(name: &str) -> bool {
        jws_keys::is_key_file(name)
    }
    fn names(&self) -> Vec<String> {
        PublicKeys::names(self)
    }
    fn len(&self) -> usize {
        self.keys().len()
    }
}

/// A key repository, reloaded when it changes.
#[derive(Debug)]
pub struct KeyStore<R = KeySet> {
    dir: PathBuf,
    current: RwLock<Arc<R>>,
    signature: Mutex<Vec<(String, u64, Option<SystemTime>)>>,
    last_forced: Mutex<Option<Instant>>,
    /// Set to the number of keys loaded, on every load ([`KeyStore::report_to`]).
    loaded: std::sync::OnceLock<prometheus::IntGauge>,
}

impl<R: Repository> KeyStore<R> {
    /// Loads `dir` (an error if it is missing, empty, or holds a bad key).
    pub fn open(dir: PathBuf) -> Result<Self, R::Error> {
        let set = R::load(&dir)?;
        let signature = dir_signature::<R>(&dir);
        Ok(Self {
            dir,
            current: RwLock::new(Arc::new(set)),
            signature: Mutex::new(signature),
            last_forced: Mutex::new(None),
            loaded: std::sync::OnceLock::new(),
        })
    }

    /// Keeps `gauge` at the number of keys in use: set now, and again by
    /// every reload (the periodic check's, and the one a token no key
    /// opens triggers).
    pub fn report_to(&self, gauge: prometheus::IntGauge) {
        gauge.set(gauge_value(self.current().len()));
        let _ = self.loaded.set(gauge);
    }

    /// The keys in use.
    pub fn current(&self) -> Arc<R> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads the repository if its listing changed (or `force`). A bad
    /// repository keeps the last good keys and returns the error.
    pub fn refresh(&self, force: bool) -> Result<bool, R::Error> {
        let sig = dir_signature::<R>(&self.dir);
        let changed = self.signature.lock().map_or(true, |g| *g != sig);
        if !changed && !force {
            return Ok(false);
        }
        // On error the signature is not recorded, so the next check retries.
        let set = R::load(&self.dir)?;
        let ids = set.names();
        if let Some(g) = self.loaded.get() {
            g.set(gauge_value(set.len()));
        }
        if let Ok(mut g) = self.current.write() {
            *g = Arc::new(set);
        }
        if let Ok(mut g) = self.signature.lock() {
            *g = sig;
        }
        tracing::info!(keys = ?ids, "{} reloaded", R::WHAT);
        Ok(true)
    }

    /// After a token no key of `tried` (the keys it was tried with) opens:
    /// the keys to try it with again, or `None` when there are none newer.
    /// Newer keys are those another request's reload put in place meanwhile,
    /// or else those this one loads: at most once every 2 seconds (a key
    /// may reach Keystone seconds before it reaches us). The lock is held
    /// through a reload, so concurrent misses wait for its keys rather than
    /// being refused with the keys before it.
    fn keys_after_miss(&self, tried: &Arc<R>) -> Option<Arc<R>> {
        let Ok(mut last) = self.last_forced.lock() else {
            return None;
        };
        let current = self.current();
        if !Arc::ptr_eq(&current, tried) {
            return Some(current);
        }
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(2)) {
            return None;
        }
        *last = Some(Instant::now());
        match self.refresh(false) {
            Ok(true) => Some(self.current()),
            _ => None,
        }
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Names, sizes and modification times of the key files of `dir`.
fn dir_signature<R: Repository>(dir: &Path) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut sig: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            R::is_key_file(&name).then_some(())?;
            let meta = std::fs::metadata(e.path()).ok()?;
            Some((name, meta.len(), meta.modified().ok()))
        })
        .collect();
    sig.sort();
    sig
}

/// Why local validation could not start: a repository does not load.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The Fernet key repository.
    #[error(transparent)]
    Fernet(#[from] KeyError),
    /// The JWS public key repository.
    #[error(transparent)]
    Jws(#[from] PublicKeyError),
}

/// Local validation: keys, method order, enrichment cache.
#[derive(Debug)]
pub struct Local {
    /// The Fernet key repository (`[fernet]`).
    pub keys: Option<KeyStore>,
    /// The JWS public key repository (`[jws]`).
    pub public_keys: Option<KeyStore<PublicKeys>>,
    settings: Settings,
    enrichment: moka::future::Cache<EnrichKey, Arc<Identity>>,
}

impl Local {
    /// Opens the repositories of `settings`.
    pub fn new(settings: Settings) -> Result<Self, OpenError> {
        Ok(Self {
            keys: match &settings.key_repository {
                Some(dir) => Some(KeyStore::open(dir.clone())?),
                None => None,
            },
            public_keys: match &settings.public_key_repository {
                Some(dir) => Some(KeyStore::open(dir.clone())?),
                None => None,
            },
            enrichment: moka::future::Cache::builder()
                .max_capacity(200_000)
                .time_to_live(settings.enrichment_cache_time)
                .build(),
            settings,
        })
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Decrypts (Fernet) or verifies (JWS) and decodes `token`, and checks
    /// its expiry at `now` (`allow_expired_window` seconds more when
    /// `allow_expired`). A JWS-shaped token goes to the public keys when
    /// `[jws]` is on, every other token to the Fernet keys; a token of a
    /// format not configured is refused.
    pub fn decode(
        &self,
        token: &Token,
        now: i64,
        allow_expired: Option<i64>,
    ) -> Result<Decoded, LocalRejection> {
        let text = token.expose();
        let (payload, issued_at, key) = match (&self.public_keys, &self.keys) {
            (Some(store), _) if jws::looks_like_jws(text) => {
                let tried = store.current();
                let v = match jws::verify(text, &tried, MAX_TOKEN_LEN) {
                    Err(JwsError::Signature) => match store.keys_after_miss(&tried) {
                        Some(newer) => jws::verify(text, &newer, MAX_TOKEN_LEN)?,
                        None => return Err(JwsError::Signature.into()),
                    },
                    other => other?,
                };
                (v.payload, v.issued_at, KeyRef::Jws(v.key))
            }
            (_, Some(keys)) => {
                let tried = keys.current();
                let d = match fernet::decrypt(text, &tried, MAX_TOKEN_LEN) {
                    Err(FernetError::Signature) => match keys.keys_after_miss(&tried) {
                        Some(newer) => fernet::decrypt(text, &newer, MAX_TOKEN_LEN)?,
                        None => return Err(FernetError::Signature.into()),
                    },
                    other => other?,
                };
                let payload = payload::decode(&d.plaintext, &self.settings.methods)?;
                let issued_at = i64::try_from(d.timestamp).unwrap_or(i64::MAX);
                (payload, issued_at, KeyRef::Fernet(d.key_id))
            }
            (_, None) => return Err(LocalRejection::Jws(JwsError::Format)),
        };
        let leeway = self.settings.clock_skew + allow_expired.unwrap_or(0);
        if payload.is_expired(now, leeway) {
            return Err(LocalRejection::Expired);
        }
        Ok(Decoded {
            payload,
            issued_at,
            key,
        })
    }

    /// Names and roles learnt for this token's user and scope, if fresh.
    pub async fn enrichment(&self, d: &Decoded) -> Option<Arc<Identity>> {
        self.enrichment.get(&EnrichKeyRef::of(&d.payload)).await
    }

    /// Remembers what Keystone said about a token of this user and scope.
    pub async fn learn(&self, d: &Decoded, identity: Arc<Identity>) {
        if !d.needs_online() {
            self.enrichment
                .insert(EnrichKey::of(&d.payload), identity)
                .await;
        }
    }

    /// Number of enrichment entries.
    pub fn enrichment_entries(&self) -> u64 {
        self.enrichment.entry_count()
    }
}

/// The identity of `d`: the enrichment `template` with this token's own
/// times, audit ids, methods and certificate binding, or (without one) only
/// what the token proves. A certificate-bound token (Fernet payload v10,
/// JWS `openstack_thumbprint`) carries its thumbprint, checked against the
/// request's certificate as an online validation's is.
pub(crate) fn identity(
    d: &Decoded,
    template: Option<&Identity>,
) -> Result<Identity, LocalRejection> {
    let p = &d.payload;
    if let Some(t) = template {
        let mut id = t.clone();
        id.expires_at = p.expires_at;
        id.issued_at = d.issued_at;
        id.audit_ids = AuditIds::new(&p.audit_ids);
        id.methods = intern::list(&p.methods);
        // The token's own binding, never the template's: a template learnt
        // from an ordinary token of the same user must not unbind it.
        let mut extras = id.extras.take().map(|e| *e).unwrap_or_default();
        extras.cert_thumbprint = p.thumbprint.as_deref().map(Box::from);
        // The token's own groups (the enrichment key holds them too).
        extras.federation = federation(p);
        id.extras = extras.boxed();
        return Ok(id);
    }
    if p.app_cred_id.is_some() {
        return Err(LocalRejection::RulesUnknown);
    }
    let scope = match &p.scope {
        payload::Scope::Unscoped => Scope::Unscoped,
        payload::Scope::Project(id) => Scope::Project(Arc::new(Project {
            project: Named::pooled(Some(id), None),
            domain: Named::default(),
        })),
        payload::Scope::Domain(id) => Scope::Domain(Named::pooled(Some(id), None)),
        payload::Scope::System(_) => Scope::System,
    };
    Ok(Identity {
        user: Named {
            id: Some(Arc::from(p.user_id.as_str())),
            name: None,
        },
        user_domain: Named::default(),
        scope,
        roles: Names::default(),
        role_ids: Names::default(),
        is_admin_project: true,
        expires_at: p.expires_at,
        issued_at: d.issued_at,
        audit_ids: AuditIds::new(&p.audit_ids),
        methods: intern::list(&p.methods),
        extras: Extras {
            application_credential: p.app_cred_id.clone().map(|id| ApplicationCredential {
                id,
                access_rules: None,
            }),
            trust_id: p.trust_id.as_deref().map(Arc::from),
            trust_users: None,
            cert_thumbprint: p.thumbprint.as_deref().map(Box::from),
            federation: federation(p),
        }
        .boxed(),
        catalog: None,
        rendered: Default::default(),
    })
}

/// The federation facts a federated payload (v4–v6) carries.
fn federation(p: &Payload) -> Option<identity::Federation> {
    p.federation.as_ref().map(|f| identity::Federation {
        group_ids: intern::list(&f.group_ids),
        identity_provider: Arc::from(f.idp_id.as_str()),
        protocol: Arc::from(f.protocol_id.as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn key(b: u8) -> String {
        base64::engine::general_purpose::URL_SAFE.encode([b; 32])
    }

    /// Payloads that differ in one field of the enrichment key each.
    fn payloads() -> Vec<Payload> {
        let base = Payload {
            version: 2,
            user_id: "u1".into(),
            methods: vec!["password".into()],
            scope: payload::Scope::Project("p1".into()),
            trust_id: None,
            app_cred_id: None,
            federation: None,
            access_token_id: None,
            thumbprint: None,
            expires_at: 0,
            audit_ids: vec![],
        };
        let with = |f: &dyn Fn(&mut Payload)| {
            let mut p = base.clone();
            f(&mut p);
            p
        };
        vec![
            base.clone(),
            with(&|p| p.user_id = "u2".into()),
            with(&|p| p.scope = payload::Scope::Domain("p1".into())),
            with(&|p| p.scope = payload::Scope::Unscoped),
            with(&|p| p.trust_id = Some("t".into())),
            with(&|p| p.app_cred_id = Some("t".into())),
            with(&|p| p.access_token_id = Some("t".into())),
            with(&|p| {
                p.federation = Some(Federation {
                    group_ids: vec!["g".into()],
                    idp_id: "i".into(),
                    protocol_id: "o".into(),
                })
            }),
        ]
    }

    #[tokio::test]
    async fn the_borrowed_enrichment_key_finds_its_own_entry_and_no_other() {
        let cache: moka::future::Cache<EnrichKey, usize> = moka::future::Cache::new(100);
        let all = payloads();
        for (i, p) in all.iter().enumerate() {
            cache.insert(EnrichKey::of(p), i).await;
        }
        for (i, p) in all.iter().enumerate() {
            assert_eq!(
                cache.get(&EnrichKeyRef::of(p)).await,
                Some(i),
                "payload {i}"
            );
        }
        let mut other = all[0].clone();
        other.user_id = "u3".into();
        assert_eq!(cache.get(&EnrichKeyRef::of(&other)).await, None);
        // What is not part of the key does not change it.
        other = all[0].clone();
        other.audit_ids = vec!["a".into()];
        other.expires_at = 1;
        assert_eq!(cache.get(&EnrichKeyRef::of(&other)).await, Some(0));
    }

    #[test]
    fn rotations_are_picked_up_and_a_bad_repository_keeps_the_last_good_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0"), key(0)).unwrap();
        std::fs::write(dir.path().join("1"), key(1)).unwrap();
        let store: KeyStore = KeyStore::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(store.current().ids(), vec![1, 0]);
        assert!(!store.refresh(false).unwrap(), "nothing changed");

        // keystone-manage fernet_rotate: 0 -> 2, new 0.
        std::fs::rename(dir.path().join("0"), dir.path().join("2")).unwrap();
        std::fs::write(dir.path().join("0"), key(3)).unwrap();
        assert!(store.refresh(false).unwrap());
        assert_eq!(store.current().ids(), vec![2, 1, 0]);

        // A malformed key on reload: an error, and the last good keys stay.
        std::fs::write(dir.path().join("5"), "garbage").unwrap();
        assert!(store.refresh(false).is_err());
        assert_eq!(store.current().ids(), vec![2, 1, 0]);
        assert!(store.refresh(false).is_err(), "a failed reload is retried");
        // An emptied repository: likewise.
        for f in ["0", "1", "2", "5"] {
            std::fs::remove_file(dir.path().join(f)).unwrap();
        }
        assert!(store.refresh(false).is_err());
        assert_eq!(store.current().ids(), vec![2, 1, 0]);
    }

    /// Two requests carry tokens of a key the store has not loaded yet. The
    /// first one's miss reloads; the second decrypted with the keys before
    /// that reload and must be given the newer keys, not refused because a
    /// reload happened less than 2 s ago. With nothing newer to load, a
    /// miss within 2 s of the last reload reads nothing from the disk.
    #[test]
    fn a_miss_gets_the_keys_another_requests_reload_loaded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("0"), key(0)).unwrap();
        std::fs::write(dir.path().join("1"), key(1)).unwrap();
        let store: KeyStore = KeyStore::open(dir.path().to_path_buf()).unwrap();
        let before = store.current();
        // A rotation stonegate has not seen (the primary is a new key).
        std::fs::write(dir.path().join("2"), key(2)).unwrap();

        let first = store
            .keys_after_miss(&before)
            .expect("the first miss reloads");
        assert_eq!(first.ids(), vec![2, 1, 0]);
        let second = store
            .keys_after_miss(&before)
            .expect("a concurrent miss gets the reloaded keys");
        assert!(Arc::ptr_eq(&first, &second));

        // Nothing newer: within 2 s of the last reload, no second one.
        std::fs::write(dir.path().join("3"), key(3)).unwrap();
        assert!(store.keys_after_miss(&second).is_none());
        assert_eq!(store.current().ids(), vec![2, 1, 0]);
    }

    fn public_pem(b: u8) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        p256::ecdsa::SigningKey::from_bytes(&[b; 32].into())
            .unwrap()
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap()
    }

    #[test]
    fn public_key_rotations_are_picked_up_and_a_bad_repository_keeps_the_last_good_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("public.pem"), public_pem(1)).unwrap();
        let store: KeyStore<PublicKeys> = KeyStore::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(store.current().names(), vec!["public.pem"]);
        assert!(!store.refresh(false).unwrap(), "nothing changed");
        // An editor's swap file is not part of the repository.
        std::fs::write(dir.path().join(".public.pem.swp"), "x").unwrap();
        assert!(!store.refresh(false).unwrap());

        // Rotation: the new key published beside the old one.
        std::fs::write(dir.path().join("next.pem"), public_pem(2)).unwrap();
        assert!(store.refresh(false).unwrap());
        assert_eq!(store.current().names(), vec!["next.pem", "public.pem"]);

        // A file that is no key: an error, and the last good keys stay.
        std::fs::write(dir.path().join("public.pem"), "garbage").unwrap();
        assert!(store.refresh(false).is_err());
        assert_eq!(store.current().names(), vec!["next.pem", "public.pem"]);
        // The old key retired: picked up once the repository is good again.
        std::fs::remove_file(dir.path().join("public.pem")).unwrap();
        assert!(store.refresh(false).unwrap());
        assert_eq!(store.current().names(), vec!["next.pem"]);
        // Emptied: kept.
        std::fs::remove_file(dir.path().join("next.pem")).unwrap();
        assert!(store.refresh(false).is_err());
        assert_eq!(store.current().names(), vec!["next.pem"]);
    }
}
