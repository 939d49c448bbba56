//! Helpers for the end-to-end tests: JWTs signed with keys made by `openssl` at test time,
//! `flowgate serve` as a child process, a stand-in for Airflow's REST API, and a raw HTTP
//! client.

#![allow(dead_code, reason = "each test file uses part of the support module")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// Keys made with the `openssl` command at test time, and the JWKS that publishes them.
pub(crate) struct Keys {
    pub(crate) dir: std::path::PathBuf,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    openssl_in(Path::new("."), args)
}

/// Runs `openssl` in `dir`; its standard output.
pub(crate) fn openssl_in(dir: &Path, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

pub(crate) fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let value = chunk.iter().enumerate().fold(0u32, |acc, (index, byte)| {
            acc | (u32::from(*byte) << (16 - 8 * index))
        });
        for index in 0..=chunk.len() {
            out.push(char::from(
                ALPHABET[((value >> (18 - 6 * index)) & 63) as usize],
            ));
        }
    }
    out
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .map(|index| u8::from_str_radix(&hex[2 * index..2 * index + 2], 16).unwrap())
        .collect()
}

impl Keys {
    pub(crate) fn generate() -> Keys {
        // One directory per call: tests run in parallel and must not share keys.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("flowgate-keys-{}-{serial}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &path("rsa.pem"),
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &path("other.pem"),
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &path("ec.pem"),
        ]);
        openssl(&["genpkey", "-algorithm", "ED25519", "-out", &path("ed.pem")]);
        openssl(&[
            "pkey",
            "-in",
            &path("rsa.pem"),
            "-pubout",
            "-out",
            &path("rsa.pub.pem"),
        ]);
        let keys = Keys { dir: dir.clone() };
        let rsa = keys.rsa_jwk("rsa.pem", "rsa-1");
        let ec = openssl(&["pkey", "-in", &path("ec.pem"), "-pubout", "-outform", "DER"]);
        let point = &ec[ec.len() - 64..];
        let ed = openssl(&["pkey", "-in", &path("ed.pem"), "-pubout", "-outform", "DER"]);
        let jwks = json!({"keys": [
            rsa,
            {"kty": "EC", "kid": "ec-1", "alg": "ES256", "crv": "P-256", "x": base64url(&point[..32]), "y": base64url(&point[32..])},
            {"kty": "OKP", "kid": "ed-1", "alg": "EdDSA", "crv": "Ed25519", "x": base64url(&ed[ed.len() - 32..])},
        ]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        keys
    }

    /// The public half of an RSA key file as a JWK.
    pub(crate) fn rsa_jwk(&self, file: &str, kid: &str) -> Value {
        let path = self.dir.join(file).to_string_lossy().into_owned();
        let modulus =
            String::from_utf8(openssl(&["rsa", "-in", &path, "-noout", "-modulus"])).unwrap();
        let n = base64url(&hex_bytes(modulus.trim().trim_start_matches("Modulus=")));
        json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"})
    }

    fn pem(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.join(name)).unwrap()
    }

    pub(crate) fn sign(
        &self,
        algorithm: jsonwebtoken::Algorithm,
        kid: &str,
        key_file: &str,
        claims: &Value,
    ) -> String {
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let key = match algorithm {
            jsonwebtoken::Algorithm::RS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(&self.pem(key_file)).unwrap()
            }
            jsonwebtoken::Algorithm::ES256 => {
                jsonwebtoken::EncodingKey::from_ec_pem(&self.pem(key_file)).unwrap()
            }
            jsonwebtoken::Algorithm::EdDSA => {
                jsonwebtoken::EncodingKey::from_ed_pem(&self.pem(key_file)).unwrap()
            }
            _ => jsonwebtoken::EncodingKey::from_secret(&self.pem(key_file)),
        };
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }
}

pub(crate) fn claims(user: &str, groups: &[&str], amr: &[&str], lifetime: i64) -> Value {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    json!({"iss": "https://login.corp.example", "aud": "flowgate", "sub": format!("sub-{user}"), "preferred_username": user,
           "groups": groups, "amr": amr, "iat": now, "nbf": now - 5, "exp": now + lifetime})
}

/// `flowgate serve` in a child process, stopped (with SIGTERM) when dropped.
pub(crate) struct Flowgate {
    pub(crate) child: Child,
    pub(crate) address: SocketAddr,
    /// Envoy `ext_authz` over gRPC, when started with `--grpc-listen`.
    pub(crate) grpc: Option<SocketAddr>,
}

impl Flowgate {
    pub(crate) fn start(extra: &[&str]) -> Flowgate {
        let mut args = vec!["serve", "policies", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate"))
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("flowgate serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut stderr = BufReader::new(stderr);
        let mut grpc = None;
        let mut banner = String::new();
        // The gRPC line, when there is one, comes before the main banner.
        while stderr.read_line(&mut banner).is_ok_and(|read| read > 0) {
            if let Some(address) = banner.strip_prefix("flowgate: Envoy ext_authz over gRPC on ") {
                grpc = Some(address.trim().parse().expect("the gRPC address"));
                banner.clear();
                continue;
            }
            break;
        }
        let address = banner
            .rsplit("://")
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the banner names the address: {banner}"));
        // Keep reading, so the server's notices reach the test's output and never a
        // closed pipe.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                eprintln!("{line}");
            }
        });
        Flowgate {
            child,
            address,
            grpc,
        }
    }
}

impl Drop for Flowgate {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Stops a server the way an operator would, with SIGTERM, so it shuts down cleanly: nginx
/// then stops its worker processes too, which SIGKILL to the master would leave behind,
/// still listening. Killed after five seconds if it has not stopped.
fn stop(child: &mut std::process::Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A stand-in for Airflow's REST API: answers 200 and records each request line.
pub(crate) struct Upstream {
    pub(crate) address: SocketAddr,
    pub(crate) seen: Arc<Mutex<Vec<String>>>,
}

/// A one-request-per-connection HTTP server on loopback: `answer` maps each request line
/// to a status and a body.
fn serve_http(answer: impl Fn(&str) -> (u16, String) + Send + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let mut header = String::new();
            while reader.read_line(&mut header).is_ok_and(|read| read > 2) {
                header.clear();
            }
            let (status, body) = answer(line.trim());
            let mut stream = reader.into_inner();
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    address
}

impl Upstream {
    pub(crate) fn start() -> Upstream {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let address = serve_http(move |line| {
            if let Ok(mut seen) = record.lock() {
                seen.push(line.to_owned());
            }
            (200, String::from("upstream ok"))
        });
        Upstream { address, seen }
    }

    pub(crate) fn requests(&self) -> Vec<String> {
        self.seen
            .lock()
            .map(|seen| seen.clone())
            .unwrap_or_default()
    }
}

/// A stand-in identity provider: OpenID discovery and a JWKS that a test can change or
/// take down, counting the JWKS fetches.
pub(crate) struct IdentityProvider {
    pub(crate) issuer: String,
    pub(crate) jwks: Arc<Mutex<Value>>,
    pub(crate) down: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) key_fetches: Arc<std::sync::atomic::AtomicUsize>,
}

impl IdentityProvider {
    pub(crate) fn start(jwks: Value) -> IdentityProvider {
        use std::sync::atomic::Ordering;
        let jwks = Arc::new(Mutex::new(jwks));
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let key_fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let issuer = Arc::new(Mutex::new(String::new()));
        let (served, is_down, fetches, named) = (
            jwks.clone(),
            down.clone(),
            key_fetches.clone(),
            issuer.clone(),
        );
        let address = serve_http(move |line| {
            if is_down.load(Ordering::SeqCst) {
                return (503, String::from("{}"));
            }
            let issuer = named.lock().unwrap().clone();
            if line.starts_with("GET /.well-known/openid-configuration ") {
                let document = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/keys")});
                (200, document.to_string())
            } else if line.starts_with("GET /keys ") {
                fetches.fetch_add(1, Ordering::SeqCst);
                (200, served.lock().unwrap().to_string())
            } else {
                (404, String::from("{}"))
            }
        });
        let url = format!("http://{address}");
        *issuer.lock().unwrap() = url.clone();
        IdentityProvider {
            issuer: url,
            jwks,
            down,
            key_fetches,
        }
    }

    pub(crate) fn fetches(&self) -> usize {
        self.key_fetches.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// One HTTP/1.1 exchange; returns the status and the whole response, lowercased.
pub(crate) fn http(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    http_body(address, method, path, headers, "")
}

/// As [`http`], with a JSON body.
pub(crate) fn http_body(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, response.to_lowercase())
}

/// Whether a program is on the PATH; in CI (`CI=true`) a missing one fails the test.
pub(crate) fn require(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|output| output.status.success());
    if !found {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "{program} is required in CI; .ci/run installs it"
        );
        eprintln!("skipping: {program} is not installed (.ci/run installs it)");
    }
    found
}

/// A real proxy (nginx, Traefik or Envoy) in a child process, asking Flowgate about every
/// call before passing it to the upstream; configured for the test and stopped when dropped.
pub(crate) struct Proxy {
    child: Child,
    pub(crate) address: SocketAddr,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn scratch(kind: &str, port: u16) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-{kind}-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("proxy directory");
    dir
}

impl Proxy {
    pub(crate) fn nginx(flowgate: &Flowgate, upstream: SocketAddr) -> Proxy {
        let flowgate = flowgate.address;
        let port = free_port();
        let dir = scratch("nginx", port);
        let config = format!(
            r#"
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            auth_request /_flowgate;
            proxy_pass http://{upstream};
        }}
        location = /_flowgate {{
            internal;
            proxy_pass http://{flowgate}/v1/forward-auth;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URI $request_uri;
            proxy_set_header X-Original-Method $request_method;
        }}
    }}
}}
"#,
            dir = dir.display()
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config).expect("nginx.conf");
        Proxy::spawn(
            "nginx",
            &[
                "-p",
                &dir.to_string_lossy(),
                "-c",
                &path.to_string_lossy(),
                "-g",
                "daemon off;",
            ],
            port,
        )
    }

    pub(crate) fn traefik(flowgate: &Flowgate, upstream: SocketAddr) -> Proxy {
        let flowgate = flowgate.address;
        let port = free_port();
        let dir = scratch("traefik", port);
        let dynamic = format!(
            r#"
http:
  routers:
    airflow:
      rule: "PathPrefix(`/`)"
      entryPoints: [web]
      middlewares: [flowgate]
      service: airflow
  middlewares:
    flowgate:
      forwardAuth:
        address: "http://{flowgate}/v1/forward-auth"
        trustForwardHeader: false
        authResponseHeaders: ["X-Flowgate-Principal", "X-Flowgate-Decision-Id"]
  services:
    airflow:
      loadBalancer:
        servers:
          - url: "http://{upstream}"
"#
        );
        let path = dir.join("dynamic.yml");
        std::fs::write(&path, dynamic).expect("dynamic.yml");
        let entry = format!("--entryPoints.web.address=127.0.0.1:{port}");
        let file = format!("--providers.file.filename={}", path.display());
        Proxy::spawn(
            "traefik",
            &[
                &entry,
                &file,
                "--log.level=ERROR",
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
            ],
            port,
        )
    }

    /// Envoy's ext_authz filter in HTTP-service mode.
    pub(crate) fn envoy(flowgate: &Flowgate, upstream: SocketAddr) -> Proxy {
        let filter = format!(
            r#"              http_service:
                server_uri: {{ uri: "http://{}", cluster: flowgate, timeout: 2s }}
                path_prefix: /v1/forward-auth
"#,
            flowgate.address
        );
        Proxy::envoy_with(&filter, flowgate.address, "", upstream)
    }

    /// Envoy's ext_authz filter over gRPC, with the request body sent along.
    pub(crate) fn envoy_grpc(flowgate: &Flowgate, upstream: SocketAddr) -> Proxy {
        let filter = r#"              transport_api_version: V3
              with_request_body: { max_request_bytes: 65536, allow_partial_message: false, pack_as_bytes: true }
              grpc_service:
                envoy_grpc: { cluster_name: flowgate }
                timeout: 2s
"#;
        let http2 = r#"    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
"#;
        let grpc = flowgate
            .grpc
            .expect("flowgate was started with --grpc-listen");
        Proxy::envoy_with(filter, grpc, http2, upstream)
    }

    fn envoy_with(
        filter: &str,
        flowgate: SocketAddr,
        flowgate_options: &str,
        upstream: SocketAddr,
    ) -> Proxy {
        let port = free_port();
        let dir = scratch("envoy", port);
        let cluster = |name: &str, address: SocketAddr| {
            format!(
                "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint:\n            address:\n              socket_address: {{ address: {}, port_value: {} }}\n",
                address.ip(),
                address.port()
            )
        };
        let config = format!(
            r#"
static_resources:
  listeners:
  - name: main
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: airflow }}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
              failure_mode_allow: false
{filter}          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
{airflow}{flowgate_cluster}{flowgate_options}"#,
            airflow = cluster("airflow", upstream),
            flowgate_cluster = cluster("flowgate", flowgate),
        );
        let path = dir.join("envoy.yaml");
        std::fs::write(&path, config).expect("envoy.yaml");
        let base_id = port.to_string();
        Proxy::spawn(
            "envoy",
            &[
                "-c",
                &path.to_string_lossy(),
                "--disable-hot-restart",
                "--base-id",
                &base_id,
                "--log-level",
                "error",
            ],
            port,
        )
    }

    fn spawn(program: &str, args: &[&str], port: u16) -> Proxy {
        let child = Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the proxy starts");
        let address: SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
        // Ready when it answers: a routed call gets some status other than 404/502.
        for _ in 0..200 {
            if TcpStream::connect(address).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Proxy { child, address }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}
