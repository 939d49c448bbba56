//! TLS and mutual TLS on the decision API, with certificates made by `openssl` at test
//! time and a real TLS client: plain text is refused on a TLS port, and with a client CA
//! only clients holding a certificate from that CA get an answer.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod support;

use std::path::PathBuf;
use std::process::Command;

use support::{Flowgate, http, openssl_in, require};
use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig};

/// A CA, and certificates it signs for `localhost` (server) and a client.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("flowgate-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl_in(
            &dir,
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    &format!("/CN={name} CA"),
                ],
            ]
            .concat(),
        );
        for (who, extensions) in [
            (
                "server",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            std::fs::write(dir.join(format!("{who}.ext")), extensions).unwrap();
            openssl_in(
                &dir,
                &[
                    &["req"],
                    &ec[..],
                    &[
                        "-keyout",
                        &format!("{who}.key"),
                        "-out",
                        &format!("{who}.csr"),
                        "-subj",
                        &format!("/CN={who}"),
                    ],
                ]
                .concat(),
            );
            openssl_in(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{who}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{who}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{who}.ext"),
                ],
            );
        }
        Pki { dir }
    }

    /// `flowgate serve` with this server certificate, and with `extra` flags.
    fn serve(&self, extra: &[&str]) -> Flowgate {
        let (cert, key) = (self.path("server.pem"), self.path("server.key"));
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        args.extend_from_slice(extra);
        Flowgate::start(&args)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    fn read(&self, file: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(file)).unwrap()
    }
}

/// An HTTPS client trusting `ca`, optionally presenting `client`'s certificate; it keeps
/// connections open between calls.
fn agent(ca: &Pki, client: Option<&Pki>) -> ureq::Agent {
    let roots = RootCerts::new_with_certs(&[Certificate::from_pem(&ca.read("ca.pem")).unwrap()]);
    let mut tls = TlsConfig::builder().root_certs(roots);
    if let Some(client) = client {
        let chain = [Certificate::from_pem(&client.read("client.pem")).unwrap()];
        let key = PrivateKey::from_pem(&client.read("client.key")).unwrap();
        tls = tls.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    ureq::Agent::config_builder()
        .tls_config(tls.build())
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .new_agent()
}

/// GET over TLS; the status, or the error text when no HTTP answer came.
fn get(
    address: std::net::SocketAddr,
    path: &str,
    ca: &Pki,
    client: Option<&Pki>,
) -> Result<u16, String> {
    agent(ca, client)
        .get(&format!("https://localhost:{}{path}", address.port()))
        .call()
        .map(|response| response.status().as_u16())
        .map_err(|error| error.to_string())
}

#[test]
fn tls_serves_https_and_refuses_plain_text() {
    if !require("openssl") {
        return;
    }
    let pki = Pki::new("tls");
    let flowgate = pki.serve(&[]);
    assert_eq!(get(flowgate.address, "/healthz", &pki, None), Ok(200));
    let (status, _) = http(flowgate.address, "GET", "/healthz", &[]);
    assert_eq!(status, 0, "plain HTTP gets no answer on a TLS port");
    // A client that does not trust the server's CA does not get through either.
    let stranger = Pki::new("stranger");
    assert!(get(flowgate.address, "/healthz", &stranger, None).is_err());
    assert_eq!(
        get(flowgate.address, "/healthz", &pki, None),
        Ok(200),
        "still serving"
    );
    // Decisions on one kept-open TLS connection, then another route on it.
    let client = agent(&pki, None);
    let base = format!("https://localhost:{}", flowgate.address.port());
    let request = r#"{"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01", "context": {"time": "2026-11-24T10:00:00Z"}}"#;
    for _ in 0..3 {
        let mut response = client
            .post(&format!("{base}/v1/decide"))
            .header("Content-Type", "application/json")
            .send(request)
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let answer = response.body_mut().read_to_string().unwrap();
        assert!(answer.starts_with("{\"decision\":\"allow\""), "{answer}");
    }
    let status = client
        .get(&format!("{base}/healthz"))
        .call()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
}

#[test]
fn mutual_tls_admits_only_clients_of_the_configured_ca() {
    if !require("openssl") {
        return;
    }
    let pki = Pki::new("mtls");
    let rogue = Pki::new("rogue");
    let log = pki.path("decisions.log");
    let flowgate = pki.serve(&[
        "--tls-client-ca",
        &pki.path("ca.pem"),
        "--decision-log",
        &log,
    ]);
    assert_eq!(get(flowgate.address, "/healthz", &pki, Some(&pki)), Ok(200));
    assert!(
        get(flowgate.address, "/healthz", &pki, None).is_err(),
        "no client certificate, no answer"
    );
    assert!(
        get(flowgate.address, "/healthz", &pki, Some(&rogue)).is_err(),
        "a certificate from another CA, no answer"
    );
    assert_eq!(get(flowgate.address, "/healthz", &pki, Some(&pki)), Ok(200));
    // The refused handshakes are in the decision log.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.matches("\"tls-handshake\"").count() >= 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(text.matches("\"tls-handshake\"").count() >= 2, "{text}");
}

#[test]
fn unreadable_certificates_stop_the_start_with_the_file_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_flowgate"))
        .args([
            "serve",
            "policies",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "missing.pem",
            "--tls-key",
            "missing.key",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("missing.pem"), "{stderr}");
}

/// One `Check` over gRPC with TLS; the gRPC status code, or the error text.
fn grpc_check(
    address: std::net::SocketAddr,
    ca: &Pki,
    client: Option<&Pki>,
) -> Result<i32, String> {
    use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
    use envoy_types::pb::envoy::service::auth::v3::{
        AttributeContext, CheckRequest, attribute_context,
    };
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.read("ca.pem")))
        .domain_name("localhost");
    if let Some(client) = client {
        tls = tls.identity(Identity::from_pem(
            client.read("client.pem"),
            client.read("client.key"),
        ));
    }
    let request = CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(attribute_context::Request {
                http: Some(attribute_context::HttpRequest {
                    method: String::from("POST"),
                    path: String::from("/api/v2/dags/etl_daily/dagRuns"),
                    headers: [
                        (String::from("x-remote-user"), String::from("alice")),
                        (String::from("x-remote-groups"), String::from("data-eng")),
                    ]
                    .into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let channel = Endpoint::from_shared(format!("https://localhost:{}", address.port()))
            .unwrap()
            .tls_config(tls)
            .map_err(|error| error.to_string())?
            .connect()
            .await
            .map_err(|error| error.to_string())?;
        let response = AuthorizationClient::new(channel)
            .check(request)
            .await
            .map_err(|error| error.to_string())?;
        Ok(response
            .into_inner()
            .status
            .map_or(-1, |status| status.code))
    })
}

#[test]
fn grpc_ext_authz_uses_the_same_mutual_tls() {
    if !require("openssl") {
        return;
    }
    let pki = Pki::new("grpc");
    let flowgate = pki.serve(&[
        "--tls-client-ca",
        &pki.path("ca.pem"),
        "--grpc-listen",
        "127.0.0.1:0",
        "--fixed-host",
        "stg-af-worker-01",
        "--trusted-peer",
        "127.0.0.1",
    ]);
    let grpc = flowgate.grpc.unwrap();
    assert_eq!(
        grpc_check(grpc, &pki, Some(&pki)),
        Ok(0),
        "allowed over mutual TLS"
    );
    assert!(
        grpc_check(grpc, &pki, None).is_err(),
        "no client certificate, no answer"
    );
}
