//! The fixed client of the instructions-per-request figure
//! (`scripts/bench.sh`, callgrind): sends N `GET`s one after another on ONE
//! keep-alive HTTP/1.1 connection and reads every response to its end, with
//! no runtime, no threads and no timing, so that what a profiler counts in
//! the server under test is the same from run to run. The token (optional)
//! comes from `BENCH_TOKEN`, never from the command line. Exits non-zero
//! unless every response was a 200.
//!
//! ```text
//! BENCH_TOKEN=... keepalive_client 127.0.0.1:8080 /v2.1/servers 1000
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::ExitCode,
};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(path), Some(n)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: keepalive_client HOST:PORT PATH N   (token in BENCH_TOKEN)");
        return ExitCode::from(2);
    };
    let n: u64 = n.parse().expect("N must be a number");
    let token = std::env::var("BENCH_TOKEN").unwrap_or_default();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\n");
    if !token.is_empty() {
        request.push_str(&format!("X-Auth-Token: {token}\r\n"));
    }
    request.push_str("\r\n");

    let stream = TcpStream::connect(&addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    let mut not_ok = 0u64;
    for _ in 0..n {
        writer.write_all(request.as_bytes()).expect("write");
        line.clear();
        reader.read_line(&mut line).expect("status line");
        if line.split_whitespace().nth(1) != Some("200") {
            not_ok += 1;
        }
        // Headers: only Content-Length matters (the upstream and stonegate's
        // own answers are never chunked for these requests).
        let mut length = 0usize;
        loop {
            line.clear();
            reader.read_line(&mut line).expect("header line");
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body).expect("body");
    }
    println!("requests={n} not_200={not_ok}");
    if not_ok == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
