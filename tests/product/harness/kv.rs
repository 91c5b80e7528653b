//! Real `memcached` and `redis-server` (Debian packages) for the shared
//! cache, each on a fresh loopback port in a temporary directory, killed on
//! drop — plus raw clients for tests that read or alter stored entries
//! behind stonegate's back.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A running key-value server; killed on drop (or by [`KvServer::kill`]).
pub struct KvServer {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    name: &'static str,
}

/// A real memcached.
pub struct Memcached(pub KvServer);

/// A real Redis.
pub struct Redis(pub KvServer);

impl Memcached {
    /// memcached on a fresh loopback port (64 MB, no UDP).
    pub async fn start() -> Self {
        let bin = super::installed(
            &["/usr/bin/memcached", "/usr/local/bin/memcached"],
            "the shared-cache tests need a real memcached",
            "memcached",
        );
        let addr = super::free_addr();
        let mut cmd = Command::new(bin);
        cmd.args(["-l", "127.0.0.1", "-U", "0", "-m", "64", "-p"])
            .arg(addr.port().to_string());
        // memcached refuses to run as root unless told which user to be.
        if super::nginx::is_root() {
            cmd.args(["-u", "root"]);
        }
        Memcached(KvServer::spawn("memcached", cmd, addr).await)
    }

    /// `host:port`, as `memcached_servers` lists it.
    pub fn server(&self) -> String {
        self.0.addr.to_string()
    }

    /// The raw bytes stored under `key`.
    pub async fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        let stream = TcpStream::connect(self.0.addr)
            .await
            .expect("connect memcached");
        let mut conn = BufReader::new(stream);
        conn.get_mut()
            .write_all(format!("get {key}\r\n").as_bytes())
            .await
            .unwrap();
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        if line == "END\r\n" {
            return None;
        }
        let len: usize = line
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected memcached reply {line:?}"));
        let mut value = vec![0u8; len + 2];
        conn.read_exact(&mut value).await.unwrap();
        value.truncate(len);
        Some(value)
    }

    /// Every key the server holds, as the server itself lists them
    /// (`lru_crawler metadump all`, keys URL-decoded): no key derivation of
    /// ours involved.
    pub async fn keys(&self) -> Vec<String> {
        let stream = TcpStream::connect(self.0.addr)
            .await
            .expect("connect memcached");
        let mut conn = BufReader::new(stream);
        conn.get_mut()
            .write_all(b"lru_crawler metadump all\r\n")
            .await
            .unwrap();
        let mut keys = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                conn.read_line(&mut line),
            )
            .await
            .expect("metadump within 10 s")
            .unwrap();
            assert!(n > 0, "memcached closed during metadump");
            if line == "END\r\n" {
                return keys;
            }
            let key = line
                .split(' ')
                .find_map(|f| f.strip_prefix("key="))
                .unwrap_or_else(|| panic!("unexpected metadump line {line:?}"));
            keys.push(
                percent_encoding::percent_decode_str(key)
                    .decode_utf8()
                    .unwrap()
                    .into_owned(),
            );
        }
    }

    /// Stores `value` under `key` (flags 0, as python-memcached stores bytes).
    pub async fn raw_set(&self, key: &str, value: &[u8], ttl: u64) {
        let stream = TcpStream::connect(self.0.addr)
            .await
            .expect("connect memcached");
        let mut conn = BufReader::new(stream);
        let mut req = format!("set {key} 0 {ttl} {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(value);
        req.extend_from_slice(b"\r\n");
        conn.get_mut().write_all(&req).await.unwrap();
        let mut line = String::new();
        conn.read_line(&mut line).await.unwrap();
        assert_eq!(line, "STORED\r\n");
    }
}

impl Redis {
    /// redis-server on a fresh loopback port, no persistence.
    pub async fn start() -> Self {
        let bin = super::installed(
            &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
            "the shared-cache tests need a real Redis",
            "redis-server",
        );
        let addr = super::free_addr();
        let mut cmd = Command::new(bin);
        cmd.args([
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--port",
        ])
        .arg(addr.port().to_string());
        Redis(KvServer::spawn("redis-server", cmd, addr).await)
    }

    /// `redis://127.0.0.1:port/0`, as `[cache] redis_url` takes it.
    pub fn url(&self) -> String {
        format!("redis://{}/0", self.0.addr)
    }

    async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connect redis")
    }

    /// The raw bytes stored under `key`.
    pub async fn raw_get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }

    /// Seconds `key` has left.
    pub async fn raw_ttl(&self, key: &str) -> i64 {
        redis::cmd("TTL")
            .arg(key)
            .query_async(&mut self.conn().await)
            .await
            .unwrap()
    }
}

impl KvServer {
    async fn spawn(name: &'static str, mut cmd: Command, addr: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("log")).expect("log");
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut s = KvServer {
            child,
            addr,
            dir,
            name,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = s.child.try_wait() {
                panic!("{name} exited ({status}): {}", s.log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen: {}",
                s.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        s
    }

    /// Kills the server now (SIGKILL) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
        format!("{}: {log}", self.name)
    }
}

impl Drop for KvServer {
    fn drop(&mut self) {
        self.kill();
    }
}
