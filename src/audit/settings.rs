//! `[audit]`: which requests make CADF events and where they go, as
//! written ([`Section`]) and checked ([`Settings`]).

use std::path::PathBuf;

use serde::Deserialize;

use super::{map::Map, messaging::Target};
use crate::settings::{problem, secret, Env, Problem};

/// `[audit]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// Emit events at all.
    #[serde(default)]
    pub enabled: bool,
    /// `all` (default), `writes` or `rejections`.
    pub events: Option<String>,
    /// `stdout` (default), `file` or `messaging`.
    pub sink: Option<String>,
    /// oslo.messaging's `transport_url` of `sink = "messaging"`
    /// (`rabbit://user:password@host:port/vhost`); or `transport_url_file`,
    /// or the environment variable `STONEGATE_AUDIT_TRANSPORT_URL`.
    pub transport_url: Option<String>,
    /// A file holding the transport URL.
    pub transport_url_file: Option<String>,
    /// Notification topics (oslo's `topics`; default `["notifications"]`).
    pub topics: Option<Vec<String>>,
    /// The exchange (oslo's `control_exchange`; default `openstack`).
    pub exchange: Option<String>,
    /// The JSON-lines file of `sink = "file"` (appended to).
    pub file: Option<String>,
    /// keystonemiddleware's `audit_map_file` (`api_audit_map.conf`).
    pub audit_map_file: Option<String>,
    /// Events held for the sink at most; more are dropped and counted.
    pub queue_size: Option<usize>,
    /// The notifications' `publisher_id`.
    pub publisher_id: Option<String>,
    /// keystonemiddleware's `ignore_req_list`: methods never audited.
    #[serde(default)]
    pub ignore_req_list: Vec<String>,
    /// keystonemiddleware's `ignore_path_list`: paths never audited.
    #[serde(default)]
    pub ignore_path_list: Vec<String>,
}

/// Which requests make events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Events {
    /// Every request: a request and a response event each.
    All,
    /// Requests that may change something (not GET, HEAD, OPTIONS, TRACE).
    Writes,
    /// Requests stonegate refused itself (400, 401, 403, 503).
    Rejections,
}

/// Where events go.
#[derive(Debug, Clone)]
pub enum Sink {
    /// One JSON notification per line on standard output.
    Stdout,
    /// One JSON notification per line, appended to this file.
    File(PathBuf),
    /// oslo.messaging notifications over AMQP 0-9-1 (RabbitMQ).
    Messaging(Target),
}

/// `[audit]` checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Which requests make events.
    pub events: Events,
    /// Where they go.
    pub sink: Sink,
    /// The audit map.
    pub map: Map,
    /// Queue bound.
    pub queue_size: usize,
    /// `publisher_id` of the notifications.
    pub publisher_id: String,
    /// Methods never audited (upper case).
    pub ignore_methods: Vec<String>,
    /// Paths never audited.
    pub ignore_paths: Vec<String>,
}

/// Events held for the sink by default.
pub const DEFAULT_QUEUE_SIZE: usize = 10_000;

impl Section {
    /// Checks the section (`None` when audit is off), recording problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>, env: Env<'_>) -> Option<Settings> {
        if !self.enabled {
            return None;
        }
        let events = match self.events.as_deref().unwrap_or("all") {
            "all" => Events::All,
            "writes" => Events::Writes,
            "rejections" => Events::Rejections,
            _ => {
                problem(
                    p,
                    "audit.events",
                    "must be \"all\", \"writes\" or \"rejections\"",
                );
                Events::All
            }
        };
        let sink = match (self.sink.as_deref().unwrap_or("stdout"), &self.file) {
            ("stdout", None) => Sink::Stdout,
            ("file", Some(f)) => Sink::File(PathBuf::from(f)),
            ("file", None) => {
                problem(
                    p,
                    "audit.file",
                    "is required with sink = \"file\": the JSON-lines file to append to",
                );
                Sink::Stdout
            }
            ("messaging", None) => match self.target(p, env) {
                Some(t) => Sink::Messaging(t),
                None => Sink::Stdout,
            },
            ("stdout" | "messaging", Some(_)) => {
                problem(
                    p,
                    "audit.file",
                    "is only read with sink = \"file\": set sink = \"file\" or remove file",
                );
                Sink::Stdout
            }
            _ => {
                problem(
                    p,
                    "audit.sink",
                    "must be \"stdout\", \"file\" or \"messaging\"",
                );
                Sink::Stdout
            }
        };
        let map = match &self.audit_map_file {
            None => Map::default(),
            Some(f) => match std::fs::read_to_string(f) {
                Ok(text) => Map::parse(&text).unwrap_or_else(|e| {
                    problem(p, "audit.audit_map_file", &format!("{f:?}: {e}"));
                    Map::default()
                }),
                Err(e) => {
                    problem(
                        p,
                        "audit.audit_map_file",
                        &format!("cannot read {f:?}: {e}"),
                    );
                    Map::default()
                }
            },
        };
        let queue_size = self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size == 0 {
            problem(p, "audit.queue_size", "must be at least 1");
        }
        Some(Settings {
            events,
            sink,
            map,
            queue_size: queue_size.max(1),
            publisher_id: self
                .publisher_id
                .clone()
                .unwrap_or_else(|| "stonegate".into()),
            ignore_methods: self
                .ignore_req_list
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
            ignore_paths: self.ignore_path_list.clone(),
        })
    }
}

impl Section {
    /// The broker of `sink = "messaging"`.
    fn target(&self, p: &mut Vec<Problem>, env: Env<'_>) -> Option<Target> {
        use secrecy::ExposeSecret;
        let url = secret(
            p,
            "audit.transport_url",
            &self.transport_url,
            &self.transport_url_file,
            "STONEGATE_AUDIT_TRANSPORT_URL",
            env,
        )?;
        // oslo's rabbit:// is AMQP 0-9-1's amqp://; one broker only.
        let amqp = match url.expose_secret().split_once("://") {
            Some(("rabbit" | "amqp", rest)) if !rest.contains(',') => {
                // kombu reads an empty vhost as "/"; lapin as "", which RabbitMQ refuses.
                match rest.split_once('/') {
                    None | Some((_, "")) => {
                        format!("amqp://{}/%2f", rest.trim_end_matches('/'))
                    }
                    Some(_) => format!("amqp://{rest}"),
                }
            }
            _ => {
                problem(
                    p,
                    "audit.transport_url",
                    "must be rabbit://user:password@host:port/vhost (one broker)",
                );
                return None;
            }
        };
        Some(Target {
            url: secrecy::SecretString::from(amqp),
            exchange: self.exchange.clone().unwrap_or_else(|| "openstack".into()),
            topics: self
                .topics
                .clone()
                .unwrap_or_else(|| vec!["notifications".into()]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml: &str) -> (Option<Settings>, Vec<Problem>) {
        let s: Section = toml::from_str(toml).unwrap();
        let mut p = Vec::new();
        (s.build(&mut p, &|_| None), p)
    }

    #[test]
    fn messaging_needs_one_rabbit_url() {
        let (_, p) = build("enabled = true\nsink = \"messaging\"");
        assert_eq!(p[0].key, "audit.transport_url");
        let (_, p) = build("enabled = true\nsink = \"messaging\"\ntransport_url = \"kafka://h\"");
        assert_eq!(p[0].key, "audit.transport_url");
        let (s, p) =
            build("enabled = true\nsink = \"messaging\"\ntransport_url = \"rabbit://u:p@h:5672/\"");
        assert!(p.is_empty(), "{p:?}");
        let Some(Settings {
            sink: Sink::Messaging(t),
            ..
        }) = s
        else {
            panic!("not messaging")
        };
        assert_eq!(
            (t.exchange.as_str(), t.topics.as_slice()),
            ("openstack", ["notifications".to_owned()].as_slice())
        );
    }

    #[test]
    fn off_unless_enabled_and_every_problem_names_its_key() {
        assert!(build("").0.is_none());
        let (s, p) = build("enabled = true");
        let s = s.unwrap();
        assert!(p.is_empty());
        assert_eq!((s.events, s.queue_size), (Events::All, DEFAULT_QUEUE_SIZE));
        assert!(matches!(s.sink, Sink::Stdout));
        let (_, p) = build("enabled = true\nevents = \"some\"\nsink = \"file\"\nqueue_size = 0\naudit_map_file = \"/nonexistent\"");
        let keys: Vec<_> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "audit.events",
                "audit.file",
                "audit.audit_map_file",
                "audit.queue_size"
            ]
        );
    }
}
