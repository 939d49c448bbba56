//! Load generator for Envoy's `ext_authz` over gRPC: CONCURRENCY callers share a few
//! HTTP/2 connections, as Envoy's workers do, and call `Check` for SECONDS; prints the
//! rate, the latency percentiles, and how many answers were OK, denied or failed.
//!
//! Usage: grpc_load ADDR [CONCURRENCY] [SECONDS]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, attribute_context,
};

/// HTTP/2 connections the callers share (`GRPC_CONNECTIONS`, default 4).
fn connections() -> usize {
    std::env::var("GRPC_CONNECTIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(4)
}

fn check_request(dag: &str) -> CheckRequest {
    let headers: HashMap<String, String> = [
        ("x-remote-user", "alice@corp.example"),
        ("x-remote-groups", "data-eng"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: String::from("POST"),
                    path: format!("/api/v2/dags/{dag}/dagRuns"),
                    headers,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let address = args
        .next()
        .ok_or("usage: grpc_load ADDR [CONCURRENCY] [SECONDS]")?;
    let concurrency: usize = args.next().map_or(Ok(64), |text| text.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |text| text.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let connections = connections();
        let mut channels = Vec::new();
        for _ in 0..connections {
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
                .connect()
                .await?;
            channels.push(channel);
        }
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut callers = Vec::new();
        for caller in 0..concurrency {
            let channel = channels
                .get(caller % connections)
                .cloned()
                .ok_or("no channel")?;
            callers.push(tokio::spawn(async move {
                let mut client = AuthorizationClient::new(channel);
                // Alternate an allowed and a denied DAG.
                let requests = [check_request("etl_daily"), check_request("finance_month_end")];
                let mut latencies = Vec::new();
                let (mut ok, mut denied, mut failed) = (0_u64, 0_u64, 0_u64);
                let mut turn = 0;
                while Instant::now() < deadline {
                    turn += 1;
                    let request = requests.get(turn % 2).cloned().unwrap_or_default();
                    let start = Instant::now();
                    match client.check(request).await {
                        Ok(response) => match response.into_inner().status.map(|s| s.code) {
                            Some(0) => ok += 1,
                            _ => denied += 1,
                        },
                        Err(_) => failed += 1,
                    }
                    latencies.push(start.elapsed());
                }
                (latencies, ok, denied, failed)
            }));
        }
        let mut latencies = Vec::new();
        let (mut ok, mut denied, mut failed) = (0, 0, 0);
        for caller in callers {
            let (mine, o, d, f) = caller.await?;
            latencies.extend(mine);
            ok += o;
            denied += d;
            failed += f;
        }
        latencies.sort();
        let at = |fraction: f64| {
            let index = ((latencies.len() as f64 - 1.0) * fraction) as usize;
            latencies.get(index).copied().unwrap_or_default()
        };
        println!(
            "{:.0} checks/s over {seconds} s, {concurrency} callers on {connections} connections; p50 {:?}, p99 {:?}; {ok} OK, {denied} denied, {failed} failed",
            latencies.len() as f64 / seconds as f64,
            at(0.5),
            at(0.99)
        );
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
