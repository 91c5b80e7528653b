//! Keystone's msgpack token payloads, versions 0–10 (`token_formatters.py`):
//! ids as `[is_uuid_bytes, value]` tuples, the methods bitmask, float expiry,
//! audit ids as raw bytes. Unknown versions and malformed payloads are errors,
//! never panics. bin and str are accepted interchangeably (tokens minted with
//! msgpack < 1.0 carry every byte string as str/raw).

use base64::Engine as _;
use rmpv::Value;

/// Why a payload could not be decoded. Every variant means "invalid token".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not a msgpack array with a version number.
    #[error("payload is not a versioned msgpack array")]
    Envelope,
    /// A version Keystone does not issue.
    #[error("unknown payload version {0}")]
    UnknownVersion(u64),
    /// The version's array has the wrong length.
    #[error("payload version {version}: {len} fields, want {want}")]
    Length {
        /// Payload version.
        version: u8,
        /// Fields found (including the version).
        len: usize,
        /// Fields expected.
        want: usize,
    },
    /// A field has the wrong type or value.
    #[error("payload field {0} is malformed")]
    Field(&'static str),
}

/// The authentication methods bitmask, in the deployment's `[auth] methods` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Methods(Vec<String>);

impl Default for Methods {
    /// Keystone 30.0.0's default `[auth] methods`.
    fn default() -> Self {
        Self::new(
            [
                "external",
                "password",
                "token",
                "oauth1",
                "mapped",
                "application_credential",
                "ec2credential",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        )
    }
}

impl Methods {
    /// A method order (first = bit 1, second = bit 2, ...).
    pub fn new(order: Vec<String>) -> Self {
        Self(order)
    }

    /// Method names of `n`, highest bit first, exactly as Keystone's
    /// `convert_integer_to_method_list`: an unknown high bit yields `[]`.
    pub fn decode(&self, n: u64) -> Vec<String> {
        if n == 0 || self.0.is_empty() || self.0.len() > 63 {
            return Vec::new();
        }
        let highest = 1u64 << (self.0.len() - 1);
        if n >= highest.saturating_mul(2) {
            return Vec::new();
        }
        (0..self.0.len())
            .rev()
            .filter(|i| n & (1u64 << i) != 0)
            .map(|i| self.0[i].clone())
            .collect()
    }
}

/// What a token is scoped to, as far as the payload says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// No scope.
    Unscoped,
    /// A project id.
    Project(String),
    /// A domain id.
    Domain(String),
    /// System scope (`"all"`).
    System(String),
}

/// Federation facts (payload versions 4–6).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Federation {
    /// Group ids the mapping produced.
    pub group_ids: Vec<String>,
    /// Identity provider id.
    pub idp_id: String,
    /// Protocol id.
    pub protocol_id: String,
}

/// A decoded payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Payload version (0–10). A JWS token has none: its claims get the
    /// version Keystone's Fernet formatter gives a token of the same kind.
    pub version: u8,
    /// User id (the trustee for trust tokens).
    pub user_id: String,
    /// Authentication methods.
    pub methods: Vec<String>,
    /// Scope.
    pub scope: Scope,
    /// Trust id (v3).
    pub trust_id: Option<String>,
    /// Application credential id (v9).
    pub app_cred_id: Option<String>,
    /// Federation (v4–v6).
    pub federation: Option<Federation>,
    /// OAuth 1.0a access token id (v7).
    pub access_token_id: Option<String>,
    /// OAuth 2.0 mTLS thumbprint (v10).
    pub thumbprint: Option<String>,
    /// Expiry, Unix seconds (Keystone renders whole seconds).
    pub expires_at: i64,
    /// Audit ids (own, then chain).
    pub audit_ids: Vec<String>,
}

impl Payload {
    /// True when expired at `now` allowing `leeway` seconds of clock skew.
    /// At exactly `expires_at` a token is expired, as in Keystone.
    pub fn is_expired(&self, now: i64, leeway: i64) -> bool {
        now >= self.expires_at.saturating_add(leeway)
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::Binary(b) => Some(b),
        Value::String(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn text(v: &Value, field: &'static str) -> Result<String, PayloadError> {
    bytes(v)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
        .ok_or(PayloadError::Field(field))
}

/// A UUID's 32 lowercase hex digits, written into one buffer (`hex::encode`
/// collects them a `char` at a time: 800 instructions a UUID, two or more
/// per locally validated token).
fn hex_of(uuid: &[u8; 16]) -> String {
    let mut out = [0u8; 32];
    if hex::encode_to_slice(uuid, &mut out).is_err() {
        unreachable!("32 bytes hold 16 bytes' hex");
    }
    match std::str::from_utf8(&out) {
        Ok(hex) => hex.to_owned(),
        Err(_) => unreachable!("hex digits are ASCII"),
    }
}

fn uuid_hex(b: &[u8], field: &'static str) -> Result<String, PayloadError> {
    match <&[u8; 16]>::try_from(b) {
        Ok(uuid) => Ok(hex_of(uuid)),
        Err(_) => Err(PayloadError::Field(field)),
    }
}

/// An ID tuple `[is_bytes, value]`; `Ok(None)` for `[false, nil]`.
fn id(v: &Value, field: &'static str) -> Result<Option<String>, PayloadError> {
    let Value::Array(pair) = v else {
        return Err(PayloadError::Field(field));
    };
    match pair.as_slice() {
        [Value::Boolean(true), value] => {
            uuid_hex(bytes(value).ok_or(PayloadError::Field(field))?, field).map(Some)
        }
        [Value::Boolean(false), Value::Nil] => Ok(None),
        [Value::Boolean(false), value] => text(value, field).map(Some),
        _ => Err(PayloadError::Field(field)),
    }
}

fn required_id(v: &Value, field: &'static str) -> Result<String, PayloadError> {
    id(v, field)?.ok_or(PayloadError::Field(field))
}

/// v1's domain id: 16 bytes (UUID) or the default domain's id as text.
fn raw_domain(v: &Value) -> Result<String, PayloadError> {
    match v {
        Value::Binary(b) if b.len() == 16 => uuid_hex(b, "domain_id"),
        Value::Binary(_) | Value::String(_) => text(v, "domain_id"),
        _ => Err(PayloadError::Field("domain_id")),
    }
}

fn raw_uuid(v: &Value, field: &'static str) -> Result<String, PayloadError> {
    uuid_hex(bytes(v).ok_or(PayloadError::Field(field))?, field)
}

fn methods(v: &Value, m: &Methods) -> Result<Vec<String>, PayloadError> {
    v.as_u64()
        .map(|n| m.decode(n))
        .ok_or(PayloadError::Field("methods"))
}

fn expires(v: &Value) -> Result<i64, PayloadError> {
    let f = match v {
        Value::F64(f) => *f,
        Value::F32(f) => f64::from(*f),
        Value::Integer(i) => i.as_f64().ok_or(PayloadError::Field("expires_at"))?,
        _ => return Err(PayloadError::Field("expires_at")),
    };
    if !f.is_finite() || !(0.0..=1.0e12).contains(&f) {
        return Err(PayloadError::Field("expires_at"));
    }
    // Keystone drops the microseconds when rendering.
    Ok(f.floor() as i64)
}

fn audit_ids(v: &Value) -> Result<Vec<String>, PayloadError> {
    let Value::Array(items) = v else {
        return Err(PayloadError::Field("audit_ids"));
    };
    items
        .iter()
        .map(|i| {
            bytes(i)
                .map(|b| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
                .ok_or(PayloadError::Field("audit_ids"))
        })
        .collect()
}

fn groups(v: &Value) -> Result<Vec<String>, PayloadError> {
    let Value::Array(items) = v else {
        return Err(PayloadError::Field("group_ids"));
    };
    items.iter().map(|g| required_id(g, "group_ids")).collect()
}

/// Decodes a msgpack payload with the deployment's method order.
pub fn decode(plaintext: &[u8], m: &Methods) -> Result<Payload, PayloadError> {
    let mut cursor = plaintext;
    let value = rmpv::decode::read_value(&mut cursor).map_err(|_| PayloadError::Envelope)?;
    if !cursor.is_empty() {
        return Err(PayloadError::Envelope);
    }
    let Value::Array(f) = value else {
        return Err(PayloadError::Envelope);
    };
    let version = f
        .first()
        .and_then(Value::as_u64)
        .ok_or(PayloadError::Envelope)?;
    let want = match version {
        0 => 5,
        1 | 2 | 8 => 6,
        3 | 7 | 9 => 7,
        4 | 10 => 8,
        5 | 6 => 9,
        v => return Err(PayloadError::UnknownVersion(v)),
    };
    let version = version as u8;
    if f.len() != want {
        return Err(PayloadError::Length {
            version,
            len: f.len(),
            want,
        });
    }
    let mut p = Payload {
        version,
        user_id: required_id(&f[1], "user_id")?,
        methods: methods(&f[2], m)?,
        scope: Scope::Unscoped,
        trust_id: None,
        app_cred_id: None,
        federation: None,
        access_token_id: None,
        thumbprint: None,
        expires_at: 0,
        audit_ids: Vec::new(),
    };
    let federation = |g: &Value, idp: &Value, proto: &Value| -> Result<Federation, PayloadError> {
        Ok(Federation {
            group_ids: groups(g)?,
            idp_id: required_id(idp, "idp_id")?,
            protocol_id: text(proto, "protocol_id")?,
        })
    };
    let (exp, audit) = match version {
        0 => (3, 4),
        1 => {
            p.scope = Scope::Domain(raw_domain(&f[3])?);
            (4, 5)
        }
        2 => {
            p.scope = Scope::Project(required_id(&f[3], "project_id")?);
            (4, 5)
        }
        3 => {
            p.scope = Scope::Project(required_id(&f[3], "project_id")?);
            p.trust_id = Some(raw_uuid(&f[6], "trust_id")?);
            (4, 5)
        }
        4 => {
            p.federation = Some(federation(&f[3], &f[4], &f[5])?);
            (6, 7)
        }
        5 => {
            p.scope = Scope::Project(required_id(&f[3], "project_id")?);
            p.federation = Some(federation(&f[4], &f[5], &f[6])?);
            (7, 8)
        }
        6 => {
            p.scope = Scope::Domain(required_id(&f[3], "domain_id")?);
            p.federation = Some(federation(&f[4], &f[5], &f[6])?);
            (7, 8)
        }
        7 => {
            p.scope = Scope::Project(required_id(&f[3], "project_id")?);
            p.access_token_id = Some(required_id(&f[4], "access_token_id")?);
            (5, 6)
        }
        8 => {
            p.scope = Scope::System(text(&f[3], "system")?);
            (4, 5)
        }
        9 => {
            p.scope = Scope::Project(required_id(&f[3], "project_id")?);
            p.app_cred_id = Some(required_id(&f[6], "app_cred_id")?);
            (4, 5)
        }
        _ => {
            // 10: OAuth 2.0 mTLS; project, or in principle a domain.
            p.scope = match (id(&f[3], "project_id")?, id(&f[4], "domain_id")?) {
                (Some(project), _) => Scope::Project(project),
                (None, Some(domain)) => Scope::Domain(domain),
                (None, None) => Scope::Unscoped,
            };
            p.thumbprint = Some(required_id(&f[7], "thumbprint")?);
            (5, 6)
        }
    };
    p.expires_at = expires(&f[exp])?;
    p.audit_ids = audit_ids(&f[audit])?;
    if p.audit_ids.is_empty() {
        return Err(PayloadError::Field("audit_ids"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{fernet, keys::Key, keys::KeySet};

    fn spec_keys() -> KeySet {
        KeySet::from_keys(vec![Key::parse(
            1,
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        )
        .unwrap()])
        .unwrap()
    }

    const PROJECT: &str = "gAAAAABpVarwAAECAwQFBgcICQoLDA0OD1NPl6i7w4v67dC2qdMLP8tUIhIwZYSJW3B1_x1ToyTj3-UMyw_PbZRD19hoIwdxQtRulMDGWoqDNCa3b8kAhq9cYI7cAEcfizicEX3-jHua4tQ4Jy-pgxswWmflhose9esmaun0U4eP56eHk7Ux3Pw";
    const DOMAIN: &str = "gAAAAABpVarwAAECAwQFBgcICQoLDA0OD7eleOSoddeMmDBWE9AYwYhhto-Nr2ffonHIJoY9r9zIKMZJxF7FrEiMzZF0uVQJXrIA04Y4DbhcLjVnXkQECIaZLLHYyHOuxMH0_GTZ4_Szm3r9KLJArIDCiir0BZPSUg";

    #[test]
    fn spec_vectors_decode_field_by_field() {
        let keys = spec_keys();
        let d = fernet::decrypt(PROJECT, &keys, 8192).unwrap();
        let p = decode(&d.plaintext, &Methods::default()).unwrap();
        assert_eq!(p.version, 2);
        assert_eq!(p.user_id, "a3872973cf31403a93a4b3fbed6b78b1");
        assert_eq!(p.methods, vec!["password"]);
        assert_eq!(
            p.scope,
            Scope::Project("0f92ff022b0f4960b6bf6edfb628994e".into())
        );
        assert_eq!(p.expires_at, 1767225600);
        assert_eq!(p.audit_ids, vec!["coroHDpVTW2i2HqpWe-zrg"]);
        assert!(!p.is_expired(1767225599, 0));
        assert!(p.is_expired(1767225600, 0));
        assert!(!p.is_expired(1767225600, 5));

        let d = fernet::decrypt(DOMAIN, &keys, 8192).unwrap();
        let p = decode(&d.plaintext, &Methods::default()).unwrap();
        assert_eq!((p.version, p.scope), (1, Scope::Domain("default".into())));
    }

    #[test]
    fn methods_follow_keystones_algorithm() {
        let m = Methods::default();
        assert!(m.decode(0).is_empty());
        assert_eq!(m.decode(6), vec!["token", "password"]);
        assert_eq!(m.decode(32), vec!["application_credential"]);
        assert!(m.decode(128).is_empty());
        assert!(m.decode(129).is_empty());
        let custom = Methods::new(vec!["password".into(), "token".into(), "openid".into()]);
        assert_eq!(custom.decode(1), vec!["password"]);
    }

    fn pack(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, v).unwrap();
        out
    }

    fn uuid_id(b: u8) -> Value {
        Value::Array(vec![Value::Boolean(true), Value::Binary(vec![b; 16])])
    }

    #[test]
    fn unknown_versions_and_bad_shapes_are_errors() {
        let m = Methods::default();
        for v in [11u64, 12, 255, 1 << 40] {
            let p = pack(&Value::Array(vec![Value::from(v), uuid_id(1)]));
            assert_eq!(decode(&p, &m).unwrap_err(), PayloadError::UnknownVersion(v));
        }
        let short = pack(&Value::Array(vec![
            Value::from(2),
            uuid_id(1),
            Value::from(2),
        ]));
        assert!(matches!(
            decode(&short, &m),
            Err(PayloadError::Length { .. })
        ));
        let not_array = pack(&Value::from("hello"));
        assert_eq!(decode(&not_array, &m).unwrap_err(), PayloadError::Envelope);
        assert!(decode(&[], &m).is_err());
        assert!(decode(&[0xc1], &m).is_err());
    }

    #[test]
    fn trust_and_federated_payloads_decode() {
        let m = Methods::default();
        let audit = Value::Array(vec![Value::Binary(vec![0; 16])]);
        let trust = pack(&Value::Array(vec![
            Value::from(3),
            uuid_id(1),
            Value::from(2),
            uuid_id(2),
            Value::F64(2.0e9),
            audit.clone(),
            Value::Binary(vec![3; 16]),
        ]));
        let p = decode(&trust, &m).unwrap();
        assert_eq!(p.trust_id.unwrap(), "03".repeat(16));
        let fed = pack(&Value::Array(vec![
            Value::from(4),
            Value::Array(vec![Value::Boolean(false), Value::from("fed-user")]),
            Value::from(16),
            Value::Array(vec![uuid_id(5)]),
            Value::Array(vec![Value::Boolean(false), Value::from("myidp")]),
            Value::from("openid"),
            Value::F64(2.0e9),
            audit,
        ]));
        let p = decode(&fed, &m).unwrap();
        assert_eq!(p.user_id, "fed-user");
        assert_eq!(p.methods, vec!["mapped"]);
        let f = p.federation.unwrap();
        assert_eq!(
            (f.idp_id.as_str(), f.protocol_id.as_str()),
            ("myidp", "openid")
        );
        assert_eq!(f.group_ids, vec!["05".repeat(16)]);
    }

    #[test]
    fn unknown_version_inside_a_valid_fernet_token_is_rejected() {
        let keys = spec_keys();
        let body = pack(&Value::Array(vec![
            Value::from(11),
            uuid_id(1),
            Value::from(2),
            uuid_id(2),
            Value::F64(2.0e9),
            Value::Array(vec![]),
        ]));
        let tok = fernet::encrypt(&keys.keys()[0], 1, [1; 16], &body);
        let d = fernet::decrypt(&tok, &keys, 8192).unwrap();
        assert_eq!(
            decode(&d.plaintext, &Methods::default()).unwrap_err(),
            PayloadError::UnknownVersion(11)
        );
    }
}
