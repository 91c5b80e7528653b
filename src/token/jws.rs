//! Keystone's JWS tokens (`[token] provider = jws`,
//! `keystone/token/providers/jws/core.py`): compact JWS, ES256 (ECDSA P-256,
//! SHA-256, `r || s`), Keystone's claims as JSON. Verified with the public
//! keys only ([`super::jws_keys`]).
//!
//! Everything that costs nothing is checked before any signature work: the
//! length, the shape (three base64url segments, no padding), the header
//! (`alg` must be exactly `ES256`; `none`, `HS256` and every other algorithm
//! are refused, as is a `crit` header) and the signature's length. Only then
//! is the signature verified, key after key, and only a verified payload is
//! parsed. Never panics, whatever the input.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use p256::ecdsa::Signature;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::Deserialize;

use super::{
    jws_keys::PublicKeys,
    payload::{Federation, Payload, Scope},
};

/// The one algorithm accepted (Keystone's default `[jwt_tokens] jws_algorithm`).
pub const ALGORITHM: &str = "ES256";

/// Longest encoded header accepted (Keystone's is 36 characters).
const MAX_HEADER_LEN: usize = 256;

/// Why a JWS token was refused. Every variant means "invalid token".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwsError {
    /// Longer than the configured maximum (checked before anything else).
    #[error("token too long")]
    TooLong,
    /// Not three base64url segments, or a header or signature of the wrong size.
    #[error("not a compact JWS")]
    Format,
    /// A header that is not a JSON object with an `alg`.
    #[error("malformed JWS header")]
    Header,
    /// An algorithm other than ES256 (`none`, `HS256`, `RS256`, ...), or a
    /// `crit` extension this verifier does not implement.
    #[error("algorithm {0:?} refused (only ES256 is accepted)")]
    Algorithm(String),
    /// No public key verifies the signature (forged, corrupted, signed with
    /// another key, or its key was removed from the repository).
    #[error("no public key verifies the signature")]
    Signature,
    /// Signed, but the claims are not Keystone's.
    #[error("claims are not Keystone's: {0}")]
    Claims(String),
}

/// Whether `token` has the shape of a compact JWS (two dots) rather than
/// a Fernet token (base64url, no dot): how the two formats are told apart.
pub fn looks_like_jws(token: &str) -> bool {
    token.bytes().filter(|&b| b == b'.').count() == 2
}

/// A verified JWS token.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Keystone's claims, as a payload.
    pub payload: Payload,
    /// `iat`: issued at, Unix seconds.
    pub issued_at: i64,
    /// File name of the public key that verified it.
    pub key: std::sync::Arc<str>,
}

#[derive(Deserialize)]
struct Header {
    alg: Option<serde_json::Value>,
    crit: Option<serde_json::Value>,
}

/// The segments of a JWS after the checks that need no key: the signing
/// input, the payload bytes, the signature.
struct Parsed<'a> {
    signing_input: &'a [u8],
    payload: Vec<u8>,
    signature: Signature,
}

/// Every check that costs no signature verification (see module docs).
fn parse(token: &str, max_len: usize) -> Result<Parsed<'_>, JwsError> {
    if token.len() > max_len {
        return Err(JwsError::TooLong);
    }
    let mut parts = token.splitn(3, '.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Format);
    };
    if header.is_empty() || header.len() > MAX_HEADER_LEN || signature.contains('.') {
        return Err(JwsError::Format);
    }
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JwsError::Format)?;
    let header: Header = serde_json::from_slice(&header).map_err(|_| JwsError::Header)?;
    match header.alg {
        Some(serde_json::Value::String(alg)) if alg == ALGORITHM => {}
        Some(serde_json::Value::String(alg)) => return Err(JwsError::Algorithm(alg)),
        Some(other) => return Err(JwsError::Algorithm(other.to_string())),
        None => return Err(JwsError::Header),
    }
    if header.crit.is_some() {
        return Err(JwsError::Algorithm(format!("{ALGORITHM} with crit")));
    }
    // ES256: exactly 64 bytes, 86 base64url characters.
    if signature.len() != 86 {
        return Err(JwsError::Format);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JwsError::Format)?;
    let signature = Signature::from_slice(&signature).map_err(|_| JwsError::Format)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JwsError::Format)?;
    let signed_len = token.len() - 87;
    Ok(Parsed {
        signing_input: &token.as_bytes()[..signed_len],
        payload,
        signature,
    })
}

/// Verifies `token` with the first key of `keys` that accepts its
/// signature, then decodes Keystone's claims. No expiry check here.
pub fn verify(token: &str, keys: &PublicKeys, max_len: usize) -> Result<Verified, JwsError> {
    let parsed = parse(token, max_len)?;
    let key = keys
        .keys()
        .iter()
        .find(|k| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &k.point[..])
                .verify(parsed.signing_input, &parsed.signature.to_bytes())
                .is_ok()
        })
        .ok_or(JwsError::Signature)?;
    let (payload, issued_at) = claims(&parsed.payload)?;
    Ok(Verified {
        payload,
        issued_at,
        key: key.name.clone(),
    })
}

/// Keystone's claims (`JWSFormatter.create_token`); absent optional claims
/// are omitted by Keystone, `null` is taken as absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    openstack_methods: Vec<String>,
    openstack_audit_ids: Vec<String>,
    #[serde(default)]
    openstack_system: Option<String>,
    #[serde(default)]
    openstack_domain_id: Option<String>,
    #[serde(default)]
    openstack_project_id: Option<String>,
    #[serde(default)]
    openstack_trust_id: Option<String>,
    #[serde(default)]
    openstack_group_ids: Option<Vec<Group>>,
    #[serde(default)]
    openstack_idp_id: Option<String>,
    #[serde(default)]
    openstack_protocol_id: Option<String>,
    #[serde(default)]
    openstack_access_token_id: Option<String>,
    #[serde(default)]
    openstack_app_cred_id: Option<String>,
    #[serde(default)]
    openstack_thumbprint: Option<String>,
}

/// A federated group as the token model holds it: `{"id": ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    id: String,
}

/// Decodes a verified payload into Keystone's claims: the payload and `iat`.
/// A duplicated or unknown claim, a second scope, or federation facts
/// without their identity provider and protocol are errors.
pub fn claims(json: &[u8]) -> Result<(Payload, i64), JwsError> {
    let c: Claims = serde_json::from_slice(json).map_err(|e| JwsError::Claims(e.to_string()))?;
    let bad = |what: &str| Err(JwsError::Claims(what.to_owned()));
    if c.sub.is_empty() {
        return bad("empty sub");
    }
    if c.openstack_audit_ids.is_empty() || c.openstack_audit_ids.len() > 2 {
        return bad("openstack_audit_ids must hold one or two audit ids");
    }
    let scope = match (
        c.openstack_system,
        c.openstack_domain_id,
        c.openstack_project_id,
    ) {
        (None, None, None) => Scope::Unscoped,
        (Some(s), None, None) => Scope::System(s),
        (None, Some(d), None) => Scope::Domain(d),
        (None, None, Some(p)) => Scope::Project(p),
        _ => return bad("more than one scope"),
    };
    let federation = match (
        c.openstack_group_ids,
        c.openstack_idp_id,
        c.openstack_protocol_id,
    ) {
        (None, None, None) => None,
        (Some(groups), Some(idp_id), Some(protocol_id)) => Some(Federation {
            group_ids: groups.into_iter().map(|g| g.id).collect(),
            idp_id,
            protocol_id,
        }),
        _ => return bad("federation claims incomplete"),
    };
    // The Fernet payload version Keystone would give the same token: its kind.
    let version = if c.openstack_thumbprint.is_some() {
        10
    } else if c.openstack_app_cred_id.is_some() {
        9
    } else if matches!(scope, Scope::System(_)) {
        8
    } else if c.openstack_access_token_id.is_some() {
        7
    } else if federation.is_some() {
        match scope {
            Scope::Domain(_) => 6,
            Scope::Project(_) => 5,
            _ => 4,
        }
    } else if c.openstack_trust_id.is_some() {
        3
    } else {
        match scope {
            Scope::Project(_) => 2,
            Scope::Domain(_) => 1,
            _ => 0,
        }
    };
    Ok((
        Payload {
            version,
            user_id: c.sub,
            methods: c.openstack_methods,
            scope,
            trust_id: c.openstack_trust_id,
            app_cred_id: c.openstack_app_cred_id,
            federation,
            access_token_id: c.openstack_access_token_id,
            thumbprint: c.openstack_thumbprint,
            expires_at: c.exp,
            audit_ids: c.openstack_audit_ids,
        },
        c.iat,
    ))
}

/// Test-only ES256 signing (foreign keys, tokens a real Keystone cannot make).
#[cfg(test)]
pub(crate) fn sign(key: &p256::ecdsa::SigningKey, header: &str, claims: &str) -> String {
    use p256::ecdsa::signature::Signer as _;
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::jws_keys::{PublicKey, PublicKeys};
    use p256::ecdsa::SigningKey;

    const HEADER: &str = r#"{"alg":"ES256","typ":"JWT"}"#;
    const PROJECT: &str = r#"{"sub":"u1","iat":1767222000,"exp":1767225600,"openstack_methods":["password"],"openstack_audit_ids":["a1"],"openstack_project_id":"p1"}"#;

    fn signing(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32].into()).unwrap()
    }

    fn keys(of: &[(u8, &str)]) -> PublicKeys {
        PublicKeys::from_keys(
            of.iter()
                .map(|(b, name)| PublicKey::new(name, *signing(*b).verifying_key()))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_its_public_key_and_decodes_the_claims() {
        let tok = sign(&signing(1), HEADER, PROJECT);
        assert!(looks_like_jws(&tok));
        let v = verify(&tok, &keys(&[(2, "old.pem"), (1, "public.pem")]), 8192).unwrap();
        assert_eq!(&*v.key, "public.pem");
        assert_eq!(v.issued_at, 1767222000);
        let p = v.payload;
        assert_eq!(
            (p.version, p.user_id.as_str(), p.expires_at),
            (2, "u1", 1767225600)
        );
        assert_eq!(p.scope, Scope::Project("p1".into()));
        assert_eq!(p.methods, vec!["password".to_string()]);
    }

    #[test]
    fn a_foreign_key_is_a_signature_error() {
        let tok = sign(&signing(9), HEADER, PROJECT);
        assert_eq!(
            verify(&tok, &keys(&[(1, "public.pem")]), 8192).unwrap_err(),
            JwsError::Signature
        );
    }

    #[test]
    fn other_algorithms_are_refused_before_any_signature_work() {
        let k = keys(&[(1, "public.pem")]);
        let claims = URL_SAFE_NO_PAD.encode(PROJECT);
        for (alg, header) in [
            ("none", r#"{"alg":"none"}"#),
            ("HS256", r#"{"alg":"HS256","typ":"JWT"}"#),
            ("RS256", r#"{"alg":"RS256"}"#),
            ("es256", r#"{"alg":"es256"}"#),
            ("ES384", r#"{"alg":"ES384"}"#),
        ] {
            let h = URL_SAFE_NO_PAD.encode(header);
            for sig in ["", "AAAA", &"A".repeat(86)] {
                let tok = format!("{h}.{claims}.{sig}");
                assert_eq!(
                    parse(&tok, 8192).err(),
                    Some(JwsError::Algorithm(alg.into())),
                    "{header} sig {sig:?}"
                );
                assert!(verify(&tok, &k, 8192).is_err());
            }
        }
        let crit = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","crit":["b64"],"b64":false}"#);
        assert!(matches!(
            parse(&format!("{crit}.{claims}.{}", "A".repeat(86)), 8192),
            Err(JwsError::Algorithm(_))
        ));
        let no_alg = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#);
        assert!(matches!(
            parse(&format!("{no_alg}.{claims}.{}", "A".repeat(86)), 8192),
            Err(JwsError::Header)
        ));
    }

    #[test]
    fn oversize_and_malformed_tokens_are_refused_before_decoding() {
        let k = keys(&[(1, "public.pem")]);
        let tok = sign(&signing(1), HEADER, PROJECT);
        assert_eq!(
            verify(&tok, &k, tok.len() - 1).unwrap_err(),
            JwsError::TooLong
        );
        assert!(verify(&tok, &k, tok.len()).is_ok());
        let (signed, sig) = tok.rsplit_once('.').unwrap();
        for bad in [
            format!("{tok}="),
            format!("{signed}.{sig}."),
            signed.to_string(),
            format!("{signed}.{}", &sig[1..]),
            format!("{signed}=.{sig}"),
            format!(".{}", tok.split_once('.').unwrap().1),
            tok.replace('-', "+").replace('_', "/"),
        ] {
            assert_ne!(bad, tok);
            assert!(verify(&bad, &k, 8192).is_err(), "{bad}");
        }
        let big_header =
            URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"ES256","x":"{}"}}"#, "a".repeat(300)));
        assert_eq!(
            parse(&format!("{big_header}.e30.{}", "A".repeat(86)), 8192).err(),
            Some(JwsError::Format)
        );
    }

    #[test]
    fn every_bit_flip_is_rejected_without_panic() {
        let k = keys(&[(1, "public.pem")]);
        let tok = sign(&signing(1), HEADER, PROJECT);
        let bytes = tok.as_bytes();
        for i in 0..bytes.len() {
            for bit in 0..7 {
                let mut t = bytes.to_vec();
                t[i] ^= 1 << bit;
                if let Ok(s) = std::str::from_utf8(&t) {
                    if s != tok {
                        assert!(verify(s, &k, 8192).is_err(), "byte {i} bit {bit}");
                    }
                }
            }
        }
    }

    #[test]
    fn keystones_claims_of_every_kind_decode() {
        let c = |extra: &str| {
            format!(
                r#"{{"sub":"u","iat":1,"exp":2,"openstack_methods":["token","password"],"openstack_audit_ids":["a","b"]{extra}}}"#
            )
        };
        let v = |extra: &str| claims(c(extra).as_bytes()).map(|(p, _)| p);
        assert_eq!(v("").unwrap().scope, Scope::Unscoped);
        assert_eq!(v("").unwrap().audit_ids, vec!["a", "b"]);
        let sys = v(r#","openstack_system":"all""#).unwrap();
        assert_eq!((sys.version, sys.scope), (8, Scope::System("all".into())));
        let dom = v(r#","openstack_domain_id":"default""#).unwrap();
        assert_eq!(
            (dom.version, dom.scope),
            (1, Scope::Domain("default".into()))
        );
        let trust = v(r#","openstack_project_id":"p","openstack_trust_id":"t""#).unwrap();
        assert_eq!((trust.version, trust.trust_id.as_deref()), (3, Some("t")));
        let ac = v(r#","openstack_project_id":"p","openstack_app_cred_id":"ac""#).unwrap();
        assert_eq!((ac.version, ac.app_cred_id.as_deref()), (9, Some("ac")));
        let oauth = v(r#","openstack_project_id":"p","openstack_access_token_id":"at""#).unwrap();
        assert_eq!(
            (oauth.version, oauth.access_token_id.as_deref()),
            (7, Some("at"))
        );
        let mtls = v(r#","openstack_project_id":"p","openstack_thumbprint":"th""#).unwrap();
        assert_eq!((mtls.version, mtls.thumbprint.as_deref()), (10, Some("th")));
        let fed = v(r#","openstack_project_id":"p","openstack_group_ids":[{"id":"g1"},{"id":"g2"}],"openstack_idp_id":"idp","openstack_protocol_id":"saml2""#).unwrap();
        assert_eq!(fed.version, 5);
        assert_eq!(
            fed.federation,
            Some(Federation {
                group_ids: vec!["g1".into(), "g2".into()],
                idp_id: "idp".into(),
                protocol_id: "saml2".into()
            })
        );
        // null is absent, as Keystone's payload.get() reads it.
        assert_eq!(
            v(r#","openstack_project_id":null"#).unwrap().scope,
            Scope::Unscoped
        );

        for bad in [
            r#","openstack_project_id":"p","openstack_domain_id":"d""#,
            r#","openstack_group_ids":[{"id":"g"}]"#,
            r#","openstack_idp_id":"idp","openstack_protocol_id":"x""#,
            r#","openstack_group_ids":["g"],"openstack_idp_id":"i","openstack_protocol_id":"x""#,
            r#","sub":"other""#,
            r#","admin":true"#,
            r#","openstack_project_id":7"#,
        ] {
            assert!(v(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"sub":"u","iat":1,"exp":2.5,"openstack_methods":[],"openstack_audit_ids":["a"]}"#,
            r#"{"sub":"u","iat":1,"exp":2,"openstack_methods":[],"openstack_audit_ids":[]}"#,
            r#"{"sub":"","iat":1,"exp":2,"openstack_methods":[],"openstack_audit_ids":["a"]}"#,
            r#"{"iat":1,"exp":2,"openstack_methods":[],"openstack_audit_ids":["a"]}"#,
            r#"[]"#,
        ] {
            assert!(claims(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
