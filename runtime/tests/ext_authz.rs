//! Envoy's `ext_authz` over gRPC, called by a real gRPC client: the call Envoy describes is
//! decided, headers a client adds cannot change which call that is, the body decides
//! pause from edit, and requests missing what a decision needs are denied with a reason.

#![cfg(feature = "server")]
#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod common;

use std::collections::HashMap;

use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, attribute_context};
use runtime::routes::{HostSource, RouteTable};
use runtime::server::{ForwardAuthConfig, Proxy, ServerConfig, TrustedHeaders};

const OK: i32 = 0;
const PERMISSION_DENIED: i32 = 7;
const UNAUTHENTICATED: i32 = 16;

fn config() -> ServerConfig {
    let mut routes = RouteTable::airflow();
    routes.host = HostSource::Fixed(String::from("stg-af-worker-01"));
    ServerConfig {
        forward_auth: Some(ForwardAuthConfig {
            proxy: Proxy::Envoy {
                prefix: String::from("/v1/forward-auth"),
            },
            routes,
            oidc: None,
            trusted_headers: Some(TrustedHeaders {
                user: String::from("x-remote-user"),
                groups: String::from("x-remote-groups"),
                peers: vec!["127.0.0.1".parse().unwrap()],
            }),
        }),
        ..ServerConfig::default()
    }
}

fn check_request(method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> CheckRequest {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), (*value).to_owned()))
        .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: method.to_owned(),
                    path: path.to_owned(),
                    headers,
                    raw_body: body.as_bytes().to_vec(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

const ALICE: [(&str, &str); 2] = [("x-remote-user", "alice"), ("x-remote-groups", "data-eng")];

fn code(response: &CheckResponse) -> i32 {
    response.status.as_ref().map_or(-1, |status| status.code)
}

/// The headers Envoy would add upstream (on OK) or send back (on deny).
fn headers(response: &CheckResponse) -> HashMap<String, String> {
    let list = match &response.http_response {
        Some(HttpResponse::OkResponse(ok)) => &ok.headers,
        Some(HttpResponse::DeniedResponse(denied)) => &denied.headers,
        _ => return HashMap::new(),
    };
    list.iter()
        .filter_map(|option| option.header.as_ref())
        .map(|header| (header.key.clone(), header.value.clone()))
        .collect()
}

fn denied_status(response: &CheckResponse) -> Option<i32> {
    match &response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => denied.status.as_ref().map(|s| s.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_decides_the_call_envoy_describes() {
    let started = common::start_server(config(), true);
    let grpc = started.grpc.unwrap();
    let mut client = AuthorizationClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut check = async |request: CheckRequest| client.check(request).await.unwrap().into_inner();

    let allowed = check(check_request(
        "POST",
        "/api/v2/dags/etl_daily/dagRuns",
        &ALICE,
        "",
    ))
    .await;
    assert_eq!(code(&allowed), OK, "{allowed:?}");
    let upstream = headers(&allowed);
    assert_eq!(upstream["x-flowgate-principal"], "alice");
    assert!(!upstream["x-flowgate-decision-id"].is_empty());

    let denied = check(check_request(
        "POST",
        "/api/v2/dags/finance_month_end/dagRuns",
        &ALICE,
        "",
    ))
    .await;
    assert_eq!(code(&denied), PERMISSION_DENIED, "{denied:?}");
    assert_eq!(denied_status(&denied), Some(403));
    assert!(headers(&denied).contains_key("x-flowgate-reason"));

    // Forwarding headers a client added are not where the call comes from.
    let forged = [
        ALICE[0],
        ALICE[1],
        ("x-original-uri", "/api/v2/dags/etl_daily/dagRuns"),
        ("x-forwarded-uri", "/api/v2/dags/etl_daily/dagRuns"),
    ];
    let still_denied = check(check_request(
        "POST",
        "/api/v2/dags/finance_month_end/dagRuns",
        &forged,
        "",
    ))
    .await;
    assert_eq!(code(&still_denied), PERMISSION_DENIED);

    // The body tells a pause from an edit.
    let pause = check(check_request(
        "PATCH",
        "/api/v2/dags/etl_daily",
        &ALICE,
        r#"{"is_paused": true}"#,
    ))
    .await;
    assert_eq!(code(&pause), OK, "{pause:?}");
    let edit = check(check_request("PATCH", "/api/v2/dags/etl_daily", &ALICE, "")).await;
    assert_eq!(code(&edit), PERMISSION_DENIED, "{edit:?}");

    let anonymous = check(check_request(
        "POST",
        "/api/v2/dags/etl_daily/dagRuns",
        &[],
        "",
    ))
    .await;
    assert_eq!(code(&anonymous), UNAUTHENTICATED);
    assert_eq!(denied_status(&anonymous), Some(401));

    let empty = check(CheckRequest::default()).await;
    assert_eq!(code(&empty), PERMISSION_DENIED, "{empty:?}");

    // A bulk route without its body cannot be decided, and says so.
    let bulk = check(check_request("PATCH", "/api/v2/dags", &ALICE, "")).await;
    assert_eq!(code(&bulk), PERMISSION_DENIED);
    assert!(
        headers(&bulk)["x-flowgate-reason"].contains("request body"),
        "{bulk:?}"
    );

    // gRPC decisions count in the same metrics as HTTP ones.
    let metrics = metrics_text(started.http);
    assert!(
        metrics.contains("flowgate_decisions_total{effect=\"allow\"} 2"),
        "{metrics}"
    );
}

fn metrics_text(address: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_counts_as_absent() {
    let started = common::start_server(
        ServerConfig {
            max_body_bytes: 32,
            ..config()
        },
        true,
    );
    let mut client = AuthorizationClient::connect(format!("http://{}", started.grpc.unwrap()))
        .await
        .unwrap();
    // Within the limit the body makes this a pause; past it, the same call is an edit.
    let small = r#"{"is_paused": true}"#;
    let large = r#"{"is_paused": true, "note": "more than thirty-two bytes"}"#;
    let pause = client
        .check(check_request(
            "PATCH",
            "/api/v2/dags/etl_daily",
            &ALICE,
            small,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&pause), OK, "{pause:?}");
    let edit = client
        .check(check_request(
            "PATCH",
            "/api/v2/dags/etl_daily",
            &ALICE,
            large,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(code(&edit), PERMISSION_DENIED, "{edit:?}");
}
