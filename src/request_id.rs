//! Request ids and W3C trace context: what ties one request's lines in every
//! log together (stonegate's access line, Keystone's, the upstream's).
//!
//! Every request gets an `X-OpenStack-Request-ID` as oslo.middleware's
//! `request_id` makes them: `req-` and a random UUID (version 4). An id the
//! caller sent is kept only when the caller is trusted (the front door
//! decides that, from `[request_id] trusted_peers`) and the id has exactly
//! oslo.middleware's form (`req-` + a lower-case hyphenated UUID); anything
//! else is dropped, never forwarded and never logged, and a fresh id is
//! generated. The id is set on the upstream request and on the response,
//! written in the access line, and sent on every Keystone call made for the
//! request ([`Correlation::scope`]), so Keystone logs it as the
//! `global_request_id` of its own request.
//!
//! `traceparent` and `tracestate` (W3C Trace Context) are carried on to the
//! upstream and to Keystone when `traceparent` is well-formed; a malformed
//! one is dropped together with its `tracestate`. When spans are exported
//! ([`crate::trace`]) the caller's context is the request span's parent and
//! the `traceparent` sent on names stonegate's span instead.
//!
//! Any front door takes the incoming headers with [`Correlation::take`] and
//! answers with [`Correlation::set_id_on`]; [`RequestId::generate`] is the one
//! place ids are made.

pub mod settings;

use std::{
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
};

use bytes::BytesMut;
use http::{header::HeaderName, HeaderMap, HeaderValue};

pub use settings::{Section, Settings};

/// `X-OpenStack-Request-ID`, oslo.middleware's request id header.
pub const HEADER: HeaderName = HeaderName::from_static("x-openstack-request-id");
/// W3C Trace Context `traceparent`.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// W3C Trace Context `tracestate`.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Length of `req-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
const ID_LEN: usize = 40;
/// Longest `tracestate` carried on (W3C: at least 512 characters must be
/// propagated; longer ones may be dropped).
const MAX_TRACESTATE: usize = 512;

/// How many request ids one buffer of [`IDS`] holds (4 KB).
const IDS_PER_BUFFER: usize = 100;

/// Bytes of the OS's generator one [`RANDOM`] refill draws: the next 64
/// UUIDs of the thread, for one `getrandom` call (a call per request was
/// 1 of the 8 system calls of a forwarded request; issue 16).
const RANDOM_BUFFER: usize = 16 * 64;

thread_local! {
    /// Where this thread's next request ids are written ([`RequestId::generate`]).
    static IDS: std::cell::RefCell<BytesMut> = std::cell::RefCell::new(BytesMut::new());
    /// This thread's next random UUID bytes, drawn from the OS's generator
    /// [`RANDOM_BUFFER`] at a time, and how many of them are used.
    static RANDOM: std::cell::RefCell<([u8; RANDOM_BUFFER], usize)> =
        const { std::cell::RefCell::new(([0; RANDOM_BUFFER], RANDOM_BUFFER)) };
}

/// One request's id (`req-<uuid4>`): cheap to clone (the bytes are shared),
/// always a valid header value, never anything a client wrote unchecked.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl RequestId {
    /// A new id, `req-` and a random (version 4) UUID, as
    /// `oslo_context.generate_request_id` makes them.
    pub fn generate() -> Self {
        let mut s = [0u8; ID_LEN];
        s[..4].copy_from_slice(b"req-");
        s[4..].copy_from_slice(&uuid4());
        // Clones only count references. The bytes are cut from a buffer of
        // the thread's holding the next ids, so a request costs no
        // allocation of its own (one per `IDS_PER_BUFFER` ids); a buffer is
        // freed when its last id is.
        let bytes = IDS.with_borrow_mut(|buf| {
            if buf.capacity() < ID_LEN {
                *buf = BytesMut::with_capacity(ID_LEN * IDS_PER_BUFFER);
            }
            buf.extend_from_slice(&s);
            buf.split_to(ID_LEN).freeze()
        });
        match HeaderValue::from_maybe_shared(bytes) {
            Ok(v) => Self(v),
            // Unreachable: the bytes are ASCII letters, digits and `-`.
            Err(_) => Self(HeaderValue::from_static(
                "req-00000000-0000-4000-8000-000000000000",
            )),
        }
    }

    /// `value` as an id when it has exactly oslo.middleware's form
    /// (`^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$`).
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        is_well_formed(value.as_bytes()).then(|| Self(value.clone()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Always ASCII: generated, or checked by `parse`.
        self.0.to_str().unwrap_or_default()
    }

    /// The id as a header value.
    pub fn header_value(&self) -> &HeaderValue {
        &self.0
    }
}

/// A random (version 4) UUID, lower-case and hyphenated, from the OS's
/// generator: request ids, and the ids of audit events and notifications.
/// The bytes are drawn 1 KB (64 UUIDs) at a time per thread, each used
/// once: the ids are unique and unguessable, not secret (an id is on every
/// response), so holding the next ones in memory gives nothing away.
pub fn uuid4() -> [u8; 36] {
    let mut b = [0u8; 16];
    RANDOM.with_borrow_mut(|(buf, used)| {
        if *used + b.len() > buf.len() {
            if getrandom::getrandom(buf).is_err() {
                // The id is no secret, only unique: without the OS
                // generator (never seen on Linux), the time and a process
                // counter, for this id only.
                static COUNTER: AtomicU64 = AtomicU64::new(0);
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos());
                b[..8].copy_from_slice(&(t as u64).to_be_bytes());
                b[8..].copy_from_slice(&n.to_be_bytes());
                return;
            }
            *used = 0;
        }
        b.copy_from_slice(&buf[*used..*used + 16]);
        *used += 16;
    });
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = [0u8; 36];
    let mut at = 0;
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s[at] = b'-';
            at += 1;
        }
        s[at] = HEX[usize::from(byte >> 4)];
        s[at + 1] = HEX[usize::from(byte & 0x0f)];
        at += 2;
    }
    s
}

/// [`uuid4`] as a `String`.
pub fn uuid4_string() -> String {
    uuid4().iter().map(|&b| char::from(b)).collect()
}

/// Whether `b` is `req-` + a lower-case hyphenated UUID (oslo.middleware's
/// `ID_FORMAT`; any version, as it accepts any).
fn is_well_formed(b: &[u8]) -> bool {
    b.len() == ID_LEN
        && b.starts_with(b"req-")
        && b[4..].iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => matches!(c, b'0'..=b'9' | b'a'..=b'f'),
        })
}

/// What one request carries on to the upstream and to Keystone: its id and
/// the caller's trace context (when well-formed).
#[derive(Clone, Debug)]
pub struct Correlation {
    id: RequestId,
    traceparent: Option<HeaderValue>,
    tracestate: Option<HeaderValue>,
}

tokio::task_local! {
    /// The correlation of the request this task is answering, for the
    /// Keystone calls made on its behalf.
    static CURRENT: Correlation;
}

impl Correlation {
    /// Removes every incoming `X-OpenStack-Request-ID`, `traceparent` and
    /// `tracestate` from `headers` and decides what the request carries on:
    /// the caller's id when `trust_incoming` and it is exactly one
    /// well-formed value, else a new one; the trace context when
    /// `traceparent` is one well-formed value.
    pub fn take(headers: &mut HeaderMap, trust_incoming: bool) -> Self {
        // One pass over the names finds which of the three came (usually
        // none): comparing a name is cheaper than hashing one to look it up.
        let (mut has_id, mut has_parent, mut has_state) = (false, false, false);
        for n in headers.keys() {
            has_id |= *n == HEADER;
            has_parent |= *n == TRACEPARENT;
            has_state |= *n == TRACESTATE;
        }
        let incoming = has_id.then(|| take_one(headers, &HEADER)).flatten();
        let id = incoming
            .filter(|_| trust_incoming)
            .and_then(|v| RequestId::parse(&v))
            .unwrap_or_else(RequestId::generate);
        let traceparent = has_parent
            .then(|| take_one(headers, &TRACEPARENT))
            .flatten()
            .filter(|v| is_traceparent(v.as_bytes()));
        let tracestate = has_state
            .then(|| take_tracestate(headers))
            .flatten()
            .filter(|_| traceparent.is_some());
        Self {
            id,
            traceparent,
            tracestate,
        }
    }

    /// A correlation with a new id and no trace context (for work no
    /// request asked for, or a door that has no headers).
    pub fn generate() -> Self {
        Self {
            id: RequestId::generate(),
            traceparent: None,
            tracestate: None,
        }
    }

    /// The request's id.
    pub fn id(&self) -> &RequestId {
        &self.id
    }

    /// Makes the caller's trace context the parent of the request's span
    /// (see [`crate::trace`]); nothing without one, or without a trace layer.
    pub fn adopt(&self, span: &tracing::Span) {
        if let Some(tp) = &self.traceparent {
            crate::trace::set_parent(span, tp, self.tracestate.as_ref());
        }
    }

    /// Sets the id and the trace context on a request going on (to the
    /// upstream, or to Keystone), replacing what was there. With a trace
    /// layer the `traceparent` names the current span (same trace id as the
    /// caller's, or a new trace), so the exported trace is the one
    /// propagated; without one, the caller's goes on unchanged.
    pub fn set_on(&self, headers: &mut HeaderMap) {
        self.set_id_on(headers);
        let ours = crate::trace::traceparent(&tracing::Span::current());
        if let Some(tp) = ours.as_ref().or(self.traceparent.as_ref()) {
            headers.insert(TRACEPARENT, tp.clone());
            if let Some(ts) = &self.tracestate {
                headers.insert(TRACESTATE, ts.clone());
            }
        }
    }

    /// Sets the id on an answer (replacing an upstream's own: the client
    /// gets the id every log of this request shows).
    pub fn set_id_on(&self, headers: &mut HeaderMap) {
        headers.insert(HEADER, self.id.0.clone());
    }

    /// Runs `f` with this correlation as the current one: the Keystone calls
    /// it makes carry the id and trace context ([`set_current_on`]).
    pub fn scope<F: Future>(self, f: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, f)
    }
}

/// Sets the current request's id and trace context (see
/// [`Correlation::scope`]) on `headers`; outside a request, nothing.
pub fn set_current_on(headers: &mut HeaderMap) {
    let _ = CURRENT.try_with(|c| c.set_on(headers));
}

/// The value of `name` when it came exactly once; every occurrence is removed.
fn take_one(headers: &mut HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut values = match headers.entry(name) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1,
        http::header::Entry::Vacant(_) => return None,
    };
    let first = values.next();
    match values.next() {
        None => first,
        Some(_) => None,
    }
}

/// Every `tracestate` line removed, and combined (W3C: lines are one
/// comma-separated list) when the result is printable and short enough.
fn take_tracestate(headers: &mut HeaderMap) -> Option<HeaderValue> {
    let mut values = match headers.entry(TRACESTATE) {
        http::header::Entry::Occupied(e) => e.remove_entry_mult().1,
        http::header::Entry::Vacant(_) => return None,
    };
    let first = values.next()?;
    let combined = match values.next() {
        None => first,
        Some(second) => {
            let mut joined = first.as_bytes().to_vec();
            for v in std::iter::once(second).chain(values) {
                joined.push(b',');
                joined.extend_from_slice(v.as_bytes());
            }
            HeaderValue::from_bytes(&joined).ok()?
        }
    };
    let b = combined.as_bytes();
    (b.len() <= MAX_TRACESTATE && b.iter().all(|c| (0x20..0x7f).contains(c))).then_some(combined)
}

/// Whether `b` is a W3C `traceparent`: `version-traceid-parentid-flags`, all
/// lower-case hex, version not `ff`, ids not all zero; version `00` exactly
/// 55 characters, a later version possibly followed by `-` and more.
fn is_traceparent(b: &[u8]) -> bool {
    let hex = |s: &[u8]| s.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |s: &[u8]| s.iter().any(|&c| c != b'0');
    if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&b[..2], &b[3..35], &b[36..52], &b[53..55]);
    let rest_ok = match version {
        b"00" => b.len() == 55,
        _ => b.len() == 55 || b[55] == b'-',
    };
    hex(version)
        && version != b"ff"
        && hex(trace_id)
        && nonzero(trace_id)
        && hex(parent_id)
        && nonzero(parent_id)
        && hex(flags)
        && rest_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const GOOD: &str = "req-0f8fad5b-d9cb-469f-a165-70867728950e";
    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn generated_ids_have_oslo_form_and_differ() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        for id in [&a, &b] {
            let s = id.as_str();
            assert!(is_well_formed(s.as_bytes()), "{s}");
            assert_eq!(&s[18..19], "4", "version 4: {s}");
            assert!("89ab".contains(&s[23..24]), "variant: {s}");
        }
    }

    #[test]
    fn ids_cut_from_one_buffer_stay_distinct_and_whole() {
        // More ids than a buffer holds: ids from an old buffer outlive it;
        // and more than one draw of random bytes makes, on two threads.
        let count = IDS_PER_BUFFER.max(RANDOM_BUFFER / 16) * 2 + 7;
        let other = std::thread::spawn(move || {
            (0..count)
                .map(|_| RequestId::generate())
                .collect::<Vec<_>>()
        });
        let mut ids: Vec<RequestId> = (0..count).map(|_| RequestId::generate()).collect();
        ids.extend(other.join().unwrap());
        let mut seen = std::collections::HashSet::new();
        for id in &ids {
            assert!(is_well_formed(id.as_str().as_bytes()), "{id}");
            assert!(seen.insert(id.as_str().to_owned()), "{id} twice");
        }
    }

    #[test]
    fn an_incoming_id_is_kept_only_when_trusted_and_exact() {
        let mut h = headers(&[("X-OpenStack-Request-ID", GOOD)]);
        let c = Correlation::take(&mut h, true);
        assert_eq!(c.id().as_str(), GOOD);
        assert!(h.is_empty(), "the incoming header is removed");

        let mut h = headers(&[("x-openstack-request-id", GOOD)]);
        assert_ne!(Correlation::take(&mut h, false).id().as_str(), GOOD);

        for bad in [
            "req-0F8FAD5B-D9CB-469F-A165-70867728950E",
            "req-0f8fad5b-d9cb-469f-a165-70867728950e0",
            "req-0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "req-0f8fad5b-d9cb-469f-a165-70867728950e, req-0f8fad5b-d9cb-469f-a165-70867728950f",
            "req-0f8fad5bxd9cb-469f-a165-70867728950e",
            "req-0f8fad5b-d9cb-469f-a165-70867728950g",
            " req-0f8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            let mut h = headers(&[("x-openstack-request-id", bad)]);
            let c = Correlation::take(&mut h, true);
            assert_ne!(c.id().as_str(), bad);
            assert!(is_well_formed(c.id().as_str().as_bytes()));
            assert!(h.is_empty());
        }
        // Two lines, even both well-formed: which would the upstream read?
        let mut h = headers(&[
            ("x-openstack-request-id", GOOD),
            ("x-openstack-request-id", GOOD),
        ]);
        assert_ne!(Correlation::take(&mut h, true).id().as_str(), GOOD);
        assert!(h.is_empty());
        // Non-UTF-8 bytes.
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes(b"req-\xff").unwrap());
        assert!(is_well_formed(
            Correlation::take(&mut h, true).id().as_str().as_bytes()
        ));
    }

    #[test]
    fn trace_context_is_carried_only_when_well_formed() {
        let mut h = headers(&[("traceparent", TP), ("tracestate", "congo=t61rcWkgMzE")]);
        let c = Correlation::take(&mut h, false);
        assert!(h.is_empty());
        let mut out = HeaderMap::new();
        c.set_on(&mut out);
        assert_eq!(out[TRACEPARENT], TP);
        assert_eq!(out[TRACESTATE], "congo=t61rcWkgMzE");
        assert_eq!(out[HEADER], c.id().as_str());

        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736,00f067aa0ba902b7-01",
        ] {
            let mut h = headers(&[("traceparent", bad), ("tracestate", "a=b")]);
            let mut out = HeaderMap::new();
            Correlation::take(&mut h, true).set_on(&mut out);
            assert!(h.is_empty());
            assert!(!out.contains_key(TRACEPARENT), "{bad}");
            assert!(!out.contains_key(TRACESTATE), "{bad}");
        }
        // A later version may carry more fields.
        assert!(is_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-ab"
        ));
        // tracestate lines are one list; an oversized one is dropped.
        let mut h = headers(&[
            ("traceparent", TP),
            ("tracestate", "a=1"),
            ("tracestate", "b=2"),
        ]);
        let mut out = HeaderMap::new();
        Correlation::take(&mut h, false).set_on(&mut out);
        assert_eq!(out[TRACESTATE], "a=1,b=2");
        let long = format!("a={}", "x".repeat(MAX_TRACESTATE));
        let mut h = headers(&[("traceparent", TP), ("tracestate", &long)]);
        let mut out = HeaderMap::new();
        Correlation::take(&mut h, false).set_on(&mut out);
        assert_eq!(out[TRACEPARENT], TP);
        assert!(!out.contains_key(TRACESTATE));
        // No traceparent: no tracestate either.
        let mut h = headers(&[("tracestate", "a=1")]);
        let mut out = HeaderMap::new();
        Correlation::take(&mut h, false).set_on(&mut out);
        assert!(!out.contains_key(TRACESTATE) && h.is_empty());
    }

    #[tokio::test]
    async fn keystone_calls_inside_the_scope_carry_the_correlation() {
        let mut h = headers(&[("traceparent", TP)]);
        let c = Correlation::take(&mut h, false);
        let id = c.id().clone();
        let seen = c
            .scope(async {
                tokio::task::yield_now().await;
                let mut out = HeaderMap::new();
                set_current_on(&mut out);
                out
            })
            .await;
        assert_eq!(seen[HEADER], id.as_str());
        assert_eq!(seen[TRACEPARENT], TP);
        let mut outside = HeaderMap::new();
        set_current_on(&mut outside);
        assert!(outside.is_empty());
    }
}
