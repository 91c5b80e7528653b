//! The security boundary: which request headers are removed before anything
//! else happens, which are set from a validated identity, and what the proxy
//! changes on the way out. A request head goes through three pure steps:
//!
//! 1. [`sanitize`] (every front door, before anything reads the head): the
//!    client's `Connection` list is applied (RFC 9110 §7.6.1), then every
//!    identity header and every header whose name holds anything but
//!    letters, digits and `-` (an alias on a WSGI/CGI upstream) is removed;
//! 2. [`inject`] (every front door, from the decision's `AuthContext`):
//!    [`set_user`] / [`set_service`] (or `X-Identity-Status: Invalid`);
//! 3. [`forward_request`] (the sidecar proxy only): the fixed hop-by-hop list
//!    is removed and `Host` / `X-Forwarded-*` are set. Nothing the client
//!    named can remove a header stonegate set: its `Connection` list was
//!    spent in step 1, before anything was set.
//!
//! Removal matches names case-insensitively and with `_` read as `-`, so a
//! WSGI/CGI upstream (which sees `X_User_Id` and `X-User-Id` as the same
//! `HTTP_X_USER_ID`) cannot be fed a forged identity either.

use std::net::{IpAddr, Ipv4Addr};

use http::{header, HeaderMap, HeaderName, HeaderValue};

use crate::{
    identity::{Blocks, Identity, Named, Scope},
    validator::AuthContext,
};

/// Every identity header name (lower-case, dashes), user and service forms.
/// keystonemiddleware's `_all_auth_headers` plus `OpenStack-System-Scope`.
pub const IDENTITY_HEADERS: &[&str] = &[
    "x-identity-status",
    "x-service-identity-status",
    "x-service-catalog",
    "x-is-admin-project",
    "x-roles",
    "x-role",
    "x-user",
    "x-user-id",
    "x-user-name",
    "x-user-domain-id",
    "x-user-domain-name",
    "x-project-id",
    "x-project-name",
    "x-project-domain-id",
    "x-project-domain-name",
    "x-domain-id",
    "x-domain-name",
    "x-tenant",
    "x-tenant-id",
    "x-tenant-name",
    "openstack-system-scope",
    "x-service-roles",
    "x-service-user-id",
    "x-service-user-name",
    "x-service-user-domain-id",
    "x-service-user-domain-name",
    "x-service-project-id",
    "x-service-project-name",
    "x-service-project-domain-id",
    "x-service-project-domain-name",
    "x-service-domain-id",
    "x-service-domain-name",
    "x-service-openstack-system-scope",
];

/// True when `name` (any case, `_` or `-`) is an identity header.
pub fn is_identity_header(name: &str) -> bool {
    let b = name.as_bytes();
    // Cheap prefilter: every identity header starts with "x" or "openstack".
    if !(b.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'x'))
        || b.first().is_some_and(|c| c.eq_ignore_ascii_case(&b'o')))
    {
        return false;
    }
    IDENTITY_HEADERS.iter().any(|h| {
        h.len() == b.len()
            && h.bytes().zip(b).all(|(w, &c)| {
                w == if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
    })
}

/// Removes every identity header from `headers`; returns how many names were removed.
pub fn strip_identity(headers: &mut HeaderMap) -> usize {
    remove_names(headers, |n| is_identity_header(n.as_str()))
}

/// Removes every header whose name satisfies `doomed`; how many names.
/// Nothing is allocated when no name does (the usual request).
fn remove_names(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) -> usize {
    if !headers.keys().any(&doomed) {
        return 0;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| doomed(n)).cloned().collect();
    for name in &names {
        headers.remove(name);
    }
    names.len()
}

/// Hop-by-hop headers never forwarded (RFC 9110 §7.6.1, plus legacy ones).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    // HTTP/2's upgrade settings: hop-by-hop by definition (RFC 9113 §3.2.1),
    // named in `Connection` or not.
    "http2-settings",
];

/// The legacy `Proxy-Connection`, a client's second `Connection` list.
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `X-Forwarded-For`, `X-Forwarded-Host`, `X-Forwarded-Proto`: parsed once,
/// not on every request (a `&str` name is parsed, and a custom one copied
/// into a new allocation, at each insert).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Identity-Status`, `X-Service-Identity-Status`, `X-Service-Catalog`.
const X_IDENTITY_STATUS: HeaderName = HeaderName::from_static("x-identity-status");
const X_SERVICE_IDENTITY_STATUS: HeaderName = HeaderName::from_static("x-service-identity-status");
const X_SERVICE_CATALOG: HeaderName = HeaderName::from_static("x-service-catalog");

/// Headers a client's `Connection` token never removes: message framing
/// (removing it would change how the body is read on the next hop) and
/// `Host`, which stonegate forwards as the client sent it.
const FRAMING_AND_HOST: &[HeaderName] = &[
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

/// Request step 1, for every front door, before anything reads the head:
/// applies the client's `Connection` (and legacy `Proxy-Connection`) list,
/// then removes every identity header ([`strip_identity`]) and every header
/// whose name holds anything but letters, digits and `-` (`_` above all).
/// Returns how many names were removed in that second part (forged identity
/// or aliases), for the access log.
///
/// - A header the client names in `Connection` is removed now, before the
///   token is read or an identity set, so it is neither decided on nor
///   forwarded, and cannot remove anything stonegate sets later. `Host`,
///   `Content-Length` and `Transfer-Encoding` are never removed that way.
///   `Connection` keeps only its `upgrade` and `close` options (the upgrade
///   decision reads them); every other token is spent.
/// - A name with `_` (or `.`, `~`, ... which Apache httpd reads as `_`) is an
///   alias on a WSGI/CGI upstream, where `X_Auth_Token` and `X-Auth-Token`
///   are both `HTTP_X_AUTH_TOKEN` (likewise `X_Forwarded_For`,
///   `X_Storage_Token`, ...): stonegate would validate one and the upstream
///   might read the other. Stripped rather than refused, as nginx
///   (`underscores_in_headers off`, `ignore_invalid_headers on`) and Apache
///   httpd 2.4 already drop them.
pub fn sanitize(headers: &mut HeaderMap) -> usize {
    apply_connection(headers);
    // One pass over the names for both kinds.
    remove_names(headers, |n| {
        !is_plain_name(n) || is_identity_header(n.as_str())
    })
}

/// True when `name` holds only letters, digits and `-`: the names every
/// WSGI/CGI server maps to one `HTTP_*` variable of their own. (Apache httpd
/// maps any other byte to `_` or drops the header, nginx drops it by default.)
fn is_plain_name(name: &HeaderName) -> bool {
    name.as_str()
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Removes the headers named in `Connection` and `Proxy-Connection`, except
/// [`FRAMING_AND_HOST`] and `Upgrade` (the upgrade decision reads it, and the
/// proxy never forwards it unless it upgrades); `Connection` keeps only
/// `upgrade` and `close`.
fn apply_connection(headers: &mut HeaderMap) {
    if !headers.contains_key(header::CONNECTION) && !headers.contains_key(&PROXY_CONNECTION) {
        return;
    }
    let mut named: Vec<HeaderName> = Vec::new();
    let (mut upgrade, mut close) = (false, false);
    for list in [&header::CONNECTION, &PROXY_CONNECTION] {
        let own = *list == header::CONNECTION;
        for token in headers
            .get_all(list)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"upgrade") {
                // `Upgrade` itself is left to the upgrade decision.
                upgrade |= own;
                continue;
            }
            close |= own && token.eq_ignore_ascii_case(b"close");
            if let Ok(n) = HeaderName::from_bytes(token) {
                if !FRAMING_AND_HOST.contains(&n) {
                    named.push(n);
                }
            }
        }
    }
    for n in &named {
        headers.remove(n);
    }
    let options = match (upgrade, close) {
        (true, true) => "upgrade, close",
        (true, false) => "upgrade",
        (false, true) => "close",
        (false, false) => {
            headers.remove(header::CONNECTION);
            return;
        }
    };
    headers.insert(header::CONNECTION, HeaderValue::from_static(options));
}

/// How the sidecar reached the client, for [`forward_request`].
#[derive(Debug, Clone, Default)]
pub struct Forwarding {
    /// The host the client addressed: its `Host`, or an HTTP/2 request's authority.
    pub host: Option<HeaderValue>,
    /// The client's address and whether it connected over TLS, when known.
    pub peer: Option<(IpAddr, bool)>,
}

/// Request step 3, the sidecar proxy's outgoing head: removes the fixed
/// [`HOP_BY_HOP`] list (never what the client named: [`sanitize`] spent that),
/// drops `Content-Length` when `Transfer-Encoding` came too (RFC 9112 §6.3:
/// the next hop must not frame the body by a length the client's coding
/// overrode), removes the client's `Forwarded`, `X-Real-IP` and every
/// `X-Forwarded-*` but `X-Forwarded-For`, and sets `Host` and
/// `X-Forwarded-Host` to `to.host`, `X-Forwarded-Proto` from the connection,
/// and `X-Forwarded-For` to the client's chain (all its values, in order)
/// followed by the peer address. Identity headers are left exactly as set.
pub fn forward_request(headers: &mut HeaderMap, to: &Forwarding) {
    // One pass over the names (the usual request has none of these, and
    // then nothing is hashed, removed or allocated): what it finds decides
    // the rest, so no name is looked up that the head does not hold.
    let (mut coded, mut chained, mut any) = (false, false, false);
    let doomed = |n: &HeaderName| {
        let n = n.as_str();
        HOP_BY_HOP.contains(&n)
            || n.starts_with("x-forwarded-")
            || n == "forwarded"
            || n == "x-real-ip"
    };
    for n in headers.keys() {
        coded |= n == header::TRANSFER_ENCODING;
        chained |= n == X_FORWARDED_FOR;
        any |= doomed(n);
    }
    if coded {
        headers.remove(header::CONTENT_LENGTH);
    }
    let chain = if chained {
        join_values(headers, &X_FORWARDED_FOR)
    } else {
        None
    };
    if any {
        remove_names(headers, doomed);
    }
    if let Some(host) = &to.host {
        headers.insert(header::HOST, host.clone());
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
    if let Some(v) = forwarded_for(chain, to.peer.map(|(ip, _)| ip)) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if let Some((_, tls)) = to.peer {
        headers.insert(
            X_FORWARDED_PROTO,
            HeaderValue::from_static(if tls { "https" } else { "http" }),
        );
    }
}

/// The response side of the hop, the upstream's head on its way to the
/// client: removes the headers the upstream's `Connection` names, then the
/// fixed [`HOP_BY_HOP`] list. (The request side is [`sanitize`] and
/// [`forward_request`], so a client's list never removes a header stonegate
/// set.) One pass over the names, as [`forward_request`]'s: nothing is
/// parsed, hashed or removed per listed name.
pub fn forward_response(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|n| HeaderName::from_bytes(n.trim_ascii()).ok())
        .collect();
    remove_names(headers, |n| {
        HOP_BY_HOP.contains(&n.as_str()) || named.contains(n)
    });
}

/// `X-Forwarded-For`: the client's chain followed by the peer address, in
/// one allocation (the value's own).
fn forwarded_for(chain: Option<String>, peer: Option<IpAddr>) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let text = match (chain, peer) {
        (Some(mut prev), Some(ip)) => {
            let _ = write!(prev, ", {ip}");
            prev
        }
        (chain, None) => chain?,
        (None, Some(IpAddr::V4(ip))) => return Some(peer_value(ip)),
        (None, Some(ip)) => {
            // An address is at most 45 characters: formatted on the stack.
            let mut buf = [0u8; 64];
            let mut w = &mut buf[..];
            std::io::Write::write_fmt(&mut w, format_args!("{ip}")).ok()?;
            let len = 64 - w.len();
            return HeaderValue::from_bytes(&buf[..len]).ok();
        }
    };
    HeaderValue::from_maybe_shared(bytes::Bytes::from(text)).ok()
}

thread_local! {
    /// The last IPv4 peer this thread wrote into `X-Forwarded-For`, and its
    /// value: behind an ingress, nearly every request comes from one of a
    /// few addresses, and a hit is a reference, not a formatted copy.
    static LAST_PEER: std::cell::RefCell<Option<(Ipv4Addr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `ip` as an `X-Forwarded-For` value (dotted decimal, as `Display` writes
/// it), without the formatting machinery: it ran on every request.
fn peer_value(ip: Ipv4Addr) -> HeaderValue {
    LAST_PEER.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((a, v)) = last.as_ref() {
            if *a == ip {
                return v.clone();
            }
        }
        let mut buf = [0u8; 15];
        let mut n = 0;
        for (i, o) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                buf[n] = b'.';
                n += 1;
            }
            if o >= 100 {
                buf[n] = b'0' + o / 100;
                n += 1;
            }
            if o >= 10 {
                buf[n] = b'0' + o / 10 % 10;
                n += 1;
            }
            buf[n] = b'0' + o % 10;
            n += 1;
        }
        let v = HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(&buf[..n]))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        *last = Some((ip, v.clone()));
        v
    })
}

/// Every value of `name`, joined with `", "` (a list header's one meaning).
fn join_values(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let Ok(v) = v.to_str() else { continue };
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match &mut out {
            Some(o) => {
                o.push_str(", ");
                o.push_str(v);
            }
            None => out = Some(v.to_owned()),
        }
    }
    out
}

/// `X-Identity-Status` / `X-Service-Identity-Status` values.
pub const CONFIRMED: HeaderValue = HeaderValue::from_static("Confirmed");
/// The status of a missing or invalid token.
pub const INVALID: HeaderValue = HeaderValue::from_static("Invalid");

fn named(n: &Named) -> (Option<&str>, Option<&str>) {
    (n.id.as_deref(), n.name.as_deref())
}

/// The names a header block can hold: [`IDENTITY_HEADERS`], indexed.
static BLOCK_NAMES: std::sync::LazyLock<Vec<HeaderName>> = std::sync::LazyLock::new(|| {
    IDENTITY_HEADERS
        .iter()
        .map(|n| HeaderName::from_static(n))
        .collect()
});

fn name_index(name: &str) -> u8 {
    let i = IDENTITY_HEADERS
        .iter()
        .position(|h| *h == name)
        .unwrap_or_default();
    u8::try_from(i).unwrap_or_default()
}

/// Bytes of one entry of a block's table: name index, start and length (u16 LE).
const ENTRY: usize = 5;

/// The bit of an entry's name index telling that its value is one of the
/// identity's own values ([`Blocks::own`]; its start is then the value's
/// number there), not in the shared block.
const OWN: u8 = 0x80;

/// Builds a header block: the shared part `[count] [name, start, len]*
/// values` (every header, in keystonemiddleware's order, and the values
/// tokens of one scope share) and the token's own values `[count] [len]*
/// values` (user id and name). A value the block already holds (`X-User` is
/// `X-User-Name`, `X-Role` is `X-Roles`, the `X-Tenant*` the project's) is
/// stored once; a name set twice keeps its last value, as `HeaderMap::insert`.
#[derive(Default)]
struct Block {
    /// (name index, own, start or own value number, length).
    entries: Vec<(u8, bool, usize, usize)>,
    values: Vec<u8>,
    own: Vec<Vec<u8>>,
}

impl Block {
    /// A value tokens of one scope share (pooled with the block).
    fn put(&mut self, name: &'static str, value: Option<&str>) {
        self.put_in(name, value, false);
    }

    /// A value of this token's user alone.
    fn put_own(&mut self, name: &'static str, value: Option<&str>) {
        self.put_in(name, value, true);
    }

    fn put_in(&mut self, name: &'static str, value: Option<&str>, own: bool) {
        let Some(v) = value else { return };
        if HeaderValue::from_bytes(v.as_bytes()).is_err() {
            tracing::warn!(
                header = name,
                "identity value not representable as a header; omitted"
            );
            return;
        }
        let v = v.as_bytes();
        let start = if own {
            match self.own.iter().position(|o| o == v) {
                Some(k) => k,
                None => {
                    self.own.push(v.to_vec());
                    self.own.len() - 1
                }
            }
        } else {
            match self
                .entries
                .iter()
                .find(|&&(_, o, s, l)| !o && &self.values[s..s + l] == v)
            {
                Some(&(_, _, s, _)) => s,
                None => {
                    self.values.extend_from_slice(v);
                    self.values.len() - v.len()
                }
            }
        };
        let idx = name_index(name);
        self.entries.retain(|e| e.0 != idx);
        self.entries.push((idx, own, start, v.len()));
    }

    fn get(&self, name: &'static str) -> Option<&str> {
        let idx = name_index(name);
        let &(_, own, s, l) = self.entries.iter().find(|e| e.0 == idx)?;
        let v = if own {
            self.own.get(s)?
        } else {
            &self.values[s..s + l]
        };
        std::str::from_utf8(v).ok()
    }

    fn finish(self) -> Blocks {
        let table = 1 + ENTRY * self.entries.len();
        let mut out = Vec::with_capacity(table + self.values.len());
        out.push(u8::try_from(self.entries.len()).unwrap_or_default());
        for &(idx, own, start, len) in &self.entries {
            let start = if own { start } else { table + start };
            let start = u16::try_from(start).unwrap_or(u16::MAX);
            // An own value's length is in the own values, not here: the
            // shared part is the same for every user of its scope.
            let len = if own {
                0
            } else {
                u16::try_from(len).unwrap_or_default()
            };
            out.push(if own { idx | OWN } else { idx });
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        out.extend_from_slice(&self.values);
        let mut own = Vec::new();
        if !self.own.is_empty() {
            let total: usize = self.own.iter().map(Vec::len).sum();
            own.reserve_exact(1 + 2 * self.own.len() + total);
            own.push(u8::try_from(self.own.len()).unwrap_or_default());
            for v in &self.own {
                let len = u16::try_from(v.len()).unwrap_or_default();
                own.extend_from_slice(&len.to_le_bytes());
            }
            for v in &self.own {
                own.extend_from_slice(v);
            }
        }
        let entries = &self.entries;
        let shared = crate::identity::intern::block(bytes::Bytes::from(out), |bytes| {
            entries
                .iter()
                .map(|&(_, own, start, len)| {
                    let start = table + start;
                    (!own)
                        .then(|| {
                            HeaderValue::from_maybe_shared(bytes.slice(start..start + len)).ok()
                        })
                        .flatten()
                })
                .collect()
        });
        Blocks {
            shared,
            // Exactly its length: `bytes` keeps a vector's spare capacity.
            own: bytes::Bytes::from(own.into_boxed_slice()),
        }
    }
}

/// The span of own value `k` in `own` (`[count] [len]* values`).
fn own_span(own: &[u8], k: usize) -> Option<(usize, usize)> {
    let n = usize::from(*own.first()?);
    if k >= n {
        return None;
    }
    let len = |i: usize| {
        let at = 1 + 2 * i;
        own.get(at..at + 2)
            .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let start = 1 + 2 * n + (0..k).map(len).sum::<usize>();
    Some((start, len(k)))
}

/// Copies a rendered block into `headers`: per header one reference to the
/// shared block's value (checked when it was rendered) or to the own
/// values' buffer (no copy of the value, no formatting).
fn copy(headers: &mut HeaderMap, block: &Blocks) {
    let shared = &*block.shared;
    let Some((&n, table)) = shared.bytes.split_first() else {
        return;
    };
    let n = usize::from(n);
    headers.reserve(n);
    for (e, value) in table.chunks_exact(ENTRY).take(n).zip(shared.values.iter()) {
        let Some(name) = BLOCK_NAMES.get(usize::from(e[0] & !OWN)) else {
            continue;
        };
        if e[0] & OWN == 0 {
            if let Some(v) = value {
                headers.insert(name.clone(), v.clone());
            }
            continue;
        }
        let start = usize::from(u16::from_le_bytes([e[1], e[2]]));
        let Some((s, l)) = own_span(&block.own, start) else {
            continue;
        };
        if block.own.get(s..s + l).is_none() {
            continue;
        }
        // Validated when the block was rendered.
        if let Ok(v) = HeaderValue::from_maybe_shared(block.own.slice(s..s + l)) {
            headers.insert(name.clone(), v);
        }
    }
}

/// Sets the headers of a valid user token, exactly as keystonemiddleware's
/// `_set_auth_headers` + deprecated aliases (absent values are omitted).
/// The block is rendered once per identity and copied afterwards.
pub fn set_user(headers: &mut HeaderMap, id: &Identity, include_catalog: bool) {
    let block = id.rendered.user.get_or_init(|| render_user(id));
    copy(headers, block);
    if include_catalog {
        if let Some(c) = id.catalog.as_ref().and_then(|c| c.header.as_ref()) {
            headers.insert(X_SERVICE_CATALOG, c.clone());
        }
    }
}

/// Sets the `X-Service-*` headers of a valid service token.
pub fn set_service(headers: &mut HeaderMap, id: &Identity) {
    let block = id.rendered.service.get_or_init(|| {
        let mut b = Block::default();
        b.put("x-service-identity-status", Some("Confirmed"));
        set_common(&mut b, id, true);
        Box::new(b.finish())
    });
    copy(headers, block);
}

/// Step 2 for every front door: the headers of a decision. A user identity
/// sets [`set_user`]'s block, a missing or invalid user token (under
/// `delay_auth_decision`) `X-Identity-Status: Invalid`, a public route
/// nothing; likewise for the service token (`X-Service-Identity-Status:
/// Invalid` when one was sent and refused).
pub fn inject(headers: &mut HeaderMap, ctx: &AuthContext, include_catalog: bool) {
    match &ctx.user {
        Some(id) => set_user(headers, id, include_catalog),
        None if ctx.public => {}
        None => {
            headers.insert(X_IDENTITY_STATUS, INVALID);
        }
    }
    match &ctx.service {
        None => {}
        Some(Some(id)) => set_service(headers, id),
        Some(None) => {
            headers.insert(X_SERVICE_IDENTITY_STATUS, INVALID);
        }
    }
}

fn render_user(id: &Identity) -> Blocks {
    let mut b = Block::default();
    b.put("x-identity-status", Some("Confirmed"));
    set_common(&mut b, id, false);
    let is_admin = if id.is_admin_project { "True" } else { "False" };
    b.put("x-is-admin-project", Some(is_admin));
    if matches!(id.scope, Scope::System) {
        b.put("openstack-system-scope", Some("all"));
    }
    // Deprecated names old services still read.
    let roles = b.get("x-roles").map(str::to_owned);
    b.put("x-role", roles.as_deref());
    b.put_own("x-user", id.user.name.as_deref());
    if let Scope::Project(p) = &id.scope {
        b.put("x-tenant-id", p.project.id.as_deref());
        b.put("x-tenant-name", p.project.name.as_deref());
        b.put("x-tenant", p.project.name.as_deref());
    }
    b.finish()
}

fn set_common(b: &mut Block, id: &Identity, service: bool) {
    macro_rules! name {
        ($user:literal, $svc:literal) => {
            if service {
                $svc
            } else {
                $user
            }
        };
    }
    let (uid, uname) = named(&id.user);
    b.put_own(name!("x-user-id", "x-service-user-id"), uid);
    b.put_own(name!("x-user-name", "x-service-user-name"), uname);
    let (did, dname) = named(&id.user_domain);
    b.put(name!("x-user-domain-id", "x-service-user-domain-id"), did);
    b.put(
        name!("x-user-domain-name", "x-service-user-domain-name"),
        dname,
    );
    match &id.scope {
        Scope::Project(p) => {
            let (pid, pname) = named(&p.project);
            b.put(name!("x-project-id", "x-service-project-id"), pid);
            b.put(name!("x-project-name", "x-service-project-name"), pname);
            let (pdid, pdname) = named(&p.domain);
            b.put(
                name!("x-project-domain-id", "x-service-project-domain-id"),
                pdid,
            );
            b.put(
                name!("x-project-domain-name", "x-service-project-domain-name"),
                pdname,
            );
        }
        Scope::Domain(d) => {
            let (did, dname) = named(d);
            b.put(name!("x-domain-id", "x-service-domain-id"), did);
            b.put(name!("x-domain-name", "x-service-domain-name"), dname);
        }
        Scope::System | Scope::Unscoped => {}
    }
    // Present (possibly empty) even for unscoped tokens, as keystonemiddleware.
    let roles = id.roles.join(",");
    b.put(name!("x-roles", "x-service-roles"), Some(&roles));
}

#[cfg(test)]
mod tests;
