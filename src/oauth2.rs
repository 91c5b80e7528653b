//! `[oauth2]`: the OAuth 2.0 ways Keystone tokens arrive, as
//! keystonemiddleware's `oauth2_token` filter reads them: an
//! `Authorization: Bearer <token>` header (RFC 6750), taken only when the
//! request has no `X-Auth-Token`. Off by default: a service that never
//! announced Bearer keeps refusing it.
//!
//! And the client certificate a certificate-bound token (RFC 8705,
//! keystonemiddleware's `oauth2_mtls_token`) must come with: its
//! [`Thumbprint`], computed as Keystone computes it, from the TLS
//! connection's verified certificate ([`ConnectionCertificate`], `[tls]
//! client_ca_file`), from a header a trusted ingress sets
//! (`ssl-client-cert`, `X-Forwarded-Client-Cert`), or from a URL-encoded
//! PEM (Envoy's ext_authz `source.certificate`).

use std::{net::IpAddr, sync::Arc};

use base64::Engine as _;
use http::{HeaderMap, HeaderName};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{
    connection::Cidr,
    settings::{problem, Problem},
};

/// `[oauth2]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Accept `Authorization: Bearer <token>` when no `X-Auth-Token` (or
    /// `X-Storage-Token`) is sent.
    #[serde(default)]
    pub bearer: bool,
    /// The header a TLS-terminating ingress puts the client certificate in:
    /// `ssl-client-cert` (nginx `$ssl_client_escaped_cert`, URL-encoded PEM)
    /// or `x-forwarded-client-cert` (Envoy's XFCC, its `Cert` field).
    pub client_certificate_header: Option<String>,
    /// Peers (addresses or CIDR blocks) whose `client_certificate_header`
    /// is believed; from any other peer it is removed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

/// `[oauth2]`, checked.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// Whether `Authorization: Bearer` is a token source.
    pub bearer: bool,
    /// The certificate header of trusted ingresses, when configured.
    pub client_certificate_header: Option<CertificateHeader>,
}

/// Where a trusted ingress passes the client certificate.
#[derive(Debug, Clone)]
pub struct CertificateHeader {
    name: HeaderName,
    xfcc: bool,
    trusted_proxies: Vec<Cidr>,
}

impl Section {
    /// Checks the section, recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Settings {
        let mut trusted_proxies = Vec::new();
        for (i, c) in self.trusted_proxies.iter().enumerate() {
            match Cidr::parse(c) {
                Ok(c) => trusted_proxies.push(c),
                Err(e) => problem(p, &format!("oauth2.trusted_proxies[{i}]"), &e),
            }
        }
        let key = "oauth2.client_certificate_header";
        let client_certificate_header = match self.client_certificate_header.as_deref() {
            None => {
                if !trusted_proxies.is_empty() {
                    problem(
                        p,
                        key,
                        "is unset while oauth2.trusted_proxies is set: name the header the proxies set (\"ssl-client-cert\" or \"x-forwarded-client-cert\")",
                    );
                }
                None
            }
            Some(name) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) if trusted_proxies.is_empty() => {
                    problem(
                        p,
                        "oauth2.trusted_proxies",
                        &format!("is empty: list the proxies whose {name} header is believed"),
                    );
                    None
                }
                Ok(name) => Some(CertificateHeader {
                    xfcc: name == "x-forwarded-client-cert",
                    name,
                    trusted_proxies,
                }),
                Err(_) => {
                    problem(p, key, "is not a header name");
                    None
                }
            },
        };
        Settings {
            bearer: self.bearer,
            client_certificate_header,
        }
    }
}

/// A client certificate's thumbprint as Keystone computes it
/// (`keystone.common.utils.get_certificate_thumbprint`, and
/// keystonemiddleware's `oauth2_mtls_token`): the SHA-256 of the
/// certificate's PEM text (64-character lines, as Python's
/// `ssl.DER_cert_to_PEM_cert` writes it), URL-safe base64 with padding —
/// not RFC 8705's hash of the DER bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprint(Arc<str>);

impl Thumbprint {
    /// The thumbprint of a DER certificate.
    pub fn of_der(der: &[u8]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            // Base64 is ASCII.
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        let digest = Sha256::digest(pem.as_bytes());
        Self(Arc::from(
            base64::engine::general_purpose::URL_SAFE.encode(digest),
        ))
    }

    /// The thumbprint of the one certificate of a PEM text, URL-encoded
    /// (nginx's `$ssl_client_escaped_cert`, Envoy's `source.certificate`
    /// and XFCC `Cert`) or not; `None` unless it holds exactly one
    /// well-formed certificate block.
    pub fn of_pem(text: &str) -> Option<Self> {
        let decoded = percent_decoded(text)?;
        const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
        const END: &str = "-----END CERTIFICATE-----";
        let (before, rest) = decoded.split_once(BEGIN)?;
        let (body, after) = rest.split_once(END)?;
        if !before.trim().is_empty() || !after.trim().is_empty() {
            return None;
        }
        let b64: String = body.split_ascii_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        (!der.is_empty()).then(|| Self::of_der(&der))
    }

    /// Whether a token bound to `bound` (Keystone's `x5t#S256`) may be used
    /// with this certificate.
    pub fn matches(&self, bound: &str) -> bool {
        &*self.0 == bound
    }
}

/// The client certificate the TLS connection a request came on presented
/// and the listener verified (`[tls] client_ca_file`), as its thumbprint:
/// the server puts it in the extensions of every request of the
/// connection (an embedder terminating mutual TLS itself may too).
#[derive(Debug, Clone)]
pub struct ConnectionCertificate(pub Thumbprint);

/// The client certificate of a request its connection's client made (the
/// sidecar, the tower layer): from a trusted proxy (`peer` in
/// `trusted_proxies`) only what its `header` says (the proxy's own
/// connection certificate is not its client's); from any other peer the
/// `connection`'s verified certificate. The header is removed from
/// `headers` in every case.
pub fn client_certificate(
    header: Option<&CertificateHeader>,
    headers: &mut HeaderMap,
    peer: Option<IpAddr>,
    connection: Option<&ConnectionCertificate>,
) -> Option<Thumbprint> {
    let own = || connection.map(|c| c.0.clone());
    match header {
        None => own(),
        Some(h) if h.trusts(peer) => h.take(headers, peer),
        Some(h) => {
            // Removed, never believed.
            let _ = h.take(headers, peer);
            own()
        }
    }
}

impl CertificateHeader {
    /// Whether `peer` is one of `trusted_proxies`.
    fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|c| c.contains(ip)))
    }

    /// The client certificate's thumbprint from the header, when `peer` is
    /// a trusted proxy and the header holds one certificate; the header is
    /// removed from `headers` in every case (the upstream never reads a
    /// client's claim of a certificate).
    pub fn take(&self, headers: &mut HeaderMap, peer: Option<IpAddr>) -> Option<Thumbprint> {
        let trusted = self.trusts(peer);
        let mut values = headers.get_all(&self.name).iter();
        let value = values.next().filter(|_| values.next().is_none()).cloned();
        headers.remove(&self.name);
        let text = value.filter(|_| trusted)?;
        let text = text.to_str().ok()?;
        if self.xfcc {
            xfcc_cert(text).and_then(|c| Thumbprint::of_pem(&c))
        } else {
            Thumbprint::of_pem(text)
        }
    }
}

/// `text` with its `%XX` escapes decoded; `None` on a malformed escape or
/// a result that is not UTF-8.
fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Cert` field of an `X-Forwarded-Client-Cert` value holding one
/// element (one proxy's client): `Hash=...;Cert="<URL-encoded PEM>";...`.
/// `None` when there are several elements (whose client is it?) or no Cert.
fn xfcc_cert(value: &str) -> Option<String> {
    let mut cert = None;
    let mut rest = value.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (val, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => match after.find([';', ',']) {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            },
        };
        if key.trim().eq_ignore_ascii_case("cert") {
            if cert.is_some() {
                return None;
            }
            cert = Some(val.to_owned());
        }
        rest = match after.trim_start().chars().next() {
            None => "",
            Some(';') => &after.trim_start()[1..],
            // A second element: another hop's client.
            Some(_) => return None,
        };
    }
    cert
}

/// The RFC 6750 challenge a 401 carries beside Keystone's when Bearer tokens
/// are accepted: `realm` is the URI Keystone's challenge names, and the
/// error says the token sent (if any) is not usable. `None` when `realm`
/// cannot be a quoted header parameter (Keystone's challenge, checked
/// first, refuses such a URI already).
pub fn bearer_challenge(realm: &str) -> Option<http::HeaderValue> {
    if realm.contains(['"', '\\']) {
        return None;
    }
    http::HeaderValue::from_str(&format!(
        "Bearer realm=\"{realm}\", error=\"invalid_token\""
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client certificate and its thumbprint as keystonemiddleware's
    /// `oauth2_mtls_token` computes it (Python `ssl.DER_cert_to_PEM_cert`,
    /// SHA-256, URL-safe base64), the value Keystone put in the
    /// `x5t#S256` of the token it issued for this certificate.
    const PEM: &str = include_str!("../tests/fixtures/mtls/bound-client.pem");
    const KEYSTONE_THUMBPRINT: &str = "cWa6DrpF7hmvhLb4Tr_f28cXVP9BNOMALHBcOlr6xR4=";

    fn escaped(pem: &str) -> String {
        pem.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    #[test]
    fn the_thumbprint_is_keystones_not_the_der_hash() {
        let t = Thumbprint::of_pem(PEM).unwrap();
        assert!(t.matches(KEYSTONE_THUMBPRINT), "{t:?}");
        // URL-encoded (nginx's $ssl_client_escaped_cert), and re-wrapped.
        assert_eq!(Thumbprint::of_pem(&escaped(PEM)), Some(t.clone()));
        let one_line = PEM.replace('\n', " ");
        assert_eq!(Thumbprint::of_pem(&one_line), Some(t.clone()));
        // RFC 8705's hash of the DER bytes is another value.
        let b64: String = PEM.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let rfc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&der));
        assert!(!t.matches(&rfc));
        for bad in [
            "",
            "garbage",
            "-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----",
            "%zz",
        ] {
            assert_eq!(Thumbprint::of_pem(bad), None, "{bad}");
        }
        let two = format!("{PEM}{PEM}");
        assert_eq!(Thumbprint::of_pem(&two), None, "two certificates");
    }

    fn header(name: &str, trusted: &[&str]) -> CertificateHeader {
        let mut p = Vec::new();
        let s = Section {
            bearer: false,
            client_certificate_header: Some(name.into()),
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
        }
        .build(&mut p);
        assert!(p.is_empty(), "{p:?}");
        s.client_certificate_header.unwrap()
    }

    #[test]
    fn the_header_is_believed_only_from_trusted_proxies_and_always_removed() {
        let h = header("ssl-client-cert", &["10.0.0.0/8"]);
        let value = http::HeaderValue::from_str(&escaped(PEM)).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("ssl-client-cert", value.clone());
        let t = h.take(&mut headers, Some("10.1.2.3".parse().unwrap()));
        assert!(t.unwrap().matches(KEYSTONE_THUMBPRINT));
        assert!(headers.is_empty());
        headers.insert("ssl-client-cert", value.clone());
        assert_eq!(
            h.take(&mut headers, Some("192.0.2.1".parse().unwrap())),
            None
        );
        assert!(headers.is_empty(), "a forged header is removed too");
        headers.insert("ssl-client-cert", value.clone());
        assert_eq!(h.take(&mut headers, None), None);
        // Repeated: whose is it?
        headers.append("ssl-client-cert", value.clone());
        headers.append("ssl-client-cert", value);
        assert_eq!(
            h.take(&mut headers, Some("10.0.0.1".parse().unwrap())),
            None
        );
    }

    #[test]
    fn the_connection_certificate_is_the_clients_unless_the_peer_is_a_trusted_proxy() {
        let own = ConnectionCertificate(Thumbprint::of_pem(PEM).unwrap());
        // Another certificate, named by the header.
        let other = Thumbprint::of_der(b"another certificate");
        let other_pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64::engine::general_purpose::STANDARD.encode(b"another certificate")
        );
        let value = http::HeaderValue::from_str(&escaped(&other_pem)).unwrap();
        let forged = || {
            let mut headers = HeaderMap::new();
            headers.insert("ssl-client-cert", value.clone());
            headers
        };
        let h = header("ssl-client-cert", &["10.0.0.0/8"]);
        let client = Some("192.0.2.1".parse().unwrap());
        let proxy = Some("10.0.0.1".parse().unwrap());
        // An untrusted client's header is removed and not believed: its
        // connection's certificate counts.
        let mut headers = forged();
        let t = client_certificate(Some(&h), &mut headers, client, Some(&own));
        assert!(t.unwrap().matches(KEYSTONE_THUMBPRINT));
        assert!(headers.is_empty());
        let mut headers = forged();
        assert_eq!(
            client_certificate(Some(&h), &mut headers, client, None),
            None
        );
        // A trusted proxy speaks for its client: its header, never its own
        // connection certificate.
        let mut headers = forged();
        let t = client_certificate(Some(&h), &mut headers, proxy, Some(&own));
        assert_eq!(t, Some(other));
        assert!(headers.is_empty());
        let mut headers = HeaderMap::new();
        assert_eq!(
            client_certificate(Some(&h), &mut headers, proxy, Some(&own)),
            None,
            "a proxy's own certificate stood for its client"
        );
        // No header configured: the connection's certificate.
        let mut headers = HeaderMap::new();
        let t = client_certificate(None, &mut headers, client, Some(&own));
        assert!(t.unwrap().matches(KEYSTONE_THUMBPRINT));
    }

    #[test]
    fn xfcc_gives_the_cert_of_its_one_element() {
        let h = header("x-forwarded-client-cert", &["127.0.0.1"]);
        let peer = Some("127.0.0.1".parse().unwrap());
        let one = format!(
            "Hash=abc;Cert=\"{}\";Subject=\"CN=demo,O=stonegate\";URI=spiffe://x",
            escaped(PEM)
        );
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-client-cert", one.parse().unwrap());
        assert!(h
            .take(&mut headers, peer)
            .unwrap()
            .matches(KEYSTONE_THUMBPRINT));
        let two = format!("{one},By=spiffe://y;Cert=\"{}\"", escaped(PEM));
        headers.insert("x-forwarded-client-cert", two.parse().unwrap());
        assert_eq!(h.take(&mut headers, peer), None, "two hops");
        headers.insert(
            "x-forwarded-client-cert",
            "Hash=abc;Subject=\"CN=x\"".parse().unwrap(),
        );
        assert_eq!(h.take(&mut headers, peer), None, "no Cert");
    }

    #[test]
    fn a_certificate_header_needs_trusted_proxies_and_the_reverse() {
        let mut p = Vec::new();
        Section {
            bearer: false,
            client_certificate_header: Some("ssl-client-cert".into()),
            trusted_proxies: vec![],
        }
        .build(&mut p);
        Section {
            bearer: false,
            client_certificate_header: None,
            trusted_proxies: vec!["10.0.0.1".into(), "nope".into()],
        }
        .build(&mut p);
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "oauth2.trusted_proxies",
                "oauth2.trusted_proxies[1]",
                "oauth2.client_certificate_header"
            ]
        );
    }
}
