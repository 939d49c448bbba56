//! The decision API over real HTTP on loopback: answers, batches, and a clear 4xx with a
//! JSON pointer for every kind of bad input, while the server keeps serving.

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
use std::path::Path;
use std::time::Duration;

mod common;

use runtime::server::ServerConfig;
use serde_json::{Value, json};

/// Starts a server on an ephemeral loopback port; it stops when the test process ends.
fn start(config: ServerConfig) -> SocketAddr {
    common::start_server(config, false).http
}

/// One HTTP/1.1 exchange; returns the status and the body parsed as JSON.
fn call(address: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A peer may answer (413) before reading everything; a reset on write is fine then.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn post(address: SocketAddr, path: &str, body: &Value) -> (u16, Value) {
    call(address, "POST", path, body.to_string().as_bytes())
}

#[test]
fn decides_and_reports_the_policy() {
    let address = start(ServerConfig::default());
    let (status, answer) = post(
        address,
        "/v1/decide",
        &json!({"principal": {"id": "carol", "groups": ["data-eng-prod"]}, "action": "trigger", "dag": "etl_customers", "host": "PROD-AF-WORKER-02.", "context": {"time": "2026-11-24T10:00:00Z"}}),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["deciding"], json!(["pii-needs-mfa"]));
    assert_eq!(answer["missing"], json!(["principal.mfa"]));
    assert!(
        answer["decision_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty())
    );

    let (status, batch) = post(
        address,
        "/v1/decide/batch",
        &json!({"requests": [
            {"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}},
            {"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "prod-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}}
        ]}),
    );
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["answers"][0]["decision"], "allow");
    assert_eq!(batch["answers"][1]["decision"], "deny");
    assert_ne!(
        batch["answers"][0]["decision_id"],
        batch["answers"][1]["decision_id"]
    );

    let (status, policy) = call(address, "GET", "/v1/policy", b"");
    assert_eq!(status, 200);
    assert_eq!(policy["rules"], 29);
    assert_eq!(policy["content_hash"].as_str().map(str::len), Some(64));
    assert_eq!(call(address, "GET", "/healthz", b"").0, 200);
    assert_eq!(call(address, "GET", "/readyz", b"").1["status"], "ready");
    let metrics = call_text(address, "/metrics");
    assert!(
        metrics.contains("flowgate_decisions_total{effect=\"deny\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_decisions_total{effect=\"allow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_decision_seconds_count 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_policy_info{version="),
        "{metrics}"
    );
}

/// The decision routes through the router (kept-alive connections answer them on their own
/// path, which keep_alive.rs holds to the same bytes); their neighbours — another method, a
/// trailing slash, a query string, case — are answered with a JSON error.
#[test]
fn the_decision_routes_and_their_neighbours() {
    let address = start(ServerConfig::default());
    let request = json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}});
    let (status, answer) = post(address, "/v1/decide?trace=1", &request);
    assert_eq!((status, answer["decision"].as_str()), (200, Some("allow")));
    for (method, path, expected, code) in [
        ("GET", "/v1/decide", 405, "method-not-allowed"),
        ("PUT", "/v1/decide/batch", 405, "method-not-allowed"),
        ("POST", "/v1/decide/", 404, "not-found"),
        ("POST", "/V1/DECIDE", 404, "not-found"),
    ] {
        let (status, body) = call(address, method, path, request.to_string().as_bytes());
        assert_eq!(status, expected, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
    }
    let mut stream = TcpStream::connect(address).unwrap();
    let body = request.to_string();
    write!(
        stream,
        "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response}"
    );
}

#[test]
fn bad_input_gets_a_4xx_naming_the_field_and_the_server_keeps_serving() {
    let log =
        std::env::temp_dir().join(format!("flowgate-server-log-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let address = start(ServerConfig {
        max_body_bytes: 64 * 1024,
        max_batch: 2,
        log: Some(runtime::decision_log::LogConfig {
            sink: runtime::decision_log::LogSink::File(log.clone()),
            ..Default::default()
        }),
        ..ServerConfig::default()
    });
    let cases: Vec<(&[u8], u16, &str, &str)> = vec![
        (b"{\"principal\": ", 400, "malformed-json", ""),
        (
            br#"{"principal": {"id": "a"}, "action": "trigger", "colour": "red"}"#,
            400,
            "invalid-request",
            "/colour",
        ),
        (
            br#"{"principal": {"id": "a", "mfa": "yes"}, "action": "trigger"}"#,
            400,
            "invalid-request",
            "/principal/mfa",
        ),
        (
            br#"{"principal": {"id": "a"}, "action": "launch"}"#,
            400,
            "invalid-request",
            "/action",
        ),
        (br#"[1, 2, 3]"#, 400, "invalid-request", ""),
    ];
    for (body, status, code, pointer) in cases {
        let (got, error) = call(address, "POST", "/v1/decide", body);
        assert_eq!(got, status, "{error}");
        assert_eq!(error["error"]["code"], code, "{error}");
        assert_eq!(error["error"]["pointer"], pointer, "{error}");
    }

    let huge = vec![b' '; 10 * 1024 * 1024];
    let (status, error) = call(address, "POST", "/v1/decide", &huge);
    assert_eq!(status, 413, "{error}");

    let request = json!({"principal": {"id": "a"}, "action": "view"});
    let (status, error) = post(
        address,
        "/v1/decide/batch",
        &json!({"requests": [request, request, request]}),
    );
    assert_eq!(status, 413);
    assert_eq!(error["error"]["code"], "batch-too-large");
    let (status, error) = post(
        address,
        "/v1/decide/batch",
        &json!({"requests": [request, {"principal": {"id": 3}, "action": "view"}]}),
    );
    assert_eq!(status, 400);
    assert_eq!(error["error"]["pointer"], "/requests/1/principal/id");

    let (status, error) = call(address, "GET", "/v2/decide", b"");
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], "not-found");

    // Still serving after all of that, and every rejection was counted.
    assert_eq!(post(address, "/v1/decide", &request).0, 200);
    let metrics = call_text(address, "/metrics");
    assert!(
        metrics.contains("flowgate_bad_requests_total 9"),
        "{metrics}"
    );
    // Every call is in the decision log: nine rejections (the 404 too) and one decision.
    assert!(eventually(|| std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        == 10));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        text.lines()
            .filter(|line| line.contains("\"rejected\""))
            .count(),
        9,
        "{text}"
    );
    assert!(text.contains("\"pointer\":\"/principal/mfa\""), "{text}");
    assert!(
        text.lines()
            .any(|line| line.contains("\"decision\":\"allow\"")
                || line.contains("\"decision\":\"deny\"")),
        "{text}"
    );
}

#[test]
fn every_decision_of_a_batch_is_logged_with_its_id() {
    let log = std::env::temp_dir().join(format!(
        "flowgate-server-batch-log-{}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let address = start(ServerConfig {
        log: Some(runtime::decision_log::LogConfig {
            sink: runtime::decision_log::LogSink::File(log.clone()),
            // Smaller than the batch: a batch goes into an empty queue whole.
            capacity: 2,
            // Around the page cache where the filesystem allows: every line still lands.
            direct_io: true,
            ..Default::default()
        }),
        ..ServerConfig::default()
    });
    let one = |host: &str| json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": host, "context": {"time": "2026-11-24T10:00:00Z"}});
    let (status, batch) = post(
        address,
        "/v1/decide/batch",
        &json!({"requests": [one("stg-af-worker-01"), one("prod-af-worker-01"), one("dev-af-worker-01")]}),
    );
    assert_eq!(status, 200, "{batch}");
    let ids: Vec<String> = batch["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|answer| answer["decision_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(eventually(|| std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        == 3));
    let lines: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    for ((line, id), answer) in lines
        .iter()
        .zip(&ids)
        .zip(batch["answers"].as_array().unwrap())
    {
        assert_eq!(line["decision_id"], json!(id));
        assert_eq!(line["decision"], answer["decision"]);
        assert_eq!(line["source"], "http");
    }
    assert_eq!(lines[1]["host"], "prod-af-worker-01");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The sidecar on `dir`, reloading when it changes.
fn serve_watched(dir: &Path) -> SocketAddr {
    let reload = runtime::server::ReloadConfig {
        dir: dir.to_path_buf(),
        options: common::options(),
        watch: true,
    };
    let config = ServerConfig {
        reload: Some(reload),
        ..ServerConfig::default()
    };
    common::serve_dir(dir, config, false).http
}

/// Polls until `check` holds, for at most ten seconds.
use common::eventually;

#[test]
fn hot_reload_swaps_good_sets_and_keeps_the_last_good_one() {
    let dir = std::env::temp_dir().join(format!("flowgate-reload-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &dir,
    );
    let address = serve_watched(&dir);
    let prod = json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "prod-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}});
    assert_eq!(post(address, "/v1/decide", &prod).1["decision"], "deny");
    let first_version = call(address, "GET", "/v1/policy", b"").1["content_hash"].clone();

    // A reviewed change lands: data engineers may now run ETL in prod too.
    let rules = dir.join("data-platform.gate");
    let text = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(
        &rules,
        text.replacen(
            "at host where env in {dev, staging};",
            "at host where env in {dev, staging, prod};",
            1,
        ),
    )
    .unwrap();
    assert!(
        eventually(|| post(address, "/v1/decide", &prod).1["decision"] == "allow"),
        "the change was not picked up"
    );
    let policy = call(address, "GET", "/v1/policy", b"").1;
    assert_ne!(policy["content_hash"], first_version);
    assert_eq!(policy["last_reload_error"], Value::Null);

    // A broken change: the last good set keeps serving and the failure is visible.
    std::fs::write(dir.join("broken.gate"), "permit triger;\n").unwrap();
    assert!(eventually(|| {
        !call(address, "GET", "/v1/policy", b"").1["last_reload_error"].is_null()
    }));
    let error = call(address, "GET", "/v1/policy", b"").1["last_reload_error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.contains("broken.gate:1:8") && error.contains("unknown-action"),
        "{error}"
    );
    assert_eq!(post(address, "/v1/decide", &prod).1["decision"], "allow");
    let metrics = call_text(address, "/metrics");
    assert!(
        metrics.contains("flowgate_reloads_total{outcome=\"rejected\"}"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("flowgate_reloads_total{outcome=\"rejected\"} 0"),
        "{metrics}"
    );

    // The directory disappears: still serving the last good set.
    std::fs::remove_dir_all(&dir).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(post(address, "/v1/decide", &prod).1["decision"], "allow");
}

/// A Kubernetes ConfigMap volume: the files are links through `..data` into a hidden,
/// timestamped directory, and an update swaps `..data` to a new directory in one rename,
/// then removes the old one. The set must load once (not again through the hidden
/// directories) and reload on the swap.
#[cfg(unix)]
#[test]
fn a_configmap_volume_loads_once_and_reloads_when_its_data_link_is_swapped() {
    use std::os::unix::fs::symlink;

    let volume = std::env::temp_dir().join(format!("flowgate-configmap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&volume);
    let policies = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    // ConfigMap keys are flat: the inventory's files sit beside the policy files.
    let publish = |version: &str, edit: &dyn Fn(&str, String) -> String| {
        let target = volume.join(version);
        std::fs::create_dir_all(&target).unwrap();
        for dir in [policies.clone(), policies.join("inventory")] {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                if entry.file_type().unwrap().is_file() {
                    let name = entry.file_name().into_string().unwrap();
                    let text = std::fs::read_to_string(entry.path()).unwrap();
                    std::fs::write(target.join(&name), edit(&name, text)).unwrap();
                }
            }
        }
        target
    };
    let first = publish("..2026_12_03_08_00_00.1", &|_, text| text);
    symlink(first.file_name().unwrap(), volume.join("..data")).unwrap();
    for entry in std::fs::read_dir(&first).unwrap().flatten() {
        let name = entry.file_name();
        symlink(Path::new("..data").join(&name), volume.join(&name)).unwrap();
    }

    let address = serve_watched(&volume);
    let plain = runtime::Engine::load(&policies, common::options()).unwrap();
    let policy = call(address, "GET", "/v1/policy", b"").1;
    assert_eq!(policy["rules"], plain.policy_set().rules().len());
    let prod = json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "prod-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}});
    assert_eq!(post(address, "/v1/decide", &prod).1["decision"], "deny");

    // What the kubelet does on an update.
    let second = publish("..2026_12_03_09_00_00.2", &|name, text| {
        if name == "data-platform.gate" {
            text.replacen(
                "at host where env in {dev, staging};",
                "at host where env in {dev, staging, prod};",
                1,
            )
        } else {
            text
        }
    });
    symlink(second.file_name().unwrap(), volume.join("..data_tmp")).unwrap();
    std::fs::rename(volume.join("..data_tmp"), volume.join("..data")).unwrap();
    std::fs::remove_dir_all(&first).unwrap();

    assert!(
        eventually(|| post(address, "/v1/decide", &prod).1["decision"] == "allow"),
        "the swapped ConfigMap was not picked up"
    );
    let policy = call(address, "GET", "/v1/policy", b"").1;
    assert_eq!(policy["last_reload_error"], Value::Null);
    let _ = std::fs::remove_dir_all(&volume);
}

/// git-sync publishes each commit as a new worktree and swaps a link to it in one rename,
/// then deletes the old worktree. A watch on the old worktree sees that deletion once and
/// nothing after, so every swap must renew it. A policy folder deleted and made again is
/// watched again too.
#[cfg(unix)]
#[test]
fn every_link_swap_reloads_and_a_recreated_folder_is_watched_again() {
    use std::os::unix::fs::symlink;

    let volume = std::env::temp_dir().join(format!("flowgate-git-sync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&volume);
    let worktree = |name: &str| volume.join(".worktrees").join(name);
    let link = volume.join("current");
    let add_rule = |dir: &Path, name: &str| {
        let rule = format!(
            "\n@id(\"sync-{name}\")\npermit view\n  to group \"g-{name}\"\n  at host where env != prod;\n"
        );
        let file = dir.join("operations.gate");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(file, text + &rule).unwrap();
    };
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &worktree("1"),
    );
    symlink(".worktrees/1", &link).unwrap();

    let address = serve_watched(&link);
    let rules = || {
        call(address, "GET", "/v1/policy", b"").1["rules"]
            .as_u64()
            .unwrap()
    };
    let base = rules();

    for (sync, name) in ["2", "3", "4"].into_iter().enumerate() {
        let previous = worktree(&(sync + 1).to_string());
        copy_dir(&previous, &worktree(name));
        add_rule(&worktree(name), name);
        symlink(format!(".worktrees/{name}"), volume.join("current.tmp")).unwrap();
        std::fs::rename(volume.join("current.tmp"), &link).unwrap();
        std::fs::remove_dir_all(&previous).unwrap();
        let expected = base + sync as u64 + 1;
        assert!(
            eventually(|| rules() == expected),
            "swap {name} was not picked up: {} rules, expected {expected}",
            rules()
        );
    }

    // The folder disappears: the last good set keeps serving, and the failure shows.
    std::fs::remove_file(&link).unwrap();
    std::fs::remove_dir_all(worktree("4")).unwrap();
    assert!(eventually(|| {
        !call(address, "GET", "/v1/policy", b"").1["last_reload_error"].is_null()
    }));
    assert_eq!(rules(), base + 3);

    // It comes back as a plain folder, and edits in it are seen again.
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"),
        &link,
    );
    assert!(
        eventually(|| rules() == base),
        "the recreated folder was not loaded"
    );
    add_rule(&link, "after");
    assert!(
        eventually(|| rules() == base + 1),
        "an edit in the recreated folder was not picked up"
    );
    let policy = call(address, "GET", "/v1/policy", b"").1;
    assert_eq!(policy["last_reload_error"], Value::Null);
    let _ = std::fs::remove_dir_all(&volume);
}

fn call_text(address: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn forward_auth_config(proxy: runtime::server::Proxy, host: &str) -> ServerConfig {
    let mut routes = runtime::routes::RouteTable::airflow();
    routes.host = runtime::routes::HostSource::Fixed(host.to_owned());
    ServerConfig {
        forward_auth: Some(runtime::server::ForwardAuthConfig {
            proxy,
            routes,
            oidc: None,
            trusted_headers: Some(runtime::server::TrustedHeaders {
                user: String::from("x-remote-user"),
                groups: String::from("x-remote-groups"),
                peers: vec!["127.0.0.1".parse().unwrap()],
            }),
        }),
        ..ServerConfig::default()
    }
}

/// A forward-auth call with extra headers; returns the status and the response head.
fn auth(address: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response.to_lowercase())
}

const ALICE: [(&str, &str); 2] = [
    ("X-Remote-User", "alice"),
    ("X-Remote-Groups", "data-eng, web-ops"),
];

#[test]
fn forward_auth_behind_nginx_reads_only_nginx_headers() {
    let address = start(forward_auth_config(
        runtime::server::Proxy::Nginx,
        "stg-af-worker-01",
    ));
    let trigger = [
        ("X-Original-Method", "POST"),
        ("X-Original-URI", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    let (status, head) = auth(
        address,
        "GET",
        "/v1/forward-auth",
        &[&ALICE[..], &trigger[..]].concat(),
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("x-flowgate-principal: alice") && head.contains("x-flowgate-decision-id:"),
        "{head}"
    );

    // Not a data-eng DAG: denied, with the reason for the proxy's logs.
    let other = [
        ("X-Original-Method", "POST"),
        ("X-Original-URI", "/api/v2/dags/finance_month_end/dagRuns"),
    ];
    let (status, head) = auth(
        address,
        "GET",
        "/v1/forward-auth",
        &[&ALICE[..], &other[..]].concat(),
    );
    assert_eq!(status, 403, "{head}");
    assert!(
        head.contains("x-flowgate-reason: no rule permits this request"),
        "{head}"
    );

    // A client forging Traefik's headers through nginx changes nothing.
    let forged = [
        ("X-Original-Method", "POST"),
        ("X-Original-URI", "/api/v2/dags/finance_month_end/dagRuns"),
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        auth(
            address,
            "GET",
            "/v1/forward-auth",
            &[&ALICE[..], &forged[..]].concat()
        )
        .0,
        403
    );
    let only_forged = [
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        auth(
            address,
            "GET",
            "/v1/forward-auth",
            &[&ALICE[..], &only_forged[..]].concat()
        )
        .0,
        403
    );

    // No identity: 401. Unknown route: fail closed with a reason.
    assert_eq!(auth(address, "GET", "/v1/forward-auth", &trigger).0, 401);
    let unknown = [
        ("X-Original-Method", "POST"),
        ("X-Original-URI", "/api/v2/variables"),
    ];
    let (status, head) = auth(
        address,
        "GET",
        "/v1/forward-auth",
        &[&ALICE[..], &unknown[..]].concat(),
    );
    assert_eq!(status, 403);
    assert!(
        head.contains("no route matches post /api/v2/variables"),
        "{head}"
    );
}

#[test]
fn forward_auth_behind_traefik_and_envoy() {
    let traefik = start(forward_auth_config(
        runtime::server::Proxy::Traefik,
        "stg-af-worker-01",
    ));
    let trigger = [
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        auth(
            traefik,
            "GET",
            "/v1/forward-auth",
            &[&ALICE[..], &trigger[..]].concat()
        )
        .0,
        200
    );
    let forged = [
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/v2/dags/finance_month_end/dagRuns"),
        ("X-Original-URI", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        auth(
            traefik,
            "GET",
            "/v1/forward-auth",
            &[&ALICE[..], &forged[..]].concat()
        )
        .0,
        403
    );

    let envoy = start(forward_auth_config(
        runtime::server::Proxy::Envoy {
            prefix: String::from("/v1/forward-auth"),
        },
        "prod-af-worker-01",
    ));
    // In prod, alice's data-eng grant does not apply; on staging it would.
    assert_eq!(
        auth(
            envoy,
            "POST",
            "/v1/forward-auth/api/v2/dags/etl_daily/dagRuns",
            &ALICE
        )
        .0,
        403
    );
    let envoy_staging = start(forward_auth_config(
        runtime::server::Proxy::Envoy {
            prefix: String::from("/v1/forward-auth"),
        },
        "stg-af-worker-01",
    ));
    assert_eq!(
        auth(
            envoy_staging,
            "POST",
            "/v1/forward-auth/api/v2/dags/etl_daily/dagRuns",
            &ALICE
        )
        .0,
        200
    );
    // Identity headers from an untrusted peer are ignored: the trusted list is loopback only.
    let mut config = forward_auth_config(runtime::server::Proxy::Traefik, "stg-af-worker-01");
    if let Some(forward) = config.forward_auth.as_mut()
        && let Some(trusted) = forward.trusted_headers.as_mut()
    {
        trusted.peers = vec!["10.9.9.9".parse().unwrap()];
    }
    let untrusted = start(config);
    assert_eq!(
        auth(
            untrusted,
            "GET",
            "/v1/forward-auth",
            &[&ALICE[..], &trigger[..]].concat()
        )
        .0,
        401
    );
}

#[test]
fn the_openapi_document_matches_the_served_api() {
    let address = start(ServerConfig::default());
    let (status, document) = call(address, "GET", "/v1/openapi.json", b"");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    let listed: Vec<String> = document["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let expected: Vec<String> = runtime::server::documented_paths()
        .iter()
        .map(|(path, _)| (*path).to_owned())
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        listed, sorted,
        "the document lists exactly the served paths"
    );
    for (path, methods) in runtime::server::documented_paths() {
        for method in methods {
            assert!(
                document["paths"][path][method].is_object(),
                "{method} {path} is documented"
            );
            // Served: anything but the router's 404 (forward-auth is off here and says so).
            let (status, body) = call(address, &method.to_uppercase(), path, b"{}");
            let not_served = status == 404 && body["error"]["code"] == "not-found";
            assert!(
                !not_served && status != 405,
                "{method} {path} is served ({status} {body})"
            );
        }
    }
}

#[test]
fn slow_and_bloated_request_heads_are_cut_off() {
    let limits = runtime::server::ConnectionLimits {
        header_read_timeout: Duration::from_millis(500),
        max_header_bytes: 16 * 1024,
        ..Default::default()
    };
    let log = std::env::temp_dir().join(format!("flowgate-heads-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let address = start(ServerConfig {
        limits,
        log: Some(runtime::decision_log::LogConfig {
            sink: runtime::decision_log::LogSink::File(log.clone()),
            ..Default::default()
        }),
        ..ServerConfig::default()
    });

    // Slowloris: half a request head, then silence. The server hangs up.
    let mut slow = TcpStream::connect(address).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let clock = std::time::Instant::now();
    let mut buffer = Vec::new();
    let _ = slow.read_to_end(&mut buffer);
    assert!(
        clock.elapsed() < Duration::from_secs(4),
        "the connection was held for {:?}",
        clock.elapsed()
    );

    // A header flood: one header of 100 KB. Refused (431) or cut, never served.
    let flood = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Flood: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(flood.as_bytes());
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(!response.starts_with("HTTP/1.1 200"), "{response}");

    // Everyone else is still served.
    assert_eq!(call(address, "GET", "/healthz", b"").0, 200);

    // Both show in the decision log.
    let logged = eventually(|| {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("\"slow-request-head\"") && text.contains("\"request-head-too-large\"")
    });
    assert!(
        logged,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn reloads_of_a_large_set_under_traffic_fail_no_request() {
    // 10,000 rules in one file, swapped while clients keep asking.
    let dir = std::env::temp_dir().join(format!("flowgate-reload-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let rules = |env: &str| {
        let mut text = String::from(
            "enum Env { dev, prod }\nhost { env: Env }\nactions { trigger, view }\nhost \"h1\" { env: prod }\n",
        );
        for index in 0..10_000 {
            text.push_str(&format!(
                "@id(\"r{index}\") permit view to group \"g{}\" at host where env == {env};\n",
                index % 200
            ));
        }
        text
    };
    std::fs::write(dir.join("set.gate"), rules("prod")).unwrap();
    let address = serve_watched(&dir);
    let first = call(address, "GET", "/v1/policy", b"").1["content_hash"].clone();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut answered = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let request = json!({"principal": {"id": "u", "groups": [format!("g{client}")]}, "action": "view", "host": "h1"});
                    let (status, answer) = post(address, "/v1/decide", &request);
                    assert_eq!(status, 200, "{answer}");
                    assert!(answer["decision"] == "allow" || answer["decision"] == "deny", "{answer}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    // Flip the set three times under traffic: prod grants, then dev grants, then prod again.
    for env in ["dev", "prod", "dev"] {
        std::thread::sleep(Duration::from_millis(400));
        std::fs::write(dir.join("set.gate"), rules(env)).unwrap();
    }
    // Loading 10,000 rules takes a while in a debug build; traffic goes on meanwhile.
    assert!(eventually(
        || call(address, "GET", "/v1/policy", b"").1["content_hash"] != first
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let answered: usize = clients
        .into_iter()
        .map(|client| client.join().expect("no client saw a failed request"))
        .sum();
    assert!(answered > 20, "only {answered} requests were made");
    let metrics = call_text(address, "/metrics");
    assert!(
        !metrics.contains("flowgate_reloads_total{outcome=\"ok\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowgate_reloads_total{outcome=\"rejected\"} 0"),
        "{metrics}"
    );
}

/// Reads one keep-alive answer: its status and body.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut byte = [0_u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "the connection closed");
        bytes.push(byte[0]);
    }
    let head = String::from_utf8(bytes).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

/// With HTTP on threads of its own (as `flowgate serve` runs), keep-alive connections
/// handed to different threads are all served, and shutdown still finishes what is in
/// flight and writes every decision to the log before `serve` returns.
#[test]
fn http_threads_serve_every_connection_and_stop_cleanly() {
    let log = std::env::temp_dir().join(format!("flowgate-threads-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let config = ServerConfig {
        http_threads: std::num::NonZeroUsize::new(2),
        log: Some(runtime::decision_log::LogConfig {
            sink: runtime::decision_log::LogSink::File(log.clone()),
            ..Default::default()
        }),
        ..ServerConfig::default()
    };
    let server = common::Stoppable::start(config);
    let address = server.http;
    let body = json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}}).to_string();
    let request = format!(
        "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut streams: Vec<TcpStream> = (0..6)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    for _ in 0..5 {
        for stream in &mut streams {
            stream.write_all(request.as_bytes()).unwrap();
        }
        for stream in &mut streams {
            let (status, answer) = read_answer(stream);
            assert_eq!(status, 200, "{answer}");
            assert!(answer.contains("\"decision\":\"allow\""), "{answer}");
        }
    }
    // Each new connection went to the thread serving the fewest: three each, with this
    // call's connection still being counted on one of them.
    let metrics = call_text(address, "/metrics");
    let open: Vec<u64> = metrics
        .lines()
        .filter(|line| line.starts_with("flowgate_http_connections{"))
        .map(|line| line.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(open.len(), 2, "{metrics}");
    assert_eq!(open.iter().sum::<u64>(), 7, "{metrics}");
    assert!(open.contains(&3) && open.contains(&4), "{metrics}");
    drop(streams);
    server.stop();
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 30, "{lines}");
    let _ = std::fs::remove_file(&log);
}
