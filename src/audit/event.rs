//! One request as the audit trail records it ([`Record`]), and the CADF
//! events and oslo.messaging notifications made from it, in the shapes
//! keystonemiddleware's `audit` filter and pycadf give them.
//!
//! The JSON is built by the background writer, not by the request: the
//! request only hands over a [`Record`].

use std::{net::IpAddr, sync::Arc};

use http::Method;
use serde_json::{json, Value};

use super::map::{Map, UNKNOWN};
use crate::{identity::Identity, identity::Scope, request_id::RequestId, token::Fingerprint};

/// What the audit trail keeps of one request, taken when it was decided.
#[derive(Debug, Clone)]
pub struct Record {
    /// The event's id (the request and response events share it, as in
    /// keystonemiddleware, where the response event is the request's, updated).
    pub id: String,
    /// The `correlation_id` tag.
    pub correlation_id: String,
    /// When the request was decided (the event's `eventTime`).
    pub time: time::OffsetDateTime,
    /// Request method.
    pub method: Method,
    /// The path as forwarded, and the query (`requestPath`).
    pub path: String,
    /// The query, if any.
    pub query: Option<String>,
    /// The request's `Host`.
    pub host: Option<String>,
    /// Whether the client connected over TLS.
    pub https: bool,
    /// The client's address (the TCP peer).
    pub client: Option<IpAddr>,
    /// The client's `User-Agent`.
    pub agent: Option<String>,
    /// Who the token is, when it was valid.
    pub identity: Option<Arc<Identity>>,
    /// `Confirmed`, `Invalid` (delay_auth_decision) or unknown (refused, public).
    pub identity_status: &'static str,
    /// The user token's fingerprint, never the token.
    pub token: Option<Fingerprint>,
    /// The request's `X-OpenStack-Request-ID`.
    pub request_id: RequestId,
}

/// `eventTime` / `reporterTime` as pycadf writes them (`timestamp.get_utc_now`).
pub(super) fn cadf_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}+0000",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// oslo.messaging's notification `timestamp` (`str(timeutils.utcnow())`).
pub(super) fn oslo_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

impl Record {
    /// The `audit.http.request` payload (outcome `pending`).
    pub fn request_event(&self, map: &Map, service_type: Option<&str>) -> Value {
        let (user_id, user_name, project_id) = match self.identity.as_deref() {
            Some(id) => (
                id.user.id.as_deref(),
                id.user.name.as_deref(),
                match &id.scope {
                    Scope::Project(p) => p.project.id.as_deref(),
                    _ => None,
                },
            ),
            None => (None, None, None),
        };
        let or_unknown = |v: Option<&str>| v.unwrap_or(UNKNOWN).to_owned();
        let token = self
            .token
            .map_or_else(String::new, |f| format!("sha256:{f}"));
        let mut host = json!({});
        if let Some(c) = self.client {
            host["address"] = json!(c.to_string());
        }
        if let Some(a) = &self.agent {
            host["agent"] = json!(a);
        }
        let catalog = self.identity.as_deref().and_then(|i| i.service_catalog());
        let mut request_path = self.path.clone();
        if let Some(q) = &self.query {
            request_path.push('?');
            request_path.push_str(q);
        }
        json!({
            "typeURI": "http://schemas.dmtf.org/cloud/audit/1.0/event",
            "eventType": "activity",
            "id": self.id,
            "eventTime": cadf_time(self.time),
            "action": map.action(&self.method, &self.path),
            "outcome": "pending",
            "observer": {"id": "target"},
            "initiator": {
                "id": or_unknown(user_id),
                "typeURI": "service/security/account/user",
                "name": or_unknown(user_name),
                "credential": {"token": token, "identity_status": self.identity_status},
                "host": host,
                "project_id": or_unknown(project_id),
                "request_id": self.request_id.as_str(),
            },
            "target": map.target(&self.path, self.host.as_deref(), self.https, catalog, service_type),
            "requestPath": request_path,
            "tags": [format!("correlation_id?value={}", self.correlation_id)],
        })
    }

    /// The `audit.http.response` payload: the request's event with its
    /// outcome (success for 2xx/3xx), the status as reason and the reporter
    /// step, as keystonemiddleware's `_process_response` makes it.
    pub fn response_event(
        &self,
        mut request: Value,
        status: u16,
        at: time::OffsetDateTime,
    ) -> Value {
        let outcome = if (200..400).contains(&status) {
            "success"
        } else {
            "failure"
        };
        request["outcome"] = json!(outcome);
        request["reason"] = json!({"reasonType": "HTTP", "reasonCode": status.to_string()});
        request["reporterchain"] = json!([{
            "role": "modifier",
            "reporterTime": cadf_time(at),
            "reporter": {"id": "target"},
        }]);
        request
    }
}

/// The notification oslo.messaging's `Notifier.info` sends for `payload`
/// (the message a `messagingv2` driver wraps in its envelope).
pub fn notification(
    publisher_id: &str,
    event_type: &str,
    payload: Value,
    message_id: &str,
    at: time::OffsetDateTime,
) -> Value {
    json!({
        "message_id": message_id,
        "publisher_id": publisher_id,
        "event_type": event_type,
        "priority": "INFO",
        "payload": payload,
        "timestamp": oslo_time(at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_pycadf_and_oslo_write_them() {
        let t = time::macros::datetime!(2026-12-02 01:09:27.143171 UTC);
        assert_eq!(cadf_time(t), "2026-12-02T01:09:27.143171+0000");
        assert_eq!(oslo_time(t), "2026-12-02 01:09:27.143171");
    }
}
