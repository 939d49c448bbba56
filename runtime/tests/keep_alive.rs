//! Keep-alive connections, where plain decision requests are answered on the connection's
//! own path and everything else by hyper: the same answers either way, requests split
//! and pipelined anyhow, a connection moving to hyper mid-way, the deadlines on heads and
//! bodies, and shutdown.

#![cfg(feature = "server")]
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::eventually;

use runtime::decision_log::{LogConfig, LogSink};
use runtime::server::{ConnectionLimits, ServerConfig};

const DECIDE: &str = r#"{"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}}"#;

#[derive(Debug)]
struct Answer {
    status: u16,
    header_names: Vec<String>,
    body: String,
}

fn connect(address: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn request(path: &str, body: &str, extra: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

/// Reads one answer off a connection; `None` if it closed first.
fn read_answer(stream: &mut TcpStream) -> Option<Answer> {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let mut header_names = Vec::new();
    let mut length = 0;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().unwrap();
        }
        header_names.push(name.to_ascii_lowercase());
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    Some(Answer {
        status,
        header_names,
        body: String::from_utf8(body).unwrap(),
    })
}

/// The body with its decision id blanked, since every answer has its own.
fn without_id(body: &str) -> String {
    match body.split_once("\"decision_id\":\"") {
        Some((before, after)) => {
            let rest = after.split_once('"').map_or("", |(_, rest)| rest);
            format!("{before}\"decision_id\":\"…\"{}", without_id(rest))
        }
        None => body.to_owned(),
    }
}

fn temp_log(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("flowgate-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn logged(path: &Path) -> LogConfig {
    LogConfig {
        sink: LogSink::File(path.to_owned()),
        ..Default::default()
    }
}

#[test]
fn keep_alive_answers_are_the_routers_byte_for_byte() {
    let address = common::start_server(
        ServerConfig {
            max_batch: 2,
            ..ServerConfig::default()
        },
        false,
    )
    .http;
    let batch = format!(r#"{{"requests": [{DECIDE}, {DECIDE}]}}"#);
    let too_many = format!(r#"{{"requests": [{DECIDE}, {DECIDE}, {DECIDE}]}}"#);
    let cases = [
        ("/v1/decide", DECIDE.to_owned()),
        ("/v1/decide?explain=0", DECIDE.to_owned()),
        ("/v1/decide/batch", batch),
        ("/v1/decide/batch", too_many),
        ("/v1/decide", "{".to_owned()),
        ("/v1/decide", String::new()),
        ("/v1/decide", DECIDE.replace("\"trigger\"", "\"launch\"")),
        ("/v1/decide", DECIDE.replace("\"alice\"", "7")),
        ("/v1/decide", DECIDE.replace("\"action\"", "\"actoin\"")),
    ];
    // One keep-alive connection for all of them, answered on its own path...
    let mut kept = connect(address);
    for (path, body) in &cases {
        kept.write_all(request(path, body, "").as_bytes()).unwrap();
        let lean = read_answer(&mut kept).unwrap();
        // ...and each again on a connection hyper serves (`Connection: close`).
        let mut closing = connect(address);
        closing
            .write_all(request(path, body, "Connection: close\r\n").as_bytes())
            .unwrap();
        let router = read_answer(&mut closing).unwrap();
        assert_eq!(lean.status, router.status, "{path} {body}");
        assert_eq!(
            without_id(&lean.body),
            without_id(&router.body),
            "{path} {body}"
        );
        // hyper adds `connection: close` when it closes; otherwise the heads agree.
        let router_names: Vec<&String> = router
            .header_names
            .iter()
            .filter(|name| *name != "connection")
            .collect();
        assert_eq!(
            lean.header_names.iter().collect::<Vec<_>>(),
            router_names,
            "{path} {body}"
        );
    }
    assert_eq!(
        read_answer(&mut {
            kept.write_all(request("/v1/decide", DECIDE, "").as_bytes())
                .unwrap();
            kept
        })
        .unwrap()
        .status,
        200,
        "bad requests leave the connection open"
    );
}

#[test]
fn requests_split_anywhere_and_pipelined_are_answered_in_order() {
    let address = common::start_server(ServerConfig::default(), false).http;
    let batch = format!(r#"{{"requests": [{DECIDE}, {DECIDE}]}}"#);
    let both = format!(
        "{}{}",
        request("/v1/decide", DECIDE, ""),
        request("/v1/decide/batch", &batch, "")
    );
    let bytes = both.as_bytes();
    let mut splits: Vec<usize> = (0..bytes.len()).step_by(11).collect();
    // Around the end of the first head and of the first request.
    let first_head = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let first_end = first_head + DECIDE.len();
    splits.extend([
        first_head - 1,
        first_head,
        first_head + 1,
        first_end - 1,
        first_end,
        first_end + 1,
    ]);
    for split in splits {
        let mut stream = connect(address);
        stream.write_all(&bytes[..split]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        stream.write_all(&bytes[split..]).unwrap();
        let single = read_answer(&mut stream).unwrap();
        assert_eq!(single.status, 200, "split at {split}: {}", single.body);
        assert!(
            single.body.starts_with("{\"decision\":\"allow\""),
            "{}",
            single.body
        );
        let answers = read_answer(&mut stream).unwrap();
        assert_eq!(answers.status, 200, "split at {split}: {}", answers.body);
        assert_eq!(
            answers.body.matches("\"decision\":\"allow\"").count(),
            2,
            "{}",
            answers.body
        );
    }
    // A request a byte at a time.
    let mut stream = connect(address);
    for byte in request("/v1/decide", DECIDE, "").as_bytes() {
        stream.write_all(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(read_answer(&mut stream).unwrap().status, 200);
}

#[test]
fn a_connection_moves_to_hyper_at_its_first_other_request_and_keeps_serving() {
    let address = common::start_server(ServerConfig::default(), false).http;
    let mut stream = connect(address);
    stream
        .write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut stream).unwrap().status, 200);
    // A decision and a health check in one write: the first answered here, the second,
    // and the bytes after it, by hyper.
    let pipelined = format!(
        "{}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n{}",
        request("/v1/decide", DECIDE, ""),
        request("/v1/decide", DECIDE, "")
    );
    stream.write_all(pipelined.as_bytes()).unwrap();
    for expected in [200, 200, 200] {
        assert_eq!(read_answer(&mut stream).unwrap().status, expected);
    }
    let healthz = request("/healthz", "", "");
    stream
        .write_all(healthz.replacen("POST", "GET", 1).as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut stream).unwrap().status, 200);

    // `Expect: 100-continue` (curl sends it for bodies over a kilobyte): hyper says
    // continue, then answers.
    let mut expecting = connect(address);
    let head = request("/v1/decide", "", "Expect: 100-continue\r\n").replace(
        "Content-Length: 0",
        &format!("Content-Length: {}", DECIDE.len()),
    );
    expecting.write_all(head.as_bytes()).unwrap();
    let go_on = read_answer(&mut expecting).unwrap();
    assert_eq!(go_on.status, 100);
    expecting.write_all(DECIDE.as_bytes()).unwrap();
    let answer = read_answer(&mut expecting).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.starts_with("{\"decision\":\"allow\""));

    // A chunked body, then a plain request on the same connection.
    let mut chunked = connect(address);
    let head = "POST /v1/decide HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    chunked
        .write_all(format!("{head}{:x}\r\n{DECIDE}\r\n0\r\n\r\n", DECIDE.len()).as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut chunked).unwrap().status, 200);
    chunked
        .write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut chunked).unwrap().status, 200);
}

#[test]
fn oversized_bodies_and_heads_on_a_kept_connection_are_refused_and_logged() {
    let log = temp_log("keep-alive-sizes");
    let address = common::start_server(
        ServerConfig {
            max_body_bytes: 1024,
            limits: ConnectionLimits {
                max_header_bytes: 16 * 1024,
                ..ConnectionLimits::default()
            },
            log: Some(logged(&log)),
            ..ServerConfig::default()
        },
        false,
    )
    .http;
    let mut stream = connect(address);
    stream
        .write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut stream).unwrap().status, 200);
    let large = format!(r#"{{"requests": [{}]}}"#, vec![DECIDE; 20].join(","));
    let _ = stream.write_all(request("/v1/decide/batch", &large, "").as_bytes());
    let refused = read_answer(&mut stream).unwrap();
    assert_eq!(refused.status, 413);
    assert!(
        refused.body.contains("\"body-too-large\""),
        "{}",
        refused.body
    );

    let mut flooded = connect(address);
    flooded
        .write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut flooded).unwrap().status, 200);
    let flood = request(
        "/v1/decide",
        DECIDE,
        &format!("X-Flood: {}\r\n", "a".repeat(64 * 1024)),
    );
    let _ = flooded.write_all(flood.as_bytes());
    assert!(
        read_answer(&mut flooded).is_none_or(|answer| answer.status == 431),
        "a flooded head is never served"
    );
    assert!(eventually(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"body-too-large\"") && text.contains("\"request-head-too-large\"")
    }));
    let _ = std::fs::remove_file(&log);
}

#[test]
fn idle_connections_close_quietly_and_slow_heads_and_bodies_are_cut_off() {
    let log = temp_log("keep-alive-deadlines");
    let limit = Duration::from_millis(400);
    let idle_limit = Duration::from_secs(3);
    let address = common::start_server(
        ServerConfig {
            limits: ConnectionLimits {
                header_read_timeout: limit,
                idle_timeout: idle_limit,
                ..ConnectionLimits::default()
            },
            log: Some(logged(&log)),
            ..ServerConfig::default()
        },
        false,
    )
    .http;
    let rejected = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with("{\"rejected\""))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };

    // Idle for longer than the head limit but within the idle limit, as pooled proxy
    // connections are: still served, both on a connection that answered a decision and
    // on one hyper serves.
    let mut idle = connect(address);
    idle.write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut idle).unwrap().status, 200);
    let mut idle_hyper = connect(address);
    idle_hyper
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut idle_hyper).unwrap().status, 200);
    std::thread::sleep(limit * 3);
    idle.write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut idle).unwrap().status, 200);
    idle_hyper
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut idle_hyper).unwrap().status, 200);

    // Then idle past the idle limit: closed, and no refusal logged.
    let clock = Instant::now();
    assert!(read_answer(&mut idle).is_none());
    assert!(read_answer(&mut idle_hyper).is_none());
    let waited = clock.elapsed();
    assert!(
        waited >= idle_limit - Duration::from_millis(100) && waited < idle_limit * 3,
        "{waited:?}"
    );
    assert!(
        eventually(|| std::fs::read_to_string(&log).is_ok_and(|text| text.lines().count() == 2)),
        "only the decisions are logged"
    );
    assert_eq!(rejected(), Vec::<String>::new());

    // Half a head after an answer: cut off at the head limit from its first byte, not the
    // idle limit, and logged; on both paths.
    let mut slow = connect(address);
    slow.write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut slow).unwrap().status, 200);
    let mut slow_hyper = connect(address);
    slow_hyper
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut slow_hyper).unwrap().status, 200);
    let clock = Instant::now();
    slow.write_all(b"POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Le")
        .unwrap();
    slow_hyper
        .write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .unwrap();
    assert!(read_answer(&mut slow).is_none());
    assert!(read_answer(&mut slow_hyper).is_none());
    assert!(clock.elapsed() < idle_limit, "{:?}", clock.elapsed());
    assert!(eventually(|| rejected().len() == 2));
    for line in rejected() {
        assert!(line.contains("\"slow-request-head\""), "{line}");
    }

    // A body that trickles: 408 with the error body, then closed, and logged. Each byte
    // comes well within the deadline, so only a deadline on the whole body catches it.
    let mut trickle = connect(address);
    let whole = request("/v1/decide", DECIDE, "");
    let head_end = whole.find("\r\n\r\n").unwrap() + 4;
    trickle.write_all(&whole.as_bytes()[..head_end]).unwrap();
    let clock = Instant::now();
    let mut writer = trickle.try_clone().unwrap();
    let body = whole.as_bytes()[head_end..].to_vec();
    std::thread::spawn(move || {
        for byte in body {
            std::thread::sleep(Duration::from_millis(50));
            if writer.write_all(&[byte]).is_err() {
                break;
            }
        }
    });
    let answer = read_answer(&mut trickle);
    let answer = answer.expect("a trickled body is answered before the connection closes");
    assert_eq!(answer.status, 408);
    assert!(
        answer.body.contains("\"slow-request-body\""),
        "{}",
        answer.body
    );
    assert!(
        clock.elapsed() < Duration::from_secs(2),
        "{:?}",
        clock.elapsed()
    );
    assert!(eventually(|| rejected().len() == 3));
    assert!(
        rejected()[2].contains("\"slow-request-body\""),
        "{:?}",
        rejected()
    );
    let _ = std::fs::remove_file(&log);
}

#[test]
fn shutdown_closes_idle_keep_alive_connections_at_once() {
    let server = common::Stoppable::start(ServerConfig {
        http_threads: std::num::NonZeroUsize::new(2),
        ..ServerConfig::default()
    });
    let address = server.http;
    let mut lean = connect(address);
    lean.write_all(request("/v1/decide", DECIDE, "").as_bytes())
        .unwrap();
    assert_eq!(read_answer(&mut lean).unwrap().status, 200);
    let mut hyper = connect(address);
    hyper
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut hyper).unwrap().status, 200);
    let clock = Instant::now();
    server.stop();
    // The drain timeout is 30 s; idle connections must not hold shutdown that long.
    assert!(
        clock.elapsed() < Duration::from_secs(5),
        "{:?}",
        clock.elapsed()
    );
    assert!(read_answer(&mut lean).is_none());
    assert!(read_answer(&mut hyper).is_none());
}

#[test]
fn a_body_cut_short_is_logged_on_either_path() {
    let log = temp_log("keep-alive-cut-short");
    let address = common::start_server(
        ServerConfig {
            log: Some(logged(&log)),
            ..ServerConfig::default()
        },
        false,
    )
    .http;
    for extra in ["", "Connection: close\r\n"] {
        let whole = request("/v1/decide", DECIDE, extra);
        let mut stream = connect(address);
        stream
            .write_all(&whole.as_bytes()[..whole.len() - 10])
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(stream);
    }
    let cut_short = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("\"incomplete-body\"")
            .count()
    };
    assert!(eventually(|| cut_short() == 2), "{}", cut_short());
    let _ = std::fs::remove_file(&log);
}

#[test]
fn a_batch_many_reads_long_is_answered_and_the_connection_goes_on() {
    let address = common::start_server(ServerConfig::default(), false).http;
    // About 170 KB: many reads, and buffers grown far past their usual size.
    let batch = format!(r#"{{"requests": [{}]}}"#, vec![DECIDE; 1_000].join(","));
    let mut stream = connect(address);
    for _ in 0..2 {
        stream
            .write_all(request("/v1/decide/batch", &batch, "").as_bytes())
            .unwrap();
        let answers = read_answer(&mut stream).unwrap();
        assert_eq!(
            answers.status,
            200,
            "{}",
            &answers.body[..200.min(answers.body.len())]
        );
        assert_eq!(
            answers.body.matches("\"decision\":\"allow\"").count(),
            1_000
        );
        stream
            .write_all(request("/v1/decide", DECIDE, "").as_bytes())
            .unwrap();
        assert_eq!(read_answer(&mut stream).unwrap().status, 200);
    }
}
