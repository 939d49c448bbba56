//! End-to-end tests of the `flowgate` binary on real directories.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const NOW: &str = "2026-11-22T12:00:00Z";

fn flowgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|error| panic!("cannot run flowgate: {error}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
    dir
}

/// A path as a command-line argument; test paths are always UTF-8.
fn arg(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

const SCHEMA: &str = "enum Env { dev, prod }\nhost { env: Env }\ndag { owner: String }\nactions { trigger, view }\nhost \"prod-sql-01\" { env: prod }\n";

#[test]
fn example_policies_check_clean_and_are_formatted() {
    let output = flowgate(&["check", "policies", "--deny-warnings", "--now", NOW]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert!(
        stdout(&output).contains("no problems found: 29 rules, 41 DAGs, 21 hosts"),
        "{}",
        stdout(&output)
    );
    let output = flowgate(&["fmt", "--check", "policies"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn errors_exit_one_with_file_line_and_column() {
    let dir = scratch("errors");
    write(&dir, "schema.gate", SCHEMA);
    write(
        &dir,
        "rules.gate",
        "permit trigger at host where env == prd;\n",
    );
    let output = flowgate(&["check", arg(&dir), "--now", NOW]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("error[unknown-enum-value]"), "{text}");
    assert!(text.contains("rules.gate:1:37"), "{text}");
    assert!(text.contains("did you mean `prod`?"), "{text}");
}

#[test]
fn warnings_pass_unless_denied() {
    let dir = scratch("warnings");
    write(&dir, "schema.gate", SCHEMA);
    write(&dir, "rules.gate", "permit view at host \"prod-sql-O1\";\n");
    let dir = arg(&dir);
    assert_eq!(
        flowgate(&["check", dir, "--now", NOW]).status.code(),
        Some(0)
    );
    let denied = flowgate(&["check", dir, "--now", NOW, "--deny-warnings"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(stdout(&denied).contains("warning[pattern-matches-nothing]"));
}

#[test]
fn machine_formats_are_well_formed() {
    let dir = scratch("formats");
    write(&dir, "schema.gate", SCHEMA);
    write(&dir, "rules.gate", "permit triger;\n");
    let dir = arg(&dir);

    let json: serde_json::Value =
        serde_json::from_slice(&flowgate(&["check", dir, "--format", "json"]).stdout)
            .unwrap_or_default();
    assert_eq!(json["diagnostics"][0]["code"], "unknown-action");
    assert_eq!(json["diagnostics"][0]["location"]["line"], 1);
    assert_eq!(json["diagnostics"][0]["location"]["column"], 8);

    let sarif: serde_json::Value =
        serde_json::from_slice(&flowgate(&["check", dir, "--format", "sarif"]).stdout)
            .unwrap_or_default();
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "unknown-action");
    assert_eq!(result["level"], "error");
    assert_eq!(
        result["locations"][0]["physicalLocation"]["region"]["startColumn"],
        8
    );
    assert_eq!(
        sarif["runs"][0]["tool"]["driver"]["rules"][0]["id"],
        "unknown-action"
    );

    let github = stdout(&flowgate(&["check", dir, "--format", "github"]));
    assert!(github.starts_with("::error file="), "{github}");
    assert!(github.contains("rules.gate,line=1,col=8,endLine=1,endColumn=14,title=unknown-action::unknown action `triger`"), "{github}");
}

#[test]
fn io_problems_exit_two() {
    let empty = scratch("no-gate-files");
    write(&empty, "notes.txt", "nothing here");
    let output = flowgate(&["check", arg(&empty)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no `.gate` files found"),
        "{}",
        stderr(&output)
    );

    let output = flowgate(&["check", "/nonexistent/policies"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("no such file or directory"),
        "{}",
        stderr(&output)
    );

    let dangling = scratch("unreadable");
    write(&dangling, "schema.gate", SCHEMA);
    #[cfg(unix)]
    let _ = std::os::unix::fs::symlink(
        dangling.join("missing-target"),
        dangling.join("broken.gate"),
    );
    let output = flowgate(&["check", arg(&dangling)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("broken.gate: cannot read"),
        "{}",
        stderr(&output)
    );

    assert_eq!(
        flowgate(&["check", "--format", "yaml"]).status.code(),
        Some(2)
    );
    assert_eq!(
        flowgate(&["check", "--now", "yesterday"]).status.code(),
        Some(2)
    );
}

#[test]
fn fmt_rewrites_keeps_comments_and_refuses_broken_files() {
    let dir = scratch("fmt");
    let messy = write(
        &dir,
        "rules.gate",
        "// lead\n@id(\"a\")   permit view   to group \"g\" // trailing\n  on dag \"x\";\n",
    );
    let output = flowgate(&["fmt", "--check", arg(&dir)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("rules.gate"));

    assert_eq!(flowgate(&["fmt", arg(&dir)]).status.code(), Some(0));
    let formatted = std::fs::read_to_string(&messy).unwrap_or_default();
    assert_eq!(
        formatted,
        "// lead\n@id(\"a\")\npermit view\n  to group \"g\" // trailing\n  on dag \"x\";\n"
    );
    assert_eq!(
        flowgate(&["fmt", "--check", arg(&dir)]).status.code(),
        Some(0)
    );

    let broken_text = "permit view on dag \"x\"\npermit trigger;;\n";
    let broken = write(&dir, "broken.gate", broken_text);
    let output = flowgate(&["fmt", arg(&broken)]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("broken.gate:1:23"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(&broken).unwrap_or_default(),
        broken_text,
        "a broken file is never rewritten"
    );
}

#[test]
fn test_runs_every_expectation_with_coverage_json_and_junit() {
    let junit = std::env::temp_dir().join(format!("flowgate-junit-{}.xml", std::process::id()));
    let output = flowgate(&[
        "test",
        "policies",
        "--now",
        NOW,
        "--coverage",
        "--junit",
        arg(&junit),
    ]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(text.ends_with("50 passed, 0 failed\n"), "{text}");
    assert!(
        text.contains("coverage: 29 of 29 rules exercised by a test"),
        "{text}"
    );
    assert!(
        text.contains("ok    policies/tests.gate:4:3 data engineers may run ETL on staging only"),
        "{text}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    assert!(
        xml.contains("<testsuites name=\"flowgate\" tests=\"50\" failures=\"0\">"),
        "{xml}"
    );

    let json: serde_json::Value = serde_json::from_slice(
        &flowgate(&["test", "policies", "--now", NOW, "--format", "json"]).stdout,
    )
    .unwrap_or_default();
    assert_eq!(json["passed"], 50);
    assert_eq!(
        json["results"][0]["deciding"][0],
        "data-eng-operate-nonprod"
    );
}

#[test]
fn failing_expectations_exit_one_and_say_why() {
    let dir = scratch("failing-test");
    write(&dir, "schema.gate", SCHEMA);
    write(
        &dir,
        "rules.gate",
        "@id(\"prod-view\") permit view at host where env == prod;\n\ntest \"t\" {\n  expect allow view by user \"a\" on dag \"d\" at host \"prod-sql-01\";\n  expect allow trigger by user \"a\" on dag \"d\" at host \"prod-sql-01\";\n}\n",
    );
    let junit = dir.join("junit.xml");
    let output = flowgate(&["test", arg(&dir), "--now", NOW, "--junit", arg(&junit)]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("FAIL  ") && text.contains("rules.gate:5:3"),
        "{text}"
    );
    assert!(text.contains("got deny (no rule decided)"), "{text}");
    assert!(text.ends_with("1 passed, 1 failed\n"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap_or_default();
    assert!(
        xml.contains("<failure message=\"expected allow, got deny (no rule decided)\">"),
        "{xml}"
    );
}

#[test]
fn eval_answers_from_flags_and_from_json() {
    let output = flowgate(&[
        "eval",
        "policies",
        "--principal",
        "carol",
        "--groups",
        "data-eng-prod",
        "--action",
        "trigger",
        "--dag",
        "etl_customers",
        "--host",
        "PROD-AF-WORKER-02.",
        "--now",
        NOW,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    assert_eq!(answer["decision"], "deny");
    assert_eq!(answer["deciding"][0], "pii-needs-mfa");
    assert_eq!(answer["missing"][0], "principal.mfa");

    let dir = scratch("eval-json");
    let request = write(
        &dir,
        "request.json",
        r#"{"principal": {"id": "carol", "groups": ["data-eng-prod"], "mfa": true}, "action": "trigger", "dag": "etl_customers", "host": "prod-af-worker-02", "context": {"time": "2026-11-24T10:00:00Z"}}"#,
    );
    let answer: serde_json::Value =
        serde_json::from_slice(&flowgate(&["eval", "policies", "--request", arg(&request)]).stdout)
            .unwrap_or_default();
    assert_eq!(answer["decision"], "allow");

    let bad = write(
        &dir,
        "bad.json",
        r#"{"principal": {"id": "carol", "mfa": "yes"}, "action": "trigger"}"#,
    );
    let output = flowgate(&["eval", "policies", "--request", arg(&bad)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("bad request at `/principal/mfa`: expected Bool"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn explain_names_the_nearest_permit_and_what_failed() {
    let output = flowgate(&[
        "explain",
        "policies",
        "--principal",
        "alice",
        "--groups",
        "data-eng",
        "--action",
        "trigger",
        "--dag",
        "etl_daily",
        "--host",
        "prod-af-worker-01",
        "--now",
        NOW,
        "--format",
        "human",
    ]);
    let text = stdout(&output);
    assert!(text.starts_with("deny\n"), "{text}");
    assert!(
        text.contains("`data-eng-operate-nonprod`: host `prod-af-worker-01` has env `prod`, rule wants `dev` or `staging`"),
        "{text}"
    );
}

#[test]
fn serve_answers_over_http_and_stops_on_sigterm() {
    use std::io::{BufRead, BufReader, Read, Write};
    let log = std::env::temp_dir().join(format!("flowgate-serve-log-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "serve",
            "policies",
            "--listen",
            "127.0.0.1:0",
            "--decision-log",
            arg(&log),
            "--log-mask",
            "principal.id",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start flowgate serve: {error}"));
    let mut stderr = BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let mut banner = String::new();
    let _ = stderr.read_line(&mut banner);
    let address = banner
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    assert!(banner.contains("29 rules"), "{banner}");

    let decide = || {
        let body = r#"{"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}}"#;
        let mut stream = std::net::TcpStream::connect(&address)
            .unwrap_or_else(|error| panic!("cannot connect to {address}: {error}"));
        let _ = write!(
            stream,
            "POST /v1/decide HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("\"decision\":\"allow\""), "{response}");
    };
    decide();

    #[cfg(unix)]
    {
        // logrotate moves the log away and sends SIGHUP from `postrotate`: the next line
        // goes to a new file at the path, none to the moved one. (Sooner than the writer's
        // own check of its path, which comes at most once a second.)
        let rotated = log.with_extension("jsonl.1");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
            < 1
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the first line never came"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        std::fs::rename(&log, &rotated).unwrap_or_else(|error| panic!("{error}"));
        let _ = Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status();
        std::thread::sleep(std::time::Duration::from_millis(300));
        decide();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let status = child
            .wait()
            .unwrap_or_else(|error| panic!("flowgate serve did not stop: {error}"));
        assert!(status.success(), "graceful shutdown exits 0, got {status}");
        let mut rest = String::new();
        let _ = stderr.read_to_string(&mut rest);
        assert!(rest.contains("flowgate: stopped"), "{rest}");
        // The decision was logged, masked, and flushed before the process exited.
        let lines = std::fs::read_to_string(&log).unwrap_or_default();
        let entry: serde_json::Value =
            serde_json::from_str(lines.lines().next().unwrap_or_default()).unwrap_or_default();
        assert_eq!(entry["decision"], "allow", "{lines}");
        assert_eq!(entry["principal"]["id"], "***", "{lines}");
        assert_eq!(entry["deciding"][0], "data-eng-operate-nonprod", "{lines}");
        assert_eq!(lines.lines().count(), 1, "{lines}");
        let moved = std::fs::read_to_string(&rotated).unwrap_or_default();
        assert_eq!(moved.lines().count(), 1, "{moved}");
        let _ = std::fs::remove_file(&rotated);
    }
    #[cfg(not(unix))]
    let _ = child.kill();
}

#[test]
fn serve_reads_a_config_file_and_refuses_unknown_keys() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = scratch("config");
    let log = dir.join("decisions.jsonl");
    let policies = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let config = write(
        &dir,
        "flowgate.toml",
        &format!(
            r#"
policy_dir = "{policies}"
listen = "127.0.0.1:0"
workers = 1

[limits]
idle_timeout_secs = 300

[log]
path = "{log}"

[forward_auth]
proxy = "traefik"
host = {{ fixed = "stg-af-worker-01" }}

[[forward_auth.route]]
method = "POST"
path = "/api/v2/pools/{{pool}}"
action = "edit"

[trusted_headers]
peers = ["127.0.0.1"]
"#,
            policies = policies.display(),
            log = log.display()
        ),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args(["serve", "--config", arg(&config)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start flowgate serve: {error}"));
    let mut server_stderr =
        BufReader::new(child.stderr.take().unwrap_or_else(|| panic!("no stderr")));
    let mut banner = String::new();
    let _ = server_stderr.read_line(&mut banner);
    assert!(banner.contains("1 worker)"), "{banner}");
    let address = banner
        .rsplit("http://")
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    // The custom route maps the call to `edit`, which `airflow-admins-nonprod` allows off prod.
    let mut stream =
        std::net::TcpStream::connect(&address).unwrap_or_else(|error| panic!("{banner}: {error}"));
    let _ = write!(
        stream,
        "GET /v1/forward-auth HTTP/1.1\r\nHost: x\r\nX-Forwarded-Method: POST\r\nX-Forwarded-Uri: /api/v2/pools/default\r\nX-Remote-User: adam\r\nX-Remote-Groups: airflow-admins\r\nConnection: close\r\n\r\n"
    );
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    #[cfg(unix)]
    {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    let _ = child.wait();
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("\"action\":\"edit\"")
    );

    let bad = write(
        &dir,
        "bad.toml",
        "listen = \"127.0.0.1:0\"\n[log]\npaht = \"x\"\n",
    );
    let output = flowgate(&["serve", "--config", arg(&bad)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("unknown field `paht`"),
        "{}",
        stderr(&output)
    );

    let no_workers = write(&dir, "no-workers.toml", "workers = 0\n");
    let output = flowgate(&["serve", "--config", arg(&no_workers)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("workers") && stderr(&output).contains("nonzero"),
        "{}",
        stderr(&output)
    );
    let output = flowgate(&["serve", "--workers", "0"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--workers"), "{}", stderr(&output));

    // A timeout of 0 would cut off every client; one past a day is a typo.
    let no_idle = write(&dir, "no-idle.toml", "[limits]\nidle_timeout_secs = 0\n");
    let output = flowgate(&["serve", "--config", arg(&no_idle)]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("idle_timeout_secs") && text.contains("from 1 to 86400 seconds, not 0"),
        "{text}"
    );
    let output = flowgate(&["serve", "--header-timeout-secs", "86401"]);
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(
        text.contains("--header-timeout-secs") && text.contains("from 1 to 86400 seconds"),
        "{text}"
    );
}
