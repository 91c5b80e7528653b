//! A small memcached client: `get`, `set` and `delete` of the text protocol
//! (plus `mg`, memcached 1.6's meta get, for an entry's remaining lifetime;
//! classic `get` on older servers), over tokio sockets with a few pooled
//! connections per server.
//!
//! Hand-written rather than a crate because what matters here is agreeing
//! with keystonemiddleware's client (python-memcached, through oslo.cache) on
//! *where* a key lives and when a server counts as down — which no Rust
//! memcached crate implements — while the protocol subset needed is three
//! commands. Every step is bounded by `socket_timeout`; a server that fails
//! is skipped for `dead_retry` (python-memcached's `mark_dead`), and its keys
//! move to the next server exactly as python-memcached rehashes them.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufStream},
    net::TcpStream,
};

use super::{BackendError, Stored};

/// Largest value read back (the Keystone body limit plus protection overhead).
const MAX_VALUE: usize = 12 * 1024 * 1024;
/// python-memcached's `_SERVER_RETRIES`: servers tried for one key.
const SERVER_RETRIES: usize = 10;

/// python-memcached's `cmemcache_hash`.
pub fn key_hash(key: &[u8]) -> u32 {
    (crc32fast::hash(key) >> 16) & 0x7fff
}

/// The servers python-memcached would try for `key`, in order, out of
/// `servers` (each weight 1): the key's hash modulo the server count, then
/// rehashes of `str(hash) + str(i)`.
pub fn server_order(key: &[u8], servers: usize) -> impl Iterator<Item = usize> {
    let mut hash = key_hash(key);
    (0..SERVER_RETRIES).map(move |i| {
        let index = hash as usize % servers.max(1);
        hash = key_hash(format!("{hash}{i}").as_bytes());
        index
    })
}

/// memcached servers with their connection pools.
#[derive(Debug)]
pub struct Memcached {
    servers: Vec<Server>,
    timeout: Duration,
    dead_retry: Duration,
    pool_maxsize: usize,
}

#[derive(Debug)]
struct Server {
    address: String,
    idle: Mutex<Vec<BufStream<TcpStream>>>,
    dead_until: Mutex<Option<Instant>>,
}

impl Memcached {
    /// A client for `servers` (`host:port`); no connection is made yet.
    pub fn new(
        servers: &[String],
        timeout: Duration,
        dead_retry: Duration,
        pool_maxsize: usize,
    ) -> Self {
        Self {
            servers: servers
                .iter()
                .map(|a| Server {
                    address: a.clone(),
                    idle: Mutex::new(Vec::new()),
                    dead_until: Mutex::new(None),
                })
                .collect(),
            timeout,
            dead_retry,
            pool_maxsize,
        }
    }

    /// The stored bytes of `key`, `None` when absent.
    pub async fn get(&self, key: &str) -> Result<Option<Stored>, BackendError> {
        match self.exchange(key, Command::Get).await? {
            Answer::Value(v) => Ok(v),
            _ => Err(BackendError::Protocol),
        }
    }

    /// Stores `value` under `key` for `ttl` (whole seconds, at least 1).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), BackendError> {
        self.exchange(key, Command::Set(value, ttl))
            .await
            .map(|_| ())
    }

    /// Removes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.exchange(key, Command::Delete).await.map(|_| ())
    }

    /// Adds `delta` to the counter `key` (created with lifetime `ttl` when
    /// absent; memcached's `decr` stops at 0) and returns its new value.
    /// Classic `incr`/`decr`/`add`, understood by every memcached version.
    pub async fn add_to(&self, key: &str, delta: i64, ttl: Duration) -> Result<u64, BackendError> {
        match self.exchange(key, Command::Count(delta, ttl)).await? {
            Answer::Number(n) => Ok(n),
            _ => Err(BackendError::Protocol),
        }
    }

    /// Runs `command` on the server holding `key`. A pooled connection the
    /// server has closed meanwhile (restart, idle timeout) is replaced once;
    /// any other failure, or a timeout, marks the server dead.
    async fn exchange(&self, key: &str, command: Command<'_>) -> Result<Answer, BackendError> {
        let mut retried = false;
        loop {
            let (server, conn, pooled) = self.connection(key).await?;
            let run = async {
                match command {
                    Command::Get => get(conn, key).await.map(|(v, c)| (Answer::Value(v), c)),
                    Command::Set(value, ttl) => set(conn, key, value, ttl)
                        .await
                        .map(|((), c)| (Answer::Done, c)),
                    Command::Delete => delete(conn, key).await.map(|((), c)| (Answer::Done, c)),
                    Command::Count(delta, ttl) => count(conn, key, delta, ttl)
                        .await
                        .map(|(n, c)| (Answer::Number(n), c)),
                }
            };
            let error = match tokio::time::timeout(self.timeout, run).await {
                Ok(Ok((value, conn))) => {
                    if let Ok(mut idle) = server.idle.lock() {
                        if idle.len() < self.pool_maxsize {
                            idle.push(conn);
                        }
                    }
                    return Ok(value);
                }
                Ok(Err(BackendError::Refused)) => return Err(BackendError::Refused),
                Ok(Err(e)) => e,
                Err(_) => BackendError::Timeout,
            };
            if pooled && !retried && matches!(error, BackendError::Io(_)) {
                retried = true;
                // Its siblings in the pool are likely just as stale.
                if let Ok(mut idle) = server.idle.lock() {
                    idle.clear();
                }
                continue;
            }
            tracing::warn!(server = %server.address, error = %error, "memcached failed; skipping it");
            server.mark_dead(self.dead_retry);
            return Err(error);
        }
    }

    /// A connection to the server that holds `key` (pooled or new, and
    /// whether it was pooled), skipping dead servers as python-memcached's
    /// `_get_server` does.
    async fn connection(&self, key: &str) -> Result<(&Server, Conn, bool), BackendError> {
        for index in server_order(key.as_bytes(), self.servers.len()) {
            let Some(server) = self.servers.get(index) else {
                continue;
            };
            if server.is_dead() {
                continue;
            }
            let pooled = server.idle.lock().ok().and_then(|mut idle| idle.pop());
            if let Some(conn) = pooled {
                return Ok((server, conn, true));
            }
            match tokio::time::timeout(self.timeout, TcpStream::connect(&server.address)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    return Ok((server, BufStream::new(stream), false));
                }
                Ok(Err(e)) => {
                    tracing::warn!(server = %server.address, error = %e, "memcached server unreachable; skipping it");
                    server.mark_dead(self.dead_retry);
                }
                Err(_) => {
                    tracing::warn!(server = %server.address, "memcached connect timed out; skipping it");
                    server.mark_dead(self.dead_retry);
                }
            }
        }
        Err(BackendError::NoServer)
    }
}

/// What a command answered.
enum Answer {
    /// `get`: the entry, if any.
    Value(Option<Stored>),
    /// `incr`/`decr`: the counter's new value.
    Number(u64),
    /// `set`, `delete`: done.
    Done,
}

#[derive(Clone, Copy)]
enum Command<'a> {
    Get,
    Set(&'a [u8], Duration),
    Delete,
    Count(i64, Duration),
}

impl Server {
    fn is_dead(&self) -> bool {
        let Ok(mut until) = self.dead_until.lock() else {
            return false;
        };
        match *until {
            Some(t) if t > Instant::now() => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn mark_dead(&self, retry: Duration) {
        if let Ok(mut until) = self.dead_until.lock() {
            *until = Some(Instant::now() + retry);
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }
}

type Conn = BufStream<TcpStream>;

/// `mg <key> t v` (memcached 1.6+: the value and its remaining lifetime);
/// on an older server that answers `ERROR`, a classic `get`.
async fn get(mut conn: Conn, key: &str) -> Result<(Option<Stored>, Conn), BackendError> {
    conn.write_all(format!("mg {key} t v\r\n").as_bytes())
        .await?;
    conn.flush().await?;
    let line = read_line(&mut conn).await?;
    match line.as_slice() {
        b"EN" => return Ok((None, conn)),
        b"ERROR" => return classic_get(conn, key).await,
        _ => {}
    }
    // VA <size> t<seconds left, -1: none>
    let header = std::str::from_utf8(&line).map_err(|_| BackendError::Protocol)?;
    let mut parts = header.split(' ');
    if parts.next() != Some("VA") {
        return Err(BackendError::Protocol);
    }
    let len = parts
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(BackendError::Protocol)?;
    let ttl = parts
        .find_map(|f| f.strip_prefix('t'))
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let value = read_value(&mut conn, len).await?;
    Ok((Some(Stored { value, ttl }), conn))
}

/// `get <key>`: `VALUE <key> <flags> <bytes>`, the value, `END`.
async fn classic_get(mut conn: Conn, key: &str) -> Result<(Option<Stored>, Conn), BackendError> {
    conn.write_all(format!("get {key}\r\n").as_bytes()).await?;
    conn.flush().await?;
    let line = read_line(&mut conn).await?;
    if line == b"END" {
        return Ok((None, conn));
    }
    let header = std::str::from_utf8(&line).map_err(|_| BackendError::Protocol)?;
    let mut parts = header.split(' ');
    let (Some("VALUE"), Some(k), Some(_flags), Some(len), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(BackendError::Protocol);
    };
    if k != key {
        return Err(BackendError::Protocol);
    }
    let len = len.parse().map_err(|_| BackendError::Protocol)?;
    let value = read_value(&mut conn, len).await?;
    if read_line(&mut conn).await? != b"END" {
        return Err(BackendError::Protocol);
    }
    Ok((Some(Stored { value, ttl: None }), conn))
}

/// `len` bytes of value and their `\r\n`.
async fn read_value(conn: &mut Conn, len: usize) -> Result<Vec<u8>, BackendError> {
    if len > MAX_VALUE {
        return Err(BackendError::Protocol);
    }
    let mut value = vec![0u8; len + 2];
    conn.read_exact(&mut value).await?;
    if !value.ends_with(b"\r\n") {
        return Err(BackendError::Protocol);
    }
    value.truncate(len);
    Ok(value)
}

async fn set(
    mut conn: Conn,
    key: &str,
    value: &[u8],
    ttl: Duration,
) -> Result<((), Conn), BackendError> {
    // Above 30 days memcached reads the number as a Unix time.
    let ttl = ttl.as_secs().clamp(1, 30 * 24 * 3600);
    conn.write_all(format!("set {key} 0 {ttl} {}\r\n", value.len()).as_bytes())
        .await?;
    conn.write_all(value).await?;
    conn.write_all(b"\r\n").await?;
    conn.flush().await?;
    match read_line(&mut conn).await?.as_slice() {
        b"STORED" => Ok(((), conn)),
        // Too large, out of memory: the connection is still usable.
        l if l.starts_with(b"SERVER_ERROR") => Err(BackendError::Refused),
        _ => Err(BackendError::Protocol),
    }
}

async fn delete(mut conn: Conn, key: &str) -> Result<((), Conn), BackendError> {
    conn.write_all(format!("delete {key}\r\n").as_bytes())
        .await?;
    conn.flush().await?;
    match read_line(&mut conn).await?.as_slice() {
        b"DELETED" | b"NOT_FOUND" => Ok(((), conn)),
        _ => Err(BackendError::Protocol),
    }
}

/// `incr`/`decr` by `delta`; a missing counter is created by `add` (a
/// racing `add` from another replica loses nothing: `incr` again).
async fn count(
    mut conn: Conn,
    key: &str,
    delta: i64,
    ttl: Duration,
) -> Result<(u64, Conn), BackendError> {
    let verb = if delta < 0 { "decr" } else { "incr" };
    let by = delta.unsigned_abs();
    for _ in 0..2 {
        conn.write_all(format!("{verb} {key} {by}\r\n").as_bytes())
            .await?;
        conn.flush().await?;
        let line = read_line(&mut conn).await?;
        if line != b"NOT_FOUND" {
            let n = std::str::from_utf8(&line)
                .ok()
                .and_then(|n| n.trim().parse().ok())
                .ok_or(BackendError::Protocol)?;
            return Ok((n, conn));
        }
        if delta < 0 {
            return Ok((0, conn));
        }
        let ttl = ttl.as_secs().clamp(1, 30 * 24 * 3600);
        let value = by.to_string();
        conn.write_all(format!("add {key} 0 {ttl} {}\r\n{value}\r\n", value.len()).as_bytes())
            .await?;
        conn.flush().await?;
        match read_line(&mut conn).await?.as_slice() {
            b"STORED" => return Ok((by, conn)),
            b"NOT_STORED" => continue,
            _ => return Err(BackendError::Protocol),
        }
    }
    Err(BackendError::Protocol)
}

/// One `\r\n`-terminated line, without the terminator (at most 1 KiB).
async fn read_line(conn: &mut Conn) -> Result<Vec<u8>, BackendError> {
    let mut line = Vec::with_capacity(64);
    let n = (&mut *conn).take(1024).read_until(b'\n', &mut line).await?;
    if n == 0 || !line.ends_with(b"\r\n") {
        return Err(BackendError::Protocol);
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    // From python-memcached 1.62: `cmemcache_hash(key)` and the rehash chain
    // `cmemcache_hash(str(h) + str(i))` of `_get_server`.
    #[test]
    fn hash_and_rehash_match_python_memcached() {
        let key = b"tokens/b'bv5yumXsEBh3koGfIAvx2A=='";
        assert_eq!(key_hash(key), 29023);
        assert_eq!(key_hash(b"tokens/b'GjbMg9ocxe9YWxpI2PHMCQ=='"), 14758);
        assert_eq!(key_hash(b"foo"), 3187);
        let order: Vec<usize> = server_order(key, 3).take(4).collect();
        // 29023 % 3, then 20791 % 3, 2196 % 3, 16165 % 3.
        assert_eq!(order, vec![1, 1, 0, 1]);
        let order: Vec<usize> = server_order(b"foo", 7).take(4).collect();
        assert_eq!(order, vec![3187 % 7, 29842 % 7, 32274 % 7, 24630 % 7]);
        assert!(server_order(key, 1).all(|i| i == 0));
        assert_eq!(server_order(key, 5).count(), SERVER_RETRIES);
    }
}
