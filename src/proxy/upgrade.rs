//! Protocol upgrades (`Connection: upgrade` + `Upgrade`, RFC 9110 §7.8) on an
//! allowlist, and the tunnels they open.
//!
//! After a `101` the bytes flow unparsed, so an upgrade is a hole in the
//! boundary unless it is narrow: only a protocol on the allowlist
//! (`[proxy] upgrade_protocols`, default `websocket`) is forwarded, only on
//! an HTTP/1.1 request, only for a confirmed identity or a public route that
//! opts in (`upgrade = true`). Protocols that carry HTTP requests (`h2c`,
//! `h2`, `HTTP/*`) are never allowed: a tunnel of HTTP is request smuggling.
//! Any other `Upgrade` is dropped and the request forwarded as a plain one
//! (what nginx does when upgrades are not configured). The upstream's `101`
//! must name exactly the protocol forwarded, or the client gets 502 and the
//! upstream connection is closed. A tunnel ends when its token expires, after
//! `tunnel_max_lifetime` at the latest (the token was checked once, at the
//! upgrade: revoking it does not close the tunnel), or after
//! `tunnel_idle_timeout` without a byte either way.

use std::{sync::Arc, time::Duration};

use http::{header, HeaderMap, HeaderValue, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::metrics::Metrics;

/// Upgrade settings: the allowlist and the tunnels' bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    protocols: Vec<Protocol>,
    /// Longest life of a tunnel; it is closed then, whatever flows.
    pub max_lifetime: Duration,
    /// A tunnel with no byte in either direction for this long is closed.
    pub idle_timeout: Option<Duration>,
}

impl Default for Settings {
    /// `websocket` only, one hour at most, five idle minutes.
    fn default() -> Self {
        Self {
            protocols: vec![Protocol {
                name: "websocket".into(),
                version: None,
            }],
            max_lifetime: Duration::from_secs(3600),
            idle_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// One allowlist entry: `name` allows every version, `name/version` that one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Protocol {
    /// Lower-case protocol name.
    name: String,
    /// Lower-case version, when the entry names one.
    version: Option<String>,
}

impl Settings {
    /// Settings from the configured protocol names; `Err` says what is wrong
    /// with the list (for `proxy.upgrade_protocols`).
    pub fn new(
        protocols: &[String],
        max_lifetime: Duration,
        idle_timeout: Option<Duration>,
    ) -> Result<Self, String> {
        let mut list = Vec::with_capacity(protocols.len());
        for p in protocols {
            let (name, version) = split(p);
            let token_ok = |s: &str| !s.is_empty() && s.bytes().all(is_tchar);
            if !token_ok(name) || !version.is_none_or(token_ok) {
                return Err(format!(
                    "{p:?} is not a protocol name (RFC 9110 §7.8: name or name/version, e.g. \"websocket\")"
                ));
            }
            if carries_http(name) {
                return Err(format!(
                    "{p:?} carries HTTP requests: a tunnel of it would pass requests to the upstream \
                     unchecked; remove it (h2c, h2 and HTTP/* are never forwarded)"
                ));
            }
            list.push(Protocol {
                name: name.to_ascii_lowercase(),
                version: version.map(str::to_ascii_lowercase),
            });
        }
        Ok(Self {
            protocols: list,
            max_lifetime,
            idle_timeout,
        })
    }

    /// The protocol to forward for a request: the first protocol of its
    /// `Upgrade` list that is allowed, when the request is HTTP/1.1 and its
    /// `Connection` names `upgrade`. `None`: forward it as a plain request.
    pub fn select(&self, version: Version, headers: &HeaderMap) -> Option<HeaderValue> {
        if version != Version::HTTP_11 || !headers.contains_key(header::UPGRADE) {
            return None;
        }
        let wants = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        if !wants {
            return None;
        }
        headers
            .get_all(header::UPGRADE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|offered| self.allows(offered))
            .and_then(|p| HeaderValue::from_str(p).ok())
    }

    fn allows(&self, offered: &str) -> bool {
        let (name, version) = split(offered);
        if name.is_empty() || carries_http(name) {
            return false;
        }
        self.protocols.iter().any(|p| {
            p.name.eq_ignore_ascii_case(name)
                && match (&p.version, version) {
                    (None, _) => true,
                    (Some(want), Some(v)) => want.eq_ignore_ascii_case(v),
                    (Some(_), None) => false,
                }
        })
    }
}

/// Whether a `101`'s headers switch to exactly `asked` (one protocol, the
/// same name and version, case-insensitively, with `Connection: upgrade`).
pub fn switches_to(headers: &HeaderMap, asked: &HeaderValue) -> bool {
    let mut upgrade = headers.get_all(header::UPGRADE).iter();
    let (Some(answered), None) = (upgrade.next(), upgrade.next()) else {
        return false;
    };
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade
        && answered
            .to_str()
            .is_ok_and(|a| a.trim().as_bytes().eq_ignore_ascii_case(asked.as_bytes()))
}

/// How a tunnel ended (`stonegate_proxy_tunnels_total{end}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed it.
    Closed,
    /// `tunnel_max_lifetime` or the token's expiry was reached.
    Lifetime,
    /// Nothing flowed for `tunnel_idle_timeout`.
    Idle,
    /// A read or write failed, or an upgrade did not complete.
    Error,
}

impl End {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Lifetime => "lifetime",
            End::Idle => "idle",
            End::Error => "error",
        }
    }
}

/// Runs a tunnel between the client's and the upstream's upgraded
/// connections until both close or a bound is reached (`lifetime`: at most
/// `max_lifetime`, less when the token expires sooner); both are closed then.
pub async fn tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    lifetime: Duration,
    settings: Arc<Settings>,
    metrics: Metrics,
) {
    let deadline = tokio::time::Instant::now() + lifetime.min(settings.max_lifetime);
    metrics.tunnels_open.inc();
    let end = match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            match tokio::time::timeout_at(
                deadline,
                relay(
                    TokioIo::new(client),
                    TokioIo::new(upstream),
                    settings.idle_timeout,
                ),
            )
            .await
            {
                Ok(end) => end,
                Err(_) => End::Lifetime,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            End::Error
        }
    };
    metrics.tunnels_open.dec();
    metrics.tunnel_ended(end.as_str());
    tracing::debug!(end = end.as_str(), "tunnel closed");
}

const BUF: usize = 8 * 1024;

/// Copies both ways; a side's EOF is passed on as a write shutdown. An idle
/// timeout counts from the last byte read or written in either direction.
async fn relay<A, B>(a: A, b: B, idle: Option<Duration>) -> End
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let (mut abuf, mut bbuf) = (vec![0u8; BUF], vec![0u8; BUF]);
    let (mut a_open, mut b_open) = (true, true);
    // Far enough to never fire when there is no idle timeout.
    let idle_for = idle.unwrap_or(Duration::from_secs(365 * 24 * 3600));
    let timer = tokio::time::sleep(idle_for);
    tokio::pin!(timer);
    while a_open || b_open {
        let step = tokio::select! {
            () = &mut timer => return End::Idle,
            r = ar.read(&mut abuf), if a_open => match r {
                Ok(0) => { a_open = false; bw.shutdown().await }
                Ok(n) => write_within(&mut bw, &abuf[..n], idle_for).await,
                Err(e) => Err(e),
            },
            r = br.read(&mut bbuf), if b_open => match r {
                Ok(0) => { b_open = false; aw.shutdown().await }
                Ok(n) => write_within(&mut aw, &bbuf[..n], idle_for).await,
                Err(e) => Err(e),
            },
        };
        match step {
            Ok(()) => timer.as_mut().reset(tokio::time::Instant::now() + idle_for),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return End::Idle,
            Err(_) => return End::Error,
        }
    }
    End::Closed
}

/// A write that makes no progress for `idle` is an idle tunnel too.
async fn write_within<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    idle: Duration,
) -> std::io::Result<()> {
    match tokio::time::timeout(idle, w.write_all(data)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

fn split(p: &str) -> (&str, Option<&str>) {
    match p.trim().split_once('/') {
        Some((n, v)) => (n, Some(v)),
        None => (p.trim(), None),
    }
}

/// Protocols whose tunnel would carry HTTP requests past stonegate.
fn carries_http(name: &str) -> bool {
    ["h2c", "h2", "http", "https", "h3"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn list(p: &[&str]) -> Result<Settings, String> {
        let p: Vec<String> = p.iter().map(|s| (*s).to_owned()).collect();
        Settings::new(&p, Duration::from_secs(1), None)
    }

    #[test]
    fn protocols_that_carry_http_can_never_be_listed() {
        for bad in ["h2c", "H2C", "h2c/1", "h2", "HTTP/2.0", "http", "h3"] {
            let e = list(&["websocket", bad]).unwrap_err();
            assert!(e.contains("never forwarded"), "{bad}: {e}");
        }
        for bad in ["", "web socket", "ws/", "/13"] {
            assert!(list(&[bad]).is_err(), "{bad:?}");
        }
        assert!(list(&[]).is_ok(), "an empty list turns upgrades off");
        assert!(list(&["websocket", "foo/2"]).is_ok());
    }

    #[test]
    fn select_forwards_the_first_allowed_protocol_of_an_http11_upgrade() {
        let s = Settings::default();
        let up = |c: &str, u: &str| {
            s.select(
                Version::HTTP_11,
                &headers(&[("connection", c), ("upgrade", u)]),
            )
        };
        assert_eq!(up("Upgrade", "websocket").unwrap(), "websocket");
        assert_eq!(up("keep-alive, UPGRADE", "WebSocket").unwrap(), "WebSocket");
        assert_eq!(up("upgrade", "websocket/13").unwrap(), "websocket/13");
        assert_eq!(up("upgrade", "h2c, websocket").unwrap(), "websocket");
        for (c, u) in [
            ("upgrade", "h2c"),
            ("Upgrade, HTTP2-Settings", "h2c"),
            ("upgrade", "HTTP/2.0"),
            ("upgrade", "websocketx"),
            ("upgrade", "tunnel"),
            ("keep-alive", "websocket"),
            ("upgrade", ""),
        ] {
            assert_eq!(up(c, u), None, "{c} / {u}");
        }
        let h = headers(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert_eq!(s.select(Version::HTTP_2, &h), None);
        assert_eq!(s.select(Version::HTTP_10, &h), None);
        assert_eq!(
            s.select(Version::HTTP_11, &headers(&[("connection", "upgrade")])),
            None
        );

        let versioned = list(&["foo/2"]).unwrap();
        let h = |u: &str| headers(&[("connection", "upgrade"), ("upgrade", u)]);
        assert!(versioned.select(Version::HTTP_11, &h("FOO/2")).is_some());
        assert!(versioned.select(Version::HTTP_11, &h("foo/3")).is_none());
        assert!(versioned.select(Version::HTTP_11, &h("foo")).is_none());
        assert!(list(&[])
            .unwrap()
            .select(Version::HTTP_11, &h("websocket"))
            .is_none());
    }

    #[test]
    fn a_101_must_switch_to_exactly_the_protocol_asked_for() {
        let asked = HeaderValue::from_static("websocket");
        let ok = headers(&[("connection", "Upgrade"), ("upgrade", "WebSocket")]);
        assert!(switches_to(&ok, &asked));
        for bad in [
            headers(&[("connection", "upgrade"), ("upgrade", "h2c")]),
            headers(&[("connection", "upgrade"), ("upgrade", "websocket, h2c")]),
            headers(&[
                ("connection", "upgrade"),
                ("upgrade", "websocket"),
                ("upgrade", "h2c"),
            ]),
            headers(&[("connection", "upgrade")]),
            headers(&[("upgrade", "websocket")]),
        ] {
            assert!(!switches_to(&bad, &asked), "{bad:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn relay_ends_when_idle_and_when_both_sides_close() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let run = tokio::spawn(relay(client, upstream, Some(Duration::from_secs(5))));
        client_peer.write_all(b"hi").await.unwrap();
        let mut got = [0u8; 2];
        upstream_peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hi");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert_eq!(run.await.unwrap(), End::Idle);

        let (client, client_peer) = tokio::io::duplex(64);
        let (upstream, upstream_peer) = tokio::io::duplex(64);
        let run = tokio::spawn(relay(client, upstream, None));
        drop(client_peer);
        drop(upstream_peer);
        assert_eq!(run.await.unwrap(), End::Closed);
    }
}
