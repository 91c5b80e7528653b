//! The settings vocabulary every section speaks: a [`Problem`] with the key
//! path that has it, and the checks several sections share (secrets read
//! from the value, a `_file` or the environment; addresses; URLs).
//!
//! A leaf: it imports nothing of the crate, so each domain module checks its
//! own section with it without importing `config`. [`ini`] reads the INI
//! files sections point to (oslo.config files, audit map files).

pub mod ini;

use std::{fmt, net::SocketAddr};

use http::Uri;
use secrecy::SecretString;

/// One problem found in a configuration: the key that has it and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `keystone_authtoken.auth_url`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The lookup of environment variables a section's secrets may come from
/// (a parameter, so tests need no globals).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Records that `key` has `message` as a problem.
pub(crate) fn problem(p: &mut Vec<Problem>, key: &str, message: &str) {
    p.push(Problem {
        key: key.into(),
        message: message.into(),
    });
}

/// Records `key` as a problem when a number of seconds is 0.
pub(crate) fn at_least_one_second(p: &mut Vec<Problem>, key: &str, secs: u64) {
    if secs == 0 {
        problem(p, key, "must be at least 1 second");
    }
}

/// A secret from exactly one of: the inline key, `<key>_file`, or the environment.
pub(crate) fn secret(
    p: &mut Vec<Problem>,
    key: &str,
    inline: &Option<String>,
    file: &Option<String>,
    env_name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<SecretString> {
    match (inline, file) {
        (Some(_), Some(_)) => {
            problem(p, key, &format!("set either {key} or {key}_file, not both"));
            None
        }
        (Some(v), None) => Some(SecretString::from(v.clone())),
        (None, Some(f)) => match std::fs::read_to_string(f) {
            Ok(mut text) => {
                let trimmed = text.trim_end_matches(['\n', '\r']);
                let secret = (!trimmed.is_empty()).then(|| SecretString::from(trimmed.to_owned()));
                // The file's text held the secret too: wipe it.
                zeroize::Zeroize::zeroize(&mut text);
                if secret.is_none() {
                    problem(p, &format!("{key}_file"), &format!("file {f:?} is empty"));
                }
                secret
            }
            Err(e) => {
                problem(
                    p,
                    &format!("{key}_file"),
                    &format!("cannot read {f:?}: {e}"),
                );
                None
            }
        },
        (None, None) => match env(env_name) {
            Some(v) if !v.is_empty() => Some(SecretString::from(v)),
            _ => {
                problem(
                    p,
                    key,
                    &format!("is required: set {key}_file, or the environment variable {env_name}"),
                );
                None
            }
        },
    }
}

/// A required `IP:port` address.
pub(crate) fn addr(p: &mut Vec<Problem>, key: &str, value: Option<&str>) -> Option<SocketAddr> {
    match value {
        None => {
            problem(p, key, "is required (e.g. \"127.0.0.1:8080\")");
            None
        }
        Some(v) => match v.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problem(p, key, &format!("{v:?} is not an IP:port address"));
                None
            }
        },
    }
}

/// A required `http://` or `https://` URL without query.
pub(crate) fn url(p: &mut Vec<Problem>, key: &str, value: Option<&str>) -> Option<Uri> {
    let Some(v) = value else {
        problem(p, key, "is required (an http:// or https:// URL)");
        return None;
    };
    match v.parse::<Uri>() {
        Ok(u)
            if matches!(u.scheme_str(), Some("http") | Some("https"))
                && u.authority().is_some()
                && u.query().is_none() =>
        {
            Some(u)
        }
        _ => {
            problem(
                p,
                key,
                &format!("{v:?} is not an http:// or https:// URL without query"),
            );
            None
        }
    }
}

/// Records `key` as a problem when a file it names does not exist.
pub(crate) fn existing_file(p: &mut Vec<Problem>, key: &str, file: &Option<String>) {
    if let Some(f) = file {
        if !std::path::Path::new(f).is_file() {
            problem(p, key, &format!("file {f:?} does not exist"));
        }
    }
}
