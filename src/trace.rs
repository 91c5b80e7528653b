//! OpenTelemetry traces: the spans stonegate makes for a request and their
//! W3C trace context.
//!
//! The library only makes `tracing` spans, all with the target [`TARGET`]:
//! one per request (`stonegate.request`, with `outcome`, `audit_id`,
//! `cache.result`, `http.response.status_code`, `request_id`; never a token)
//! and its children: the cache lookup (`stonegate.cache`, with the local
//! decode, shared cache and Keystone validation of a miss inside it) and the
//! upstream call (`stonegate.upstream`). Exporting them is the process's
//! business: `stonegate serve` with `[tracing] otlp_endpoint` installs a
//! tracing-opentelemetry layer for that target (`server::otlp`); an embedder
//! may install their own. Without one the spans are disabled at their call
//! site (nothing is allocated) and every helper here is a no-op.
//!
//! [`set_parent`] makes a caller's `traceparent` the parent of the request
//! span; [`traceparent`] is the context to send on (to the upstream, to
//! Keystone), so the trace id exported is the one propagated.

pub mod settings;

use http::HeaderValue;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use settings::{Section, Settings};

/// The `tracing` target of every span stonegate exports.
pub const TARGET: &str = "stonegate::trace";

/// Makes the caller's W3C context (a well-formed `traceparent`, and its
/// `tracestate`) the remote parent of `span`; nothing when `span` is
/// disabled (no trace layer).
pub fn set_parent(
    span: &tracing::Span,
    traceparent: &HeaderValue,
    tracestate: Option<&HeaderValue>,
) {
    if span.is_disabled() {
        return;
    }
    let Some(cx) = parse(traceparent.as_bytes(), tracestate) else {
        return;
    };
    span.set_parent(opentelemetry::Context::new().with_remote_span_context(cx));
}

/// The `traceparent` that names `span` as the parent of a call made in it
/// (`00-<trace id>-<span id>-<flags>`); `None` when `span` is disabled or has
/// no OpenTelemetry context (no trace layer).
pub fn traceparent(span: &tracing::Span) -> Option<HeaderValue> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return None;
    }
    let text = format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    );
    HeaderValue::from_str(&text).ok()
}

/// The answer's status on `span` (`http.response.status_code`); a 5xx marks
/// it as an error.
pub fn record_status(span: &tracing::Span, status: http::StatusCode) {
    if span.is_disabled() {
        return;
    }
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}

/// A checked `traceparent` (see `request_id::is_traceparent`) as a remote
/// span context; the `tracestate` kept when it parses.
fn parse(b: &[u8], tracestate: Option<&HeaderValue>) -> Option<SpanContext> {
    let s = std::str::from_utf8(b).ok()?;
    let trace_id = TraceId::from_hex(s.get(3..35)?).ok()?;
    let span_id = SpanId::from_hex(s.get(36..52)?).ok()?;
    let flags = u8::from_str_radix(s.get(53..55)?, 16).ok()?;
    let state = tracestate
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<TraceState>().ok())
        .unwrap_or_default();
    let cx = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags & TraceFlags::SAMPLED.to_u8()),
        true,
        state,
    );
    cx.is_valid().then_some(cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_parses_to_its_ids_and_sampled_flag() {
        let tp = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse(tp, None).unwrap();
        assert_eq!(
            cx.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
        let unsampled = parse(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        );
        assert!(!unsampled.unwrap().is_sampled());
    }

    #[test]
    fn without_a_trace_layer_nothing_is_made() {
        let span = tracing::info_span!(target: TARGET, "stonegate.request");
        let tp =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        set_parent(&span, &tp, None);
        assert!(span.is_disabled());
        assert_eq!(traceparent(&span), None);
    }
}
