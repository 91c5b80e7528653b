//! OpenTelemetry traces (`[tracing] otlp_endpoint`): an in-process OTLP/HTTP
//! collector (axum, decoding `ExportTraceServiceRequest` with prost) receives
//! the spans of real-Keystone-token requests through the sidecar and through
//! forward-auth. A recorder in front of the real Keystone keeps the
//! `traceparent` of each validation call, and the echo upstream the one it
//! got: both name exported spans of the caller's trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{body::Bytes, extract::State, http::HeaderMap, routing::any, routing::post, Router};
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest, common::v1::any_value, trace::v1::Span,
};
use prost::Message;

use crate::harness::{bind_fresh_tokio, Keystone, Stonegate, Upstream};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// What the collector received: every body as sent, and the spans.
#[derive(Default)]
struct Received {
    bodies: Vec<Bytes>,
    spans: Vec<Span>,
    service_names: Vec<String>,
}

struct Collector {
    url: String,
    got: Arc<Mutex<Received>>,
}

impl Collector {
    async fn start() -> Self {
        let got = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(collect))
            .with_state(got.clone());
        let listener = bind_fresh_tokio();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Collector { url, got }
    }

    /// The spans received so far.
    fn spans(&self) -> Vec<Span> {
        self.got.lock().unwrap().spans.clone()
    }

    /// Waits until `done` holds of the spans received (10 s at most).
    async fn wait(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} among {:#?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn collect(
    State(got): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    assert_eq!(headers["content-type"], "application/x-protobuf");
    let req = ExportTraceServiceRequest::decode(body.clone()).expect("an OTLP protobuf body");
    let mut got = got.lock().unwrap();
    got.bodies.push(body);
    for rs in req.resource_spans {
        for a in rs.resource.iter().flat_map(|r| &r.attributes) {
            if a.key == "service.name" {
                got.service_names.push(text(a.value.as_ref()));
            }
        }
        for ss in rs.scope_spans {
            got.spans.extend(ss.spans);
        }
    }
    (
        [("content-type", "application/x-protobuf")],
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::default()
            .encode_to_vec(),
    )
}

fn text(v: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| text(a.value.as_ref()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one span named `name` of trace `trace_id`.
fn one<'a>(spans: &'a [Span], trace_id: &str, name: &str) -> &'a Span {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && hex(&s.trace_id) == trace_id)
        .collect();
    assert_eq!(found.len(), 1, "{name} spans of {trace_id}: {found:#?}");
    found[0]
}

fn has(spans: &[Span], trace_id: &str, name: &str) -> bool {
    spans
        .iter()
        .any(|s| s.name == name && hex(&s.trace_id) == trace_id)
}

/// `(trace id, parent id)` of a `traceparent`.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<_> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// A pass-through in front of the real Keystone that keeps the
/// `traceparent` of each token validation (`GET /v3/auth/tokens`); it
/// writes its own address for Keystone's in the answers, so the catalog's
/// identity endpoint is the recorder too.
struct Recorder {
    url: String,
    validations: Arc<Mutex<Vec<Option<String>>>>,
}

impl Recorder {
    async fn start(ks: &Keystone) -> Self {
        #[derive(Clone)]
        struct S {
            to: String,
            me: Arc<Mutex<String>>,
            validations: Arc<Mutex<Vec<Option<String>>>>,
        }
        async fn pass(State(s): State<S>, req: axum::extract::Request) -> axum::response::Response {
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            if parts.method == "GET" && parts.uri.path().ends_with("/auth/tokens") {
                let tp = parts.headers.get("traceparent");
                let tp = tp.map(|v| v.to_str().unwrap().to_owned());
                s.validations.lock().unwrap().push(tp);
            }
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            let mut out = crate::harness::client()
                .request(parts.method.clone(), format!("{}{pq}", s.to))
                .body(body);
            for (k, v) in &parts.headers {
                if k != "host" && k != "content-length" {
                    out = out.header(k, v);
                }
            }
            let resp = out.send().await.unwrap();
            let mut answer = axum::response::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if k != "transfer-encoding" && k != "content-length" {
                    answer = answer.header(k, v);
                }
            }
            // The catalog's identity endpoints (which stonegate validates
            // with) point here too.
            let body = String::from_utf8_lossy(&resp.bytes().await.unwrap())
                .replace(&s.to, &s.me.lock().unwrap());
            answer.body(axum::body::Body::from(body)).unwrap()
        }
        let validations = Arc::new(Mutex::new(Vec::new()));
        // The recorder stands at Keystone's origin; its path stays.
        let u: http::Uri = ks.auth_url.parse().unwrap();
        let to = format!("http://{}", u.authority().unwrap());
        let prefix = u.path().trim_end_matches('/').to_owned();
        let listener = bind_fresh_tokio();
        let me = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{me}{prefix}");
        let state = S {
            to,
            me: Arc::new(Mutex::new(me)),
            validations: validations.clone(),
        };
        let app = Router::new().fallback(any(pass)).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { url, validations }
    }
}

#[tokio::test]
async fn spans_of_a_real_token_request_reach_the_collector_in_the_callers_trace_without_the_token()
{
    let ks = Keystone::from_env();
    let recorder = Recorder::start(&ks).await;
    let via = ks.with_auth_url(&recorder.url);
    let collector = Collector::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&via)
        .upstream(&up)
        .extra_toml(&format!(
            "[tracing]\notlp_endpoint = \"{}\"\nservice_name = \"sg-under-test\"\n",
            collector.url
        ))
        .extra_toml("[[forward_auth]]\nflavor = \"traefik\"\npath = \"/_traefik\"\n")
        .start()
        .await;
    let token = ks.demo_token().await;
    let audit_id = ks.validate(&token).await["audit_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let before = recorder.validations.lock().unwrap().len();

    // 1. Through the sidecar, in the caller's trace: a cache miss.
    let resp = sg
        .get(
            "/v2.1/servers",
            &[("X-Auth-Token", &token), ("traceparent", caller.as_str())],
        )
        .await;
    assert_eq!(resp.status(), 200);
    let upstream_tp = up
        .last()
        .header("traceparent")
        .expect("a traceparent upstream");
    let spans = collector
        .wait("upstream span", |s| has(s, TRACE_ID, "stonegate.upstream"))
        .await;
    let request = one(&spans, TRACE_ID, "stonegate.request");
    let cache = one(&spans, TRACE_ID, "stonegate.cache");
    let keystone = one(&spans, TRACE_ID, "stonegate.keystone_validation");
    let upstream = one(&spans, TRACE_ID, "stonegate.upstream");
    // Parent/child links: caller -> request -> {cache -> keystone, upstream}.
    assert_eq!(hex(&request.parent_span_id), CALLER_SPAN);
    assert_eq!(cache.parent_span_id, request.span_id);
    assert_eq!(keystone.parent_span_id, cache.span_id);
    assert_eq!(upstream.parent_span_id, request.span_id);
    // What was propagated names exported spans of the caller's trace.
    assert_eq!(
        ids(&upstream_tp),
        (TRACE_ID.to_owned(), hex(&upstream.span_id))
    );
    let validations = recorder.validations.lock().unwrap()[before..].to_vec();
    let keystone_tp = validations
        .iter()
        .flatten()
        .find(|tp| tp.contains(TRACE_ID))
        .unwrap_or_else(|| panic!("no validation call in the caller's trace: {validations:?}"));
    assert_eq!(
        ids(keystone_tp),
        (TRACE_ID.to_owned(), hex(&keystone.span_id))
    );
    // Attributes: outcome, audit id, cache result, status.
    assert_eq!(attr(request, "outcome").as_deref(), Some("forwarded"));
    assert_eq!(attr(request, "audit_id"), Some(audit_id.clone()));
    assert_eq!(attr(request, "cache.result").as_deref(), Some("miss"));
    assert_eq!(attr(cache, "cache.result").as_deref(), Some("miss"));
    assert_eq!(
        attr(request, "http.response.status_code").as_deref(),
        Some("200")
    );

    // 2. Again, without a traceparent: a new trace, a cache hit, no Keystone.
    let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
    assert_eq!(resp.status(), 200);
    let (new_trace, _) = ids(&up
        .last()
        .header("traceparent")
        .expect("a new trace upstream"));
    assert_ne!(new_trace, TRACE_ID);
    let spans = collector
        .wait("second upstream span", |s| {
            has(s, &new_trace, "stonegate.upstream")
        })
        .await;
    let request = one(&spans, &new_trace, "stonegate.request");
    assert!(request.parent_span_id.is_empty(), "a root span");
    assert_eq!(attr(request, "cache.result").as_deref(), Some("hit"));
    assert!(!has(&spans, &new_trace, "stonegate.keystone_validation"));

    // 3. Forward-auth makes its spans too (a refusal, then a decision).
    let fa_trace = "0af7651916cd43dd8448eb211c80319c";
    for (tok, status, outcome) in [
        ("garbage", 401, "unauthorized"),
        (token.as_str(), 200, "forwarded"),
    ] {
        let resp = crate::harness::client()
            .get(sg.url("/_traefik"))
            .header("X-Auth-Token", tok)
            .header("traceparent", format!("00-{fa_trace}-b7ad6b7169203331-01"))
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", "/v2.1/servers")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        let spans = collector
            .wait("forward-auth span", |s| {
                s.iter().any(|s| {
                    hex(&s.trace_id) == fa_trace
                        && attr(s, "http.response.status_code") == Some(status.to_string())
                })
            })
            .await;
        let span = spans
            .iter()
            .find(|s| {
                hex(&s.trace_id) == fa_trace
                    && attr(s, "http.response.status_code") == Some(status.to_string())
            })
            .unwrap();
        assert_eq!(span.name, "stonegate.request");
        assert_eq!(attr(span, "door").as_deref(), Some("forward_auth"));
        assert_eq!(hex(&span.parent_span_id), "b7ad6b7169203331");
        assert_eq!(attr(span, "outcome").as_deref(), Some(outcome), "{span:#?}");
    }

    // Never a token in what was exported; the resource names the service.
    {
        let got = collector.got.lock().unwrap();
        assert!(!got.service_names.is_empty());
        for body in &got.bodies {
            let text = String::from_utf8_lossy(body);
            assert!(!text.contains(&token), "a token in the export");
            assert!(
                !text.contains(&token[..20]),
                "part of a token in the export"
            );
        }
        assert!(got.service_names.iter().all(|n| n == "sg-under-test"));
    }
    let exported = sg
        .metric("stonegate_trace_spans_total{result=\"exported\"}")
        .await;
    assert!(exported >= 8.0, "{exported} spans counted as exported");
}

#[tokio::test]
async fn sampling_follows_the_callers_decision_and_the_ratio_for_new_traces() {
    let ks = Keystone::from_env();
    let collector = Collector::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!(
            "[tracing]\notlp_endpoint = \"{}\"\nsample_ratio = 0.0\n",
            collector.url
        ))
        .start()
        .await;
    let token = ks.demo_token().await;
    let sampled = "11111111111111111111111111111111";
    let unsampled = "22222222222222222222222222222222";
    for tp in [
        format!("00-{unsampled}-00f067aa0ba902b7-00"),
        String::new(),
        format!("00-{sampled}-00f067aa0ba902b7-01"),
    ] {
        let mut h = vec![("X-Auth-Token", token.as_str())];
        if !tp.is_empty() {
            h.push(("traceparent", tp.as_str()));
        }
        assert_eq!(sg.get("/v2.1/servers", &h).await.status(), 200);
        if !tp.is_empty() {
            // The caller's trace goes on, sampled or not, with its flag.
            let seen = up.last().header("traceparent").unwrap();
            assert_eq!(ids(&seen).0, ids(&tp).0);
            assert_eq!(&seen[53..], &tp[53..]);
        }
    }
    let spans = collector
        .wait("the sampled trace", |s| {
            has(s, sampled, "stonegate.upstream")
        })
        .await;
    // Exports come in batches: what arrived with the sampled trace is all.
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == sampled),
        "{spans:#?}"
    );
}

#[tokio::test]
async fn the_envoy_grpc_door_makes_its_request_span_in_the_callers_trace() {
    use crate::envoy_grpc::{check, client, denied_response, envoy_check, ok_response};
    let ks = Keystone::from_env();
    let collector = Collector::start().await;
    let up = Upstream::echo().await;
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .auth_listen()
        .extra_toml(&format!(
            "[tracing]\notlp_endpoint = \"{}\"\n\n[[forward_auth]]\nflavor = \"envoy-grpc\"\n",
            collector.url
        ))
        .start()
        .await;
    let mut c = client(&format!("http://{}", sg.auth.expect("auth_listen bound"))).await;
    let token = ks.demo_token().await;
    let audit_id = ks.validate(&token).await["audit_ids"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let trace = "5b8efff798038103d269b633813fc60c";
    let caller = format!("00-{trace}-eee19b7ec3c1b174-01");
    for (tok, status, outcome) in [
        ("garbage", 401, "unauthorized"),
        (token.as_str(), 200, "forwarded"),
    ] {
        let answer = check(
            &mut c,
            envoy_check(
                "GET",
                "/v2.1/servers",
                &[("x-auth-token", tok), ("traceparent", caller.as_str())],
            ),
        )
        .await;
        let status_text = status.to_string();
        let spans = collector
            .wait("envoy-grpc span", |s| {
                s.iter().any(|s| {
                    hex(&s.trace_id) == trace
                        && attr(s, "http.response.status_code").as_deref() == Some(&status_text)
                })
            })
            .await;
        let span = spans
            .iter()
            .find(|s| {
                hex(&s.trace_id) == trace
                    && attr(s, "http.response.status_code").as_deref() == Some(&status_text)
            })
            .unwrap();
        assert_eq!(span.name, "stonegate.request");
        assert_eq!(attr(span, "door").as_deref(), Some("envoy_grpc"));
        assert_eq!(hex(&span.parent_span_id), "eee19b7ec3c1b174");
        assert_eq!(attr(span, "outcome").as_deref(), Some(outcome), "{span:#?}");
        if status == 200 {
            assert_eq!(attr(span, "audit_id"), Some(audit_id.clone()));
            // The traceparent Envoy forwards names this span.
            let ok = ok_response(&answer);
            let tp = ok
                .headers
                .iter()
                .filter_map(|o| o.header.as_ref())
                .find(|h| h.key == "traceparent")
                .map(|h| h.value.clone())
                .expect("a traceparent for the upstream");
            assert_eq!(ids(&tp), (trace.to_owned(), hex(&span.span_id)));
        } else {
            denied_response(&answer, tonic::Code::Unauthenticated, 401);
        }
    }
    let got = collector.got.lock().unwrap();
    for body in &got.bodies {
        assert!(
            !String::from_utf8_lossy(body).contains(&token),
            "a token in the export"
        );
    }
}

#[tokio::test]
async fn a_collector_that_is_down_drops_and_counts_spans_and_requests_go_on() {
    let ks = Keystone::from_env();
    let up = Upstream::echo().await;
    // Nothing listens there: every post fails.
    let down = crate::harness::free_addr();
    let sg = Stonegate::builder()
        .keystone(&ks)
        .upstream(&up)
        .extra_toml(&format!("[tracing]\notlp_endpoint = \"http://{down}\"\n"))
        .start()
        .await;
    let token = ks.demo_token().await;
    for _ in 0..5 {
        let resp = sg.get("/v2.1/servers", &[("X-Auth-Token", &token)]).await;
        assert_eq!(resp.status(), 200);
    }
    // Each request makes at least its request and upstream spans.
    let deadline = Instant::now() + Duration::from_secs(15);
    let dropped = loop {
        let d = sg
            .metric("stonegate_trace_spans_total{result=\"dropped\"}")
            .await;
        if d >= 10.0 || Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(dropped >= 10.0, "dropped {dropped}");
    assert_eq!(
        sg.metric("stonegate_trace_spans_total{result=\"exported\"}")
            .await,
        0.0
    );
    let log = sg.log_with("the OTLP export failed").await;
    // Logged once for the stretch, not per batch.
    assert_eq!(log.matches("the OTLP export failed").count(), 1, "{log}");
}
