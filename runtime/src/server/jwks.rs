//! Where the identity provider's signing keys come from: a JWKS file, a JWKS URL, or the
//! `jwks_uri` of the issuer's OpenID discovery document. Fetching blocks, so callers run
//! it off the request path; keys are parsed into a set by `kid`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Where to read the signing keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// A JWKS document over HTTPS (plain HTTP only on loopback).
    Url(String),
    /// `{issuer}/.well-known/openid-configuration`, then its `jwks_uri`.
    Discover,
}

/// Signing keys by `kid`, each with the one algorithm it may verify.
pub(crate) type KeySet = BTreeMap<String, (DecodingKey, Algorithm)>;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read the JWKS {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url} is not an acceptable key source: {message}")]
    Url { url: String, message: String },
    #[error("the JWKS from {origin} is not usable: {message}")]
    Invalid { origin: String, message: String },
    #[error("cannot read the CA file {path}: {message}")]
    Ca { path: PathBuf, message: String },
}

/// Largest discovery or JWKS document accepted.
const MAX_DOCUMENT_BYTES: u64 = 1 << 20;

/// Fetches documents over HTTPS with a deadline; built once per configuration.
pub(crate) struct Fetcher {
    agent: ureq::Agent,
}

impl Fetcher {
    pub(crate) fn new(ca_file: Option<&PathBuf>, timeout: Duration) -> Result<Fetcher, JwksError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(path) = ca_file {
            let ca_error = |message: String| JwksError::Ca {
                path: path.clone(),
                message,
            };
            let pem = std::fs::read(path).map_err(|error| ca_error(error.to_string()))?;
            let mut certificates = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let ureq::tls::PemItem::Certificate(certificate) =
                    item.map_err(|error| ca_error(error.to_string()))?
                {
                    certificates.push(certificate);
                }
            }
            if certificates.is_empty() {
                return Err(ca_error(String::from("it holds no certificate")));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certificates));
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .tls_config(tls.build())
            .max_redirects(0)
            .build()
            .new_agent();
        Ok(Fetcher { agent })
    }

    fn get(&self, url: &str) -> Result<serde_json::Value, JwksError> {
        check_url(url)?;
        let fetch_error = |message: String| JwksError::Fetch {
            url: url.to_owned(),
            message,
        };
        let mut response = self
            .agent
            .get(url)
            .header("accept", "application/json")
            .call()
            .map_err(|error| fetch_error(error.to_string()))?;
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_DOCUMENT_BYTES)
            .read_to_string()
            .map_err(|error| fetch_error(error.to_string()))?;
        serde_json::from_str(&text).map_err(|error| JwksError::Invalid {
            origin: url.to_owned(),
            message: error.to_string(),
        })
    }
}

/// Keys travel over HTTPS; plain HTTP is allowed only to this machine (tests, a local
/// identity provider), where nobody can tamper with it in transit.
fn check_url(url: &str) -> Result<(), JwksError> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let local = url.strip_prefix("http://").is_some_and(|rest| {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Userinfo could hide the real host: `http://127.0.0.1:80@elsewhere/`.
        if authority.contains('@') {
            return false;
        }
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        matches!(host, "127.0.0.1" | "localhost" | "[::1]")
    });
    if local {
        Ok(())
    } else {
        Err(JwksError::Url {
            url: url.to_owned(),
            message: String::from("keys are fetched over https:// only (http:// only on loopback)"),
        })
    }
}

/// Reads the key set from its source. Blocking.
pub(crate) fn load(
    source: &JwksSource,
    issuer: &str,
    fetcher: &Fetcher,
) -> Result<KeySet, JwksError> {
    match source {
        JwksSource::File(path) => {
            let file_error = |message: String| JwksError::File {
                path: path.clone(),
                message,
            };
            let text =
                std::fs::read_to_string(path).map_err(|error| file_error(error.to_string()))?;
            let set: JwkSet =
                serde_json::from_str(&text).map_err(|error| file_error(error.to_string()))?;
            parse(&set, &path.display().to_string())
        }
        JwksSource::Url(url) => from_document(fetcher.get(url)?, url),
        JwksSource::Discover => {
            let discovery = format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            );
            let document = fetcher.get(&discovery)?;
            // The document must be the issuer's own, or its keys could vouch for anyone.
            if document.get("issuer").and_then(serde_json::Value::as_str) != Some(issuer) {
                return Err(JwksError::Invalid {
                    origin: discovery,
                    message: format!("its `issuer` is not `{issuer}`"),
                });
            }
            let jwks_uri = document
                .get("jwks_uri")
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| JwksError::Invalid {
                    origin: discovery.clone(),
                    message: String::from("it has no `jwks_uri`"),
                })?;
            from_document(fetcher.get(jwks_uri)?, jwks_uri)
        }
    }
}

fn from_document(document: serde_json::Value, origin: &str) -> Result<KeySet, JwksError> {
    let set: JwkSet = serde_json::from_value(document).map_err(|error| JwksError::Invalid {
        origin: origin.to_owned(),
        message: error.to_string(),
    })?;
    parse(&set, origin)
}

/// Keeps keys with a `kid` and an asymmetric type; the algorithm follows from the type,
/// so a key can never verify a token signed with some other algorithm.
fn parse(set: &JwkSet, origin: &str) -> Result<KeySet, JwksError> {
    let mut keys = KeySet::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
            // Symmetric and future key types never verify identity tokens here.
            _ => continue,
        };
        let key = DecodingKey::from_jwk(jwk).map_err(|error| JwksError::Invalid {
            origin: origin.to_owned(),
            message: format!("key `{kid}`: {error}"),
        })?;
        keys.insert(kid, (key, algorithm));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn keys_come_over_https_or_from_loopback_only() {
        assert!(check_url("https://login.corp.example/keys").is_ok());
        assert!(check_url("http://127.0.0.1:8080/keys").is_ok());
        assert!(check_url("http://localhost/keys").is_ok());
        assert!(check_url("http://[::1]:9/keys").is_ok());
        assert!(check_url("http://login.corp.example/keys").is_err());
        assert!(check_url("http://127.0.0.1.evil.example/keys").is_err());
        assert!(check_url("file:///etc/keys").is_err());
        assert!(check_url("http://127.0.0.1:80@login.evil.example/keys").is_err());
    }
}
