//! Every type error of a file in one run: when the file does not parse, each
//! top-level key is deserialised on its own (the others skipped), so an
//! unknown key in one section and a bad value in another are both reported,
//! each with its line, instead of one per `check-config` run.

use std::marker::PhantomData;

use serde::{
    de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor},
    Deserialize, Deserializer,
};

use crate::{
    audit, cache, forward_auth, keystone, kube, local, oauth2, policy, proxy, request_id,
    revocation, routes, session, trace,
};

/// The top-level keys of [`super::File`].
const KEYS: &[&str] = &[
    "listen",
    "upstream",
    "admin_listen",
    "log_format",
    "proxy",
    "keystone_authtoken",
    "cache",
    "tls",
    "auth_listen",
    "forward_auth",
    "routes",
    "fernet",
    "jws",
    "revocation",
    "session",
    "authorization",
    "request_id",
    "audit",
    "oauth2",
    "tracing",
    "kubernetes",
];

/// The parser's messages for `first` (the whole file's error) and for every
/// other top-level key that fails on its own, one after the other.
/// `document` makes a fresh deserialiser of the whole file.
pub(super) fn every_error<'de, D>(
    first: &toml::de::Error,
    keys: impl IntoIterator<Item = String>,
    document: impl Fn() -> D,
) -> String
where
    D: Deserializer<'de, Error = toml::de::Error>,
{
    let mut messages = vec![first.to_string()];
    // The same error met again (its span may cover the value too).
    let mut seen = vec![(first.message().to_owned(), first.span().map(|s| s.start))];
    for key in keys {
        let result = match key.as_str() {
            "listen" | "upstream" | "admin_listen" | "log_format" | "auth_listen" => {
                probe::<String, _>(&key, document())
            }
            "proxy" => probe::<proxy::Section, _>(&key, document()),
            "keystone_authtoken" => probe::<keystone::Section, _>(&key, document()),
            "cache" => probe::<cache::Section, _>(&key, document()),
            "tls" => probe::<proxy::TlsSection, _>(&key, document()),
            "forward_auth" => probe::<Vec<forward_auth::Section>, _>(&key, document()),
            "routes" => probe::<routes::Section, _>(&key, document()),
            "fernet" => probe::<local::Section, _>(&key, document()),
            "jws" => probe::<local::jws_settings::Section, _>(&key, document()),
            "revocation" => probe::<revocation::Section, _>(&key, document()),
            "session" => probe::<session::Section, _>(&key, document()),
            "authorization" => probe::<policy::Section, _>(&key, document()),
            "request_id" => probe::<request_id::Section, _>(&key, document()),
            "audit" => probe::<audit::Section, _>(&key, document()),
            "tracing" => probe::<trace::Section, _>(&key, document()),
            "oauth2" => probe::<oauth2::Section, _>(&key, document()),
            "kubernetes" => probe::<kube::Section, _>(&key, document()),
            _ => document().deserialize_map(Unknown(&key)),
        };
        if let Err(e) = result {
            let id = (e.message().to_owned(), e.span().map(|s| s.start));
            if !seen.contains(&id) {
                seen.push(id);
                messages.push(e.to_string());
            }
        }
    }
    messages.join("\n")
}

/// Deserialises the value of `key` as `T`, skipping every other key.
fn probe<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    key: &str,
    document: D,
) -> Result<(), D::Error> {
    Probe::<T>(key, PhantomData).deserialize(document)
}

struct Probe<'k, T>(&'k str, PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for Probe<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for Probe<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                map.next_value::<T>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// Fails at `key`, a top-level key [`super::File`] does not have.
struct Unknown<'k>(&'k str);

impl<'de> Visitor<'de> for Unknown<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                return Err(A::Error::unknown_field(self.0, KEYS));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}
