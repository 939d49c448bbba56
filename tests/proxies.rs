//! Flowgate behind real proxies and with real tokens: OIDC bearer tokens signed with keys
//! made at test time, and nginx `auth_request` in front of a stand-in for Airflow's API.
//! `.ci/run` installs nginx; locally a missing proxy skips with a message.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod support;

use std::time::Duration;

use serde_json::json;

use support::{
    Flowgate, IdentityProvider, Keys, Proxy, Upstream, base64url, claims, http, http_body, require,
};

const ISSUER: &str = "https://login.corp.example";

fn oidc_flags(keys: &Keys) -> Vec<String> {
    vec![
        String::from("--oidc-issuer"),
        String::from(ISSUER),
        String::from("--oidc-audience"),
        String::from("flowgate"),
        String::from("--oidc-jwks"),
        keys.dir.join("jwks.json").to_string_lossy().into_owned(),
    ]
}

#[test]
fn forward_auth_verifies_oidc_tokens() {
    if !require("openssl") {
        return;
    }
    let keys = Keys::generate();
    let mut args: Vec<String> = ["--proxy", "traefik", "--host-header", "X-Target-Host"]
        .map(String::from)
        .to_vec();
    args.extend(oidc_flags(&keys));
    let flowgate = Flowgate::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let call_with = |token: &str, dag: &str, host: &str| {
        let authorization = format!("Bearer {token}");
        let uri = format!("/api/v2/dags/{dag}/dagRuns");
        http(
            flowgate.address,
            "GET",
            "/v1/forward-auth",
            &[
                ("Authorization", authorization.as_str()),
                ("X-Forwarded-Method", "POST"),
                ("X-Forwarded-Uri", uri.as_str()),
                ("X-Target-Host", host),
            ],
        )
    };
    use jsonwebtoken::Algorithm::{ES256, EdDSA, HS256, RS256};
    let alice = claims("alice@corp.example", &["data-eng"], &["pwd"], 300);
    for (algorithm, kid, file) in [
        (RS256, "rsa-1", "rsa.pem"),
        (ES256, "ec-1", "ec.pem"),
        (EdDSA, "ed-1", "ed.pem"),
    ] {
        let (status, head) = call_with(
            &keys.sign(algorithm, kid, file, &alice),
            "etl_daily",
            "stg-af-worker-01",
        );
        assert_eq!(status, 200, "{algorithm:?}: {head}");
        assert!(
            head.contains("x-flowgate-principal: alice@corp.example"),
            "{head}"
        );
    }
    // MFA from `amr` reaches `pii-needs-mfa`.
    let carol = |amr: &[&str]| {
        keys.sign(
            RS256,
            "rsa-1",
            "rsa.pem",
            &claims("carol@corp.example", &["data-eng-prod"], amr, 300),
        )
    };
    assert_eq!(
        call_with(&carol(&["pwd"]), "etl_customers", "prod-af-worker-02").0,
        403
    );
    assert_eq!(
        call_with(
            &carol(&["pwd", "mfa"]),
            "etl_customers",
            "prod-af-worker-02"
        )
        .0,
        200
    );

    let mut wrong_audience = alice.clone();
    wrong_audience["aud"] = json!("someone-else");
    let mut wrong_issuer = alice.clone();
    wrong_issuer["iss"] = json!("https://evil.example");
    let rejected = [
        (
            "expired",
            keys.sign(
                RS256,
                "rsa-1",
                "rsa.pem",
                &claims("alice@corp.example", &["data-eng"], &[], -600),
            ),
        ),
        (
            "wrong audience",
            keys.sign(RS256, "rsa-1", "rsa.pem", &wrong_audience),
        ),
        (
            "wrong issuer",
            keys.sign(RS256, "rsa-1", "rsa.pem", &wrong_issuer),
        ),
        (
            "bad signature",
            keys.sign(RS256, "rsa-1", "other.pem", &alice),
        ),
        ("unknown key", keys.sign(RS256, "rsa-9", "rsa.pem", &alice)),
        (
            "HMAC with the public key",
            keys.sign(HS256, "rsa-1", "rsa.pub.pem", &alice),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                base64url(br#"{"alg":"none","kid":"rsa-1"}"#),
                base64url(alice.to_string().as_bytes())
            ),
        ),
        ("garbage", String::from("not-a-token")),
    ];
    for (what, token) in rejected {
        let (status, head) = call_with(&token, "etl_daily", "stg-af-worker-01");
        assert_eq!(status, 401, "{what}: {head}");
    }
}

/// The same checks behind each proxy: allow reaches the upstream, deny gets 403 without
/// reaching it, forged forwarding headers change nothing, no or bad token gets 401.
/// Returns what the test set up, so callers can go on, or `None` when skipped.
fn check_proxy(
    program: &str,
    flags: &[&str],
    start: fn(&Flowgate, std::net::SocketAddr) -> Proxy,
) -> Option<ProxyCheck> {
    if !require(program) || !require("openssl") {
        return None;
    }
    let keys = Keys::generate();
    let upstream = Upstream::start();
    let log = keys.dir.join("decisions.log");
    let mut args: Vec<String> = ["--fixed-host", "stg-af-worker-01", "--decision-log"]
        .map(String::from)
        .to_vec();
    args.push(log.to_string_lossy().into_owned());
    args.extend(flags.iter().map(|flag| String::from(*flag)));
    args.extend(oidc_flags(&keys));
    let flowgate = Flowgate::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let proxy = start(&flowgate, upstream.address);

    let alice = keys.sign(
        jsonwebtoken::Algorithm::RS256,
        "rsa-1",
        "rsa.pem",
        &claims("alice@corp.example", &["data-eng"], &[], 300),
    );
    let bearer = format!("Bearer {alice}");
    let allowed = "/api/v2/dags/etl_daily/dagRuns";
    let denied = "/api/v2/dags/finance_month_end/dagRuns";
    // The proxy may need a moment to load its routes.
    let mut status = 0;
    for _ in 0..100 {
        status = http(
            proxy.address,
            "POST",
            allowed,
            &[("Authorization", bearer.as_str())],
        )
        .0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        status, 200,
        "{program}: an allowed call reaches the upstream"
    );
    let (status, response) = http(
        proxy.address,
        "POST",
        denied,
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(status, 403, "{program}: {response}");
    for forged in [
        [("X-Forwarded-Uri", allowed), ("X-Forwarded-Method", "POST")],
        [("X-Original-URI", allowed), ("X-Original-Method", "POST")],
    ] {
        let headers = [&[("Authorization", bearer.as_str())][..], &forged[..]].concat();
        assert_eq!(
            http(proxy.address, "POST", denied, &headers).0,
            403,
            "{program}: forged {forged:?}"
        );
    }
    assert_eq!(
        http(proxy.address, "POST", allowed, &[]).0,
        401,
        "{program}: no token"
    );
    assert_eq!(
        http(
            proxy.address,
            "POST",
            allowed,
            &[("Authorization", "Bearer nonsense")]
        )
        .0,
        401,
        "{program}: bad token"
    );
    std::thread::sleep(Duration::from_millis(100));
    let reached = upstream.requests();
    assert!(
        !reached.is_empty() && reached.iter().all(|line| line.contains(allowed)),
        "{program}: only allowed calls reach the upstream: {reached:?}"
    );
    Some(ProxyCheck {
        _keys: keys,
        flowgate,
        proxy,
        upstream,
        bearer,
        log,
    })
}

struct ProxyCheck {
    /// Holds the scratch directory with the JWKS and the decision log.
    _keys: Keys,
    flowgate: Flowgate,
    proxy: Proxy,
    upstream: Upstream,
    bearer: String,
    log: std::path::PathBuf,
}

/// The decision-log lines, once the writer has caught up with `at_least` of them.
fn log_lines(log: &std::path::Path, at_least: usize) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        if lines.len() >= at_least {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    lines
}

#[test]
fn behind_nginx_auth_request() {
    check_proxy("nginx", &["--proxy", "nginx"], Proxy::nginx);
}

#[test]
fn behind_traefik_forward_auth() {
    check_proxy("traefik", &["--proxy", "traefik"], Proxy::traefik);
}

#[test]
fn behind_envoy_ext_authz_http() {
    check_proxy("envoy", &["--proxy", "envoy"], Proxy::envoy);
}

#[test]
fn behind_envoy_ext_authz_grpc() {
    let Some(check) = check_proxy(
        "envoy",
        &["--grpc-listen", "127.0.0.1:0"],
        Proxy::envoy_grpc,
    ) else {
        return;
    };
    let bearer = [("Authorization", check.bearer.as_str())];
    // Envoy sends the body along, so a PATCH with `is_paused` is a pause (allowed for
    // data-eng off prod), and one without is an edit (not allowed).
    let (status, response) = http_body(
        check.proxy.address,
        "PATCH",
        "/api/v2/dags/etl_daily",
        &bearer,
        r#"{"is_paused": true}"#,
    );
    assert_eq!(status, 200, "pause: {response}");
    let (status, response) = http_body(
        check.proxy.address,
        "PATCH",
        "/api/v2/dags/etl_daily",
        &bearer,
        r#"{"description": "renamed"}"#,
    );
    assert_eq!(status, 403, "edit: {response}");
    assert!(
        response.contains("x-flowgate-reason"),
        "a deny says why: {response}"
    );
    // Bulk pause names its DAGs only in the body; each one is decided.
    let (status, response) = http_body(
        check.proxy.address,
        "PATCH",
        "/api/v2/dags",
        &bearer,
        r#"{"dag_ids": ["etl_daily", "finance_month_end"], "is_paused": true}"#,
    );
    assert_ne!(
        status, 200,
        "one denied DAG denies the bulk call: {response}"
    );

    let lines = log_lines(&check.log, 8);
    let grpc: Vec<_> = lines
        .iter()
        .filter(|line| line["source"] == "ext-authz-grpc")
        .collect();
    assert!(
        grpc.iter()
            .any(|line| line["action"] == "pause" && line["decision"] == "allow"),
        "the pause is logged: {grpc:?}"
    );
    assert!(
        grpc.iter()
            .any(|line| line["action"] == "edit" && line["decision"] == "deny"),
        "the edit is logged: {grpc:?}"
    );
    assert!(
        grpc.iter().any(|line| line["rejected"]["status"] == 401),
        "calls without identity are logged: {grpc:?}"
    );
    let reached = check.upstream.requests();
    assert!(
        reached.iter().any(|line| line.starts_with("PATCH")),
        "the pause reached the upstream: {reached:?}"
    );
    drop(check.flowgate);
}

#[test]
fn rotated_signing_keys_take_effect_on_sighup() {
    if !require("openssl") {
        return;
    }
    let keys = Keys::generate();
    let mut args: Vec<String> = ["--proxy", "traefik", "--fixed-host", "stg-af-worker-01"]
        .map(String::from)
        .to_vec();
    args.extend(oidc_flags(&keys));
    let flowgate = Flowgate::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    // The identity provider starts signing with a new key, `rsa-2`.
    let token = keys.sign(
        jsonwebtoken::Algorithm::RS256,
        "rsa-2",
        "other.pem",
        &claims("alice@corp.example", &["data-eng"], &[], 300),
    );
    let bearer = format!("Bearer {token}");
    let headers = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-Method", "POST"),
        ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        http(flowgate.address, "GET", "/v1/forward-auth", &headers).0,
        401,
        "an unknown key is refused"
    );
    // The JWKS is updated and the sidecar told with SIGHUP.
    let jwks = keys.dir.join("jwks.json");
    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&jwks).unwrap()).unwrap();
    document["keys"]
        .as_array_mut()
        .unwrap()
        .push(keys.rsa_jwk("other.pem", "rsa-2"));
    std::fs::write(&jwks, document.to_string()).unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &flowgate.child.id().to_string()])
        .status();
    let mut status = 0;
    for _ in 0..100 {
        status = http(flowgate.address, "GET", "/v1/forward-auth", &headers).0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200, "the rotated key is accepted after SIGHUP");
    // A JWKS that cannot be read keeps the keys already loaded.
    std::fs::write(&jwks, "not json").unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &flowgate.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        http(flowgate.address, "GET", "/v1/forward-auth", &headers).0,
        200
    );
}

#[test]
fn keys_from_the_issuer_are_discovered_refreshed_and_outlive_an_outage() {
    if !require("openssl") {
        return;
    }
    let keys = Keys::generate();
    let idp = IdentityProvider::start(json!({"keys": [keys.rsa_jwk("rsa.pem", "rsa-1")]}));
    let flowgate = Flowgate::start(&[
        "--proxy",
        "traefik",
        "--fixed-host",
        "stg-af-worker-01",
        "--oidc-issuer",
        &idp.issuer,
        "--oidc-audience",
        "flowgate",
        "--oidc-min-refresh-secs",
        "1",
    ]);
    let call = |kid: &str, key_file: &str| {
        let mut claims = claims("alice@corp.example", &["data-eng"], &[], 300);
        claims["iss"] = json!(idp.issuer);
        let token = keys.sign(jsonwebtoken::Algorithm::RS256, kid, key_file, &claims);
        let bearer = format!("Bearer {token}");
        let headers = [
            ("Authorization", bearer.as_str()),
            ("X-Forwarded-Method", "POST"),
            ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
        ];
        http(flowgate.address, "GET", "/v1/forward-auth", &headers).0
    };
    assert_eq!(
        call("rsa-1", "rsa.pem"),
        200,
        "keys found through discovery"
    );
    assert_eq!(idp.fetches(), 1);

    // The provider rotates to `rsa-2`: the first token it signs fetches the keys at once.
    std::thread::sleep(Duration::from_millis(1_100));
    idp.jwks.lock().unwrap()["keys"]
        .as_array_mut()
        .unwrap()
        .push(keys.rsa_jwk("other.pem", "rsa-2"));
    assert_eq!(
        call("rsa-2", "other.pem"),
        200,
        "a new key is fetched on sight"
    );
    assert_eq!(idp.fetches(), 2);

    // Made-up key ids are refused, and cannot make us hammer the provider.
    for _ in 0..5 {
        assert_eq!(call("made-up", "other.pem"), 401);
    }
    assert!(
        idp.fetches() <= 3,
        "rate-limited: {} fetches",
        idp.fetches()
    );

    // The provider goes down: known keys keep working, unknown ones are refused.
    idp.down.store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(call("made-up", "other.pem"), 401);
    assert_eq!(
        call("rsa-2", "other.pem"),
        200,
        "known keys outlive the outage"
    );
    let _ = std::process::Command::new("kill")
        .args(["-HUP", &flowgate.child.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        call("rsa-1", "rsa.pem"),
        200,
        "a failed refresh keeps the keys"
    );
}
