//! OIDC bearer tokens: verified against a JWKS (RS256, ES256 or EdDSA only), with `iss`,
//! `aud`, `exp` and `nbf` checked, then mapped to a principal by configuration. `alg:
//! none` and HMAC algorithms are refused outright, which also rules out the classic
//! confusion of an HMAC secret with a public key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// A JWKS document on disk.
    pub jwks_file: PathBuf,
    /// Claims tried in order for the principal's id.
    pub id_claims: Vec<String>,
    /// Claims whose string arrays become the principal's groups.
    pub group_claims: Vec<String>,
    /// A claim and value marking a service (client-credentials) token, such as Entra's
    /// `idtyp: app`.
    pub service_claim: Option<(String, String)>,
    /// Clock skew tolerated for `exp` and `nbf`, in seconds.
    pub leeway: u64,
}

impl OidcConfig {
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks_file: impl Into<PathBuf>,
    ) -> OidcConfig {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_file: jwks_file.into(),
            id_claims: ["preferred_username", "upn", "sub"]
                .map(String::from)
                .to_vec(),
            group_claims: ["groups", "roles"].map(String::from).to_vec(),
            service_claim: Some((String::from("idtyp"), String::from("app"))),
            leeway: 30,
        }
    }
}

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) id: String,
    pub(crate) service: bool,
    pub(crate) groups: Vec<String>,
    /// From `amr` containing `mfa`.
    pub(crate) mfa: bool,
}

/// Keys loaded from the JWKS, by `kid`.
pub(crate) struct Verifier {
    config: OidcConfig,
    keys: BTreeMap<String, (DecodingKey, Algorithm)>,
}

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("cannot read the JWKS {path}: {message}")]
    Jwks { path: PathBuf, message: String },
}

const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

impl Verifier {
    pub(crate) fn load(config: OidcConfig) -> Result<Verifier, OidcError> {
        // One provider for the process; a second install attempt is harmless.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let jwks_error = |message: String| OidcError::Jwks {
            path: config.jwks_file.clone(),
            message,
        };
        let text = std::fs::read_to_string(&config.jwks_file)
            .map_err(|error| jwks_error(error.to_string()))?;
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|error| jwks_error(error.to_string()))?;
        let mut keys = BTreeMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            let algorithm = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                // Symmetric and future key types never verify identity tokens here.
                _ => continue,
            };
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|error| jwks_error(format!("key `{kid}`: {error}")))?;
            keys.insert(kid, (key, algorithm));
        }
        Ok(Verifier { config, keys })
    }

    /// Verifies a token and maps its claims, or says why not (for the log, not the caller).
    pub(crate) fn verify(&self, token: &str) -> Result<Caller, String> {
        let header = decode_header(token).map_err(|error| format!("malformed token: {error}"))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let kid = header.kid.ok_or("the token names no key (`kid`)")?;
        let (key, algorithm) = self
            .keys
            .get(&kid)
            .ok_or_else(|| format!("unknown key `{kid}`"))?;
        if *algorithm != header.alg {
            return Err(format!("key `{kid}` does not sign {:?}", header.alg));
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway;
        let claims = decode::<Value>(token, key, &validation)
            .map_err(|error| format!("token rejected: {error}"))?
            .claims;
        let id = self
            .config
            .id_claims
            .iter()
            .find_map(|claim| claims.get(claim).and_then(Value::as_str))
            .ok_or("the token has no usable id claim")?
            .to_owned();
        let groups = self
            .config
            .group_claims
            .iter()
            .filter_map(|claim| claims.get(claim).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let service = self
            .config
            .service_claim
            .as_ref()
            .is_some_and(|(claim, value)| {
                claims.get(claim).and_then(Value::as_str) == Some(value.as_str())
            });
        let mfa = claims
            .get("amr")
            .and_then(Value::as_array)
            .is_some_and(|methods| methods.iter().any(|method| method.as_str() == Some("mfa")));
        Ok(Caller {
            id,
            service,
            groups,
            mfa,
        })
    }
}
