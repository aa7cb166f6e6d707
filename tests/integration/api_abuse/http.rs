//! The server under abuse: odd methods and paths cannot grow `/metrics`;
//! half-open and idle connections are closed by the header-read timeout
//! while other clients are served; every error the server itself answers
//! (404, 405, 408, 413, 431) carries the JSON error body.

use super::Daemon;
use crate::api::client::Reply;
use reqwest::Method;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn assert_json_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.error(), code, "{}", r.text);
    assert!(
        !r.body["message"].as_str().unwrap_or_default().is_empty(),
        "{}",
        r.text
    );
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        r.headers
    );
}

fn request_series(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| l.starts_with("stagegate_http_requests_total{"))
        .collect()
}

#[test]
fn http_hardening_odd_methods_and_paths_leave_metrics_small() {
    let d = Daemon::start(&[], &[]);
    for i in 0..200 {
        // An invented method on a known route, on an unknown route, and a plain unknown route.
        let m = Method::from_bytes(format!("X{i}QZ").as_bytes()).unwrap();
        let r = d.api.run(d.api.request(m.clone(), "/healthz"));
        assert_json_error(&r, 405, "method_not_allowed");
        d.api.run(d.api.request(m, &format!("/no/such/{i}")));
        d.api.get(&format!("/random-{i}"), None);
    }
    let m = d.api.get("/metrics", None).text;
    let series = request_series(&m);
    assert!(
        series.len() <= 12,
        "{} series:\n{}",
        series.len(),
        series.join("\n")
    );
    assert!(m.len() < 16 * 1024, "/metrics is {} bytes", m.len());
    assert!(
        series
            .iter()
            .any(|l| l.contains("method=\"other\"") && l.contains("route=\"/healthz\"")),
        "{m}"
    );
    assert!(
        series.iter().any(|l| l.contains("route=\"unmatched\"")),
        "{m}"
    );
    assert!(!m.contains("X7QZ") && !m.contains("/random-7"), "{m}");
}

/// Reads until the server closes the connection; panics if it is still open after 30 s.
fn closed_by_server(mut s: TcpStream, what: &str) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("{what}: not closed by the server ({e})"),
        }
    }
}

#[test]
fn http_hardening_half_open_connections_are_closed_while_others_are_served() {
    let d = Daemon::start(
        &[],
        &["--header-read-timeout", "1s", "--max-connections", "8"],
    );
    let addr = d.api.base().trim_start_matches("http://").to_string();
    let connect = || TcpStream::connect(&addr).unwrap();
    // Silent connections, a request head that never ends, and an idle kept-alive connection:
    // more of them than the connection cap.
    let silent: Vec<TcpStream> = (0..6).map(|_| connect()).collect();
    let partial: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = connect();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1")
                .unwrap();
            s
        })
        .collect();
    let mut idle = connect();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();

    // Another client is served meanwhile (once the timeout frees a slot, at worst).
    for _ in 0..3 {
        assert_eq!(d.api.get("/healthz", None).status, 200);
    }
    for s in silent {
        assert!(closed_by_server(s, "silent connection").is_empty());
    }
    for s in partial {
        closed_by_server(s, "unfinished request head");
    }
    let answered =
        String::from_utf8_lossy(&closed_by_server(idle, "idle keep-alive connection")).to_string();
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert_eq!(d.api.get("/readyz", None).status, 200);
}

#[test]
fn http_hardening_server_errors_413_431_408_have_json_bodies() {
    let d = Daemon::start(&[], &["--request-timeout", "1s"]);
    let c = &d.api;
    // 413: a body over the limit, declared and chunked.
    let big = format!(
        "{{\"username\":\"a\",\"password\":\"{}\"}}",
        "x".repeat(64 * 1024)
    );
    let r = c.post_raw(
        "/v1/login",
        None,
        "application/json",
        big.clone().into_bytes(),
    );
    assert_json_error(&r, 413, "payload_too_large");
    let r = c.run(
        c.request(Method::POST, "/v1/logout")
            .bearer_auth("x")
            .body(big.into_bytes()),
    );
    assert!(r.status == 413 || r.status == 401, "{}", r.text);
    assert!(r.body["error"].is_string(), "{}", r.text);
    // 431: one huge header, and too many headers.
    let r = c.run(
        c.request(Method::GET, "/healthz")
            .header("x-big", "y".repeat(20 * 1024)),
    );
    assert_json_error(&r, 431, "request_header_fields_too_large");
    let mut many = c.request(Method::GET, "/v1/whoami");
    for i in 0..150 {
        many = many.header(format!("x-h{i}"), "v");
    }
    assert_json_error(&c.run(many), 431, "request_header_fields_too_large");
    // 404 and 405 as before.
    assert_json_error(&c.get("/nope", None), 404, "not_found");
    assert_json_error(&c.get("/v1/login", None), 405, "method_not_allowed");
    // 408: a body that stops arriving.
    let addr = c.base().trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user").unwrap();
    let answer = String::from_utf8_lossy(&closed_by_server(s, "stalled body")).to_string();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("application/json") && answer.contains("\"request_timeout\""),
        "{answer}"
    );
}
