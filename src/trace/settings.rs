//! `[tracing]`: where spans are exported, as written ([`Section`]) and
//! checked ([`Settings`]).

use serde::Deserialize;

use crate::settings::{problem, Problem};

/// `[tracing]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The OTLP/HTTP traces URL (`http://collector:4318/v1/traces`; a URL
    /// without a path gets `/v1/traces`). Unset: no spans are exported.
    pub otlp_endpoint: Option<String>,
    /// The share of new traces sampled, 0.0 to 1.0 (default 1.0); a caller's
    /// `traceparent` decides for its own trace (parent-based).
    pub sample_ratio: Option<f64>,
    /// `service.name` of the exported resource (default `stonegate`).
    pub service_name: Option<String>,
    /// Spans waiting for export at most (default 2048); more are dropped
    /// and counted.
    pub queue_size: Option<usize>,
}

/// `[tracing]` checked: set only when spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The OTLP/HTTP traces URL.
    pub endpoint: http::Uri,
    /// The share of new traces sampled.
    pub sample_ratio: f64,
    /// `service.name`.
    pub service_name: String,
    /// The bound of the export queue.
    pub queue_size: usize,
}

/// Spans queued for export when `queue_size` is not set.
pub const DEFAULT_QUEUE_SIZE: usize = 2048;

impl Section {
    /// Checks the section (`None` without `otlp_endpoint`), recording
    /// problems in `p`.
    pub fn build(&self, p: &mut Vec<Problem>) -> Option<Settings> {
        let Some(url) = &self.otlp_endpoint else {
            for (set, key) in [
                (self.sample_ratio.is_some(), "tracing.sample_ratio"),
                (self.service_name.is_some(), "tracing.service_name"),
                (self.queue_size.is_some(), "tracing.queue_size"),
            ] {
                if set {
                    problem(
                        p,
                        key,
                        "has no effect without tracing.otlp_endpoint: set it, or remove this key",
                    );
                }
            }
            return None;
        };
        let endpoint = match url.parse::<http::Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
                if matches!(u.path(), "" | "/") {
                    let base = url.trim_end_matches('/');
                    format!("{base}/v1/traces").parse().unwrap_or(u)
                } else {
                    u
                }
            }
            _ => {
                problem(
                    p,
                    "tracing.otlp_endpoint",
                    "must be an http:// or https:// URL, e.g. \"http://127.0.0.1:4318/v1/traces\"",
                );
                return None;
            }
        };
        let sample_ratio = self.sample_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            problem(p, "tracing.sample_ratio", "must be between 0.0 and 1.0");
        }
        let queue_size = self.queue_size.unwrap_or(DEFAULT_QUEUE_SIZE);
        if queue_size == 0 {
            problem(p, "tracing.queue_size", "must be at least 1");
        }
        Some(Settings {
            endpoint,
            sample_ratio,
            service_name: self
                .service_name
                .clone()
                .unwrap_or_else(|| "stonegate".into()),
            queue_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(toml: &str) -> (Option<Settings>, Vec<String>) {
        let s: Section = toml::from_str(toml).unwrap();
        let mut p = Vec::new();
        let built = s.build(&mut p);
        (built, p.into_iter().map(|p| p.key).collect())
    }

    #[test]
    fn the_endpoint_is_an_http_url_and_gets_the_traces_path() {
        let (s, p) = build("otlp_endpoint = \"http://127.0.0.1:4318\"");
        assert!(p.is_empty(), "{p:?}");
        let s = s.unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!((s.sample_ratio, s.queue_size), (1.0, DEFAULT_QUEUE_SIZE));
        let (s, _) = build("otlp_endpoint = \"https://c.example/otlp/traces\"");
        assert_eq!(s.unwrap().endpoint, "https://c.example/otlp/traces");
        assert_eq!(
            build("otlp_endpoint = \"c:4318\"").1,
            ["tracing.otlp_endpoint"]
        );
    }

    #[test]
    fn bad_values_and_keys_without_an_endpoint_are_named() {
        let (_, p) = build("otlp_endpoint = \"http://c:4318\"\nsample_ratio = 1.5\nqueue_size = 0");
        assert_eq!(p, ["tracing.sample_ratio", "tracing.queue_size"]);
        let (s, p) = build("sample_ratio = 0.5");
        assert!(s.is_none());
        assert_eq!(p, ["tracing.sample_ratio"]);
        assert_eq!(build("").0, None);
    }
}
