//! OIDC bearer tokens: verified against a JWKS (RS256, ES256 or EdDSA only), with `iss`,
//! `aud`, `exp` and `nbf` checked, then mapped to a principal by configuration. `alg:
//! none` and HMAC algorithms are refused outright, which also rules out the classic
//! confusion of an HMAC secret with a public key.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde_json::Value;

use super::jwks::{self, Fetcher, JwksError, JwksSource, KeySet};

/// The signing keys cannot be set up.
pub type OidcError = JwksError;

#[derive(Clone, Debug)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks: JwksSource,
    /// Roots to trust for fetching keys, instead of the bundled Mozilla roots (for an
    /// identity provider behind an internal CA, such as AD FS).
    pub ca_file: Option<PathBuf>,
    /// Claims tried in order for the principal's id.
    pub id_claims: Vec<String>,
    /// Claims whose string arrays become the principal's groups.
    pub group_claims: Vec<String>,
    /// A claim and value marking a service (client-credentials) token, such as Entra's
    /// `idtyp: app`.
    pub service_claim: Option<(String, String)>,
    /// Clock skew tolerated for `exp` and `nbf`, in seconds.
    pub leeway: u64,
    /// How often fetched keys are fetched again.
    pub refresh_every: Duration,
    /// A token with an unknown `kid` fetches the keys at once, but not more often than
    /// this, so made-up `kid`s cannot make us hammer the identity provider.
    pub min_refresh_interval: Duration,
    /// Deadline for one fetch.
    pub fetch_timeout: Duration,
}

impl OidcConfig {
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        jwks: JwksSource,
    ) -> OidcConfig {
        OidcConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            ca_file: None,
            id_claims: ["preferred_username", "upn", "sub"]
                .map(String::from)
                .to_vec(),
            group_claims: ["groups", "roles"].map(String::from).to_vec(),
            service_claim: Some((String::from("idtyp"), String::from("app"))),
            leeway: 30,
            refresh_every: Duration::from_secs(15 * 60),
            min_refresh_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
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

/// Why a token was not accepted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// Signed by a key we do not have: worth fetching the keys once more.
    UnknownKey(String),
    Invalid(String),
}

impl Rejection {
    pub(crate) fn reason(self) -> String {
        match self {
            Rejection::UnknownKey(kid) => format!("unknown key `{kid}`"),
            Rejection::Invalid(reason) => reason,
        }
    }
}

/// Verifies tokens against the current keys, which are swapped whole when fetched again.
pub(crate) struct Verifier {
    config: OidcConfig,
    keys: ArcSwap<KeySet>,
    fetcher: Fetcher,
    /// When keys were last fetched or tried, for the rate limit.
    last_attempt: Mutex<Option<Instant>>,
    /// One refresh at a time; callers waiting behind it see its keys.
    refreshing: tokio::sync::Mutex<()>,
}

const ACCEPTED: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

impl Verifier {
    /// Builds the verifier and loads the keys. Blocking. A file that cannot be read is an
    /// error; an endpoint that is down is not, since tokens are then refused until it
    /// answers, which is failing closed without refusing to start.
    pub(crate) fn load(config: OidcConfig) -> Result<Verifier, OidcError> {
        // One provider for the process; a second install attempt is harmless.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let fetcher = Fetcher::new(config.ca_file.as_ref(), config.fetch_timeout)?;
        let verifier = Verifier {
            config,
            keys: ArcSwap::from_pointee(KeySet::new()),
            fetcher,
            last_attempt: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        };
        match verifier.refresh() {
            Ok(()) => {}
            Err(
                error @ (JwksError::File { .. } | JwksError::Ca { .. } | JwksError::Url { .. }),
            ) => {
                return Err(error);
            }
            Err(error) => {
                super::notice!("flowgate: no signing keys yet, tokens are refused: {error}")
            }
        }
        Ok(verifier)
    }

    /// Fetches the keys again; on failure the keys already loaded stay. Blocking.
    pub(crate) fn refresh(&self) -> Result<(), JwksError> {
        if let Ok(mut last) = self.last_attempt.lock() {
            *last = Some(Instant::now());
        }
        let keys = jwks::load(&self.config.jwks, &self.config.issuer, &self.fetcher)?;
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// Whether the keys come from the network and so are fetched again periodically.
    pub(crate) fn fetched(&self) -> bool {
        !matches!(self.config.jwks, JwksSource::File(_))
    }

    /// Time until the next periodic fetch: sooner while there are no keys at all.
    pub(crate) fn next_refresh(&self) -> Duration {
        if self.keys.load().is_empty() {
            self.config.min_refresh_interval
        } else {
            self.config.refresh_every
        }
    }

    /// Verifies a token; a token signed by an unknown key fetches the keys first, within
    /// the rate limit, and is tried again.
    pub(crate) async fn verify_fresh(self: &Arc<Self>, token: &str) -> Result<Caller, String> {
        match self.verify(token) {
            Err(Rejection::UnknownKey(kid)) if self.fetched() => {
                let _one_at_a_time = self.refreshing.lock().await;
                let due = self.last_attempt.lock().is_ok_and(|last| {
                    last.is_none_or(|last| last.elapsed() >= self.config.min_refresh_interval)
                });
                if due {
                    let verifier = Arc::clone(self);
                    let refreshed = tokio::task::spawn_blocking(move || verifier.refresh()).await;
                    if let Ok(Err(error)) = refreshed {
                        super::notice!("flowgate: fetching keys for `{kid}` failed: {error}");
                    }
                }
                self.verify(token).map_err(Rejection::reason)
            }
            other => other.map_err(Rejection::reason),
        }
    }

    /// Verifies a token against the keys at hand and maps its claims.
    pub(crate) fn verify(&self, token: &str) -> Result<Caller, Rejection> {
        let invalid = Rejection::Invalid;
        let header =
            decode_header(token).map_err(|error| invalid(format!("malformed token: {error}")))?;
        if !ACCEPTED.contains(&header.alg) {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| invalid(String::from("the token names no key (`kid`)")))?;
        let keys = self.keys.load();
        let (key, algorithm) = keys.get(&kid).ok_or(Rejection::UnknownKey(kid.clone()))?;
        if *algorithm != header.alg {
            return Err(invalid(format!(
                "key `{kid}` does not sign {:?}",
                header.alg
            )));
        }
        let mut validation = Validation::new(*algorithm);
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway;
        let claims = decode::<Value>(token, key, &validation)
            .map_err(|error| invalid(format!("token rejected: {error}")))?
            .claims;
        let id = self
            .config
            .id_claims
            .iter()
            .find_map(|claim| claims.get(claim).and_then(Value::as_str))
            .ok_or_else(|| invalid(String::from("the token has no usable id claim")))?
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
