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

use support::{Flowgate, Keys, Upstream, base64url, claims, http, require};

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

#[test]
fn behind_nginx_auth_request() {
    if !require("nginx") || !require("openssl") {
        return;
    }
    let keys = Keys::generate();
    let upstream = Upstream::start();
    let mut args: Vec<String> = ["--proxy", "nginx", "--fixed-host", "stg-af-worker-01"]
        .map(String::from)
        .to_vec();
    args.extend(oidc_flags(&keys));
    let flowgate = Flowgate::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let nginx = support::Nginx::start(flowgate.address, upstream.address);

    let alice = keys.sign(
        jsonwebtoken::Algorithm::RS256,
        "rsa-1",
        "rsa.pem",
        &claims("alice@corp.example", &["data-eng"], &[], 300),
    );
    let bearer = format!("Bearer {alice}");
    // Allowed: nginx asks Flowgate, then the upstream is reached.
    let (status, response) = http(
        nginx.address,
        "POST",
        "/api/v2/dags/etl_daily/dagRuns",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("upstream ok"), "{response}");
    // Denied: 403, and the upstream never sees the call.
    let (status, response) = http(
        nginx.address,
        "POST",
        "/api/v2/dags/finance_month_end/dagRuns",
        &[("Authorization", bearer.as_str())],
    );
    assert_eq!(status, 403, "{response}");
    // Forging the Traefik headers through nginx changes nothing.
    let forged = [
        ("Authorization", bearer.as_str()),
        ("X-Forwarded-Uri", "/api/v2/dags/etl_daily/dagRuns"),
        ("X-Forwarded-Method", "POST"),
    ];
    assert_eq!(
        http(
            nginx.address,
            "POST",
            "/api/v2/dags/finance_month_end/dagRuns",
            &forged
        )
        .0,
        403
    );
    // Nor does forging nginx's own header: nginx overwrites it with the real URI.
    let forged = [
        ("Authorization", bearer.as_str()),
        ("X-Original-URI", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    assert_eq!(
        http(
            nginx.address,
            "POST",
            "/api/v2/dags/finance_month_end/dagRuns",
            &forged
        )
        .0,
        403
    );
    // No token, or a bad one: 401.
    assert_eq!(
        http(nginx.address, "POST", "/api/v2/dags/etl_daily/dagRuns", &[]).0,
        401
    );
    assert_eq!(
        http(
            nginx.address,
            "POST",
            "/api/v2/dags/etl_daily/dagRuns",
            &[("Authorization", "Bearer nonsense")]
        )
        .0,
        401
    );
    std::thread::sleep(Duration::from_millis(100));
    let reached = upstream.requests();
    assert_eq!(
        reached,
        ["POST /api/v2/dags/etl_daily/dagRuns HTTP/1.0"],
        "only the allowed call reached the upstream"
    );
}
