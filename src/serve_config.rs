//! `flowgate.toml`: the sidecar's configuration file. Every key is optional and defaults to
//! what `flowgate serve` does without it; unknown keys are errors that name the key, so a
//! typo never silently changes security settings. Documented in `spec/server.md`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    pub(crate) policy_dir: Option<PathBuf>,
    pub(crate) listen: Option<SocketAddr>,
    /// Envoy `ext_authz` over gRPC; off when absent.
    pub(crate) grpc_listen: Option<SocketAddr>,
    /// Threads answering requests; one per CPU when absent.
    pub(crate) workers: Option<std::num::NonZeroUsize>,
    #[serde(default)]
    pub(crate) limits: Limits,
    #[serde(default)]
    pub(crate) reload: Reload,
    #[serde(default)]
    pub(crate) log: Log,
    #[serde(default)]
    pub(crate) forward_auth: ForwardAuth,
    pub(crate) oidc: Option<Oidc>,
    pub(crate) trusted_headers: Option<Trusted>,
    pub(crate) tls: Option<Tls>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    /// Roots for client certificates; when set, clients must present one (mutual TLS).
    pub(crate) client_ca: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Limits {
    pub(crate) max_body_bytes: Option<usize>,
    pub(crate) max_batch: Option<usize>,
    #[serde(default, deserialize_with = "timeout_secs")]
    pub(crate) header_timeout_secs: Option<u64>,
    #[serde(default, deserialize_with = "timeout_secs")]
    pub(crate) idle_timeout_secs: Option<u64>,
    pub(crate) max_header_bytes: Option<usize>,
}

/// Timeouts are whole seconds from 1 to a day: 0 would cut off every client, and more
/// than a day is a typo rather than a setting.
pub(crate) const TIMEOUT_SECS: std::ops::RangeInclusive<u64> = 1..=86_400;

fn timeout_secs<'de, D: serde::Deserializer<'de>>(seconds: D) -> Result<Option<u64>, D::Error> {
    let seconds = u64::deserialize(seconds)?;
    if TIMEOUT_SECS.contains(&seconds) {
        Ok(Some(seconds))
    } else {
        Err(serde::de::Error::custom(format!(
            "must be from {} to {} seconds, not {seconds}",
            TIMEOUT_SECS.start(),
            TIMEOUT_SECS.end()
        )))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reload {
    pub(crate) watch: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Log {
    pub(crate) path: Option<PathBuf>,
    pub(crate) queue: Option<usize>,
    pub(crate) when_full: Option<WhenFull>,
    pub(crate) rotate_bytes: Option<u64>,
    #[serde(default)]
    pub(crate) mask: Vec<String>,
    #[serde(default)]
    pub(crate) direct_io: bool,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WhenFull {
    Block,
    Deny,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForwardAuth {
    pub(crate) proxy: Option<ProxyKind>,
    /// `airflow` (the default) or `none`.
    pub(crate) preset: Option<String>,
    pub(crate) host: Option<HostFrom>,
    /// Extra routes, tried before the preset's.
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteEntry>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ProxyKind {
    Nginx,
    Traefik,
    Envoy,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum HostFrom {
    Header(String),
    Pointer(String),
    Fixed(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteEntry {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) action: String,
    /// `{ path = "dag_id" }` or `{ body = "/dag_id" }`; absent for routes without a DAG.
    pub(crate) dag: Option<DagFrom>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "lowercase")]
pub(crate) enum DagFrom {
    Path(String),
    Body(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Oidc {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    /// One of `jwks_file` and `jwks_url`; with neither, OpenID discovery from the issuer.
    pub(crate) jwks_file: Option<PathBuf>,
    pub(crate) jwks_url: Option<String>,
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) refresh_secs: Option<u64>,
    pub(crate) min_refresh_secs: Option<u64>,
    pub(crate) id_claims: Option<Vec<String>>,
    pub(crate) group_claims: Option<Vec<String>>,
    /// `["idtyp", "app"]`: a claim and the value marking a service token.
    pub(crate) service_claim: Option<(String, String)>,
    pub(crate) leeway_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Trusted {
    pub(crate) peers: Vec<IpAddr>,
    pub(crate) user: Option<String>,
    pub(crate) groups: Option<String>,
}

/// Reads and parses the file; errors name the file, line and key.
pub(crate) fn read(path: &std::path::Path) -> anyhow::Result<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    let file: ConfigFile =
        toml::from_str(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    if let Some(oidc) = &file.oidc
        && oidc.jwks_file.is_some()
        && oidc.jwks_url.is_some()
    {
        anyhow::bail!(
            "{}: [oidc] takes one of `jwks_file` and `jwks_url`, not both",
            path.display()
        );
    }
    Ok(file)
}
