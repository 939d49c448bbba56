//! Deciding a proxied call: who the caller is, what the call means in the policy's terms
//! (through the route table), and one decision per DAG it touches. Shared by the HTTP
//! forward-auth endpoint and Envoy's gRPC `ext_authz`, which differ only in how the
//! original call reaches us and how the verdict goes back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Instant;

use axum::http::StatusCode;
use compiler::eval::{Request, RequestParts};
use compiler::ir::{EntityKind, PrincipalKind, Type, Value};

use super::AppState;
use super::audit::Source;
use super::error::ApiError;
use super::forward_auth::ForwardAuthConfig;

/// The call a proxy asks about.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    /// Path and query, as the client sent them.
    pub(crate) uri: &'a str,
    /// Looks up a header of the original call by lowercase name.
    pub(crate) header: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// The original body, when the proxy forwarded it.
    pub(crate) body: Option<&'a [u8]>,
    /// The proxy's own address, for trusted-header identity.
    pub(crate) peer: IpAddr,
    pub(crate) source: Source,
}

/// What the proxy should do with the call.
#[derive(Debug)]
pub(crate) enum Verdict {
    Allow {
        decision_id: String,
        principal: String,
        groups: Vec<String>,
    },
    Deny {
        reason: String,
        decision_id: Option<String>,
    },
    /// No acceptable identity.
    Unauthenticated { reason: String },
}

impl Verdict {
    fn deny(reason: impl Into<String>) -> Verdict {
        Verdict::Deny {
            reason: reason.into(),
            decision_id: None,
        }
    }
}

/// Decides a call; a call denied before any decision is recorded as a rejection.
pub(crate) async fn authorize(
    state: &AppState,
    config: &ForwardAuthConfig,
    call: &Call<'_>,
) -> Verdict {
    let verdict = decide(state, config, call).await;
    let refused = match &verdict {
        Verdict::Unauthenticated { reason } => Some((StatusCode::UNAUTHORIZED, reason)),
        Verdict::Deny {
            reason,
            decision_id: None,
        } => Some((StatusCode::FORBIDDEN, reason)),
        _ => None,
    };
    if let Some((status, reason)) = refused {
        state
            .metrics
            .bad_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let code = if status == StatusCode::UNAUTHORIZED {
            "unauthenticated"
        } else {
            "undecidable"
        };
        super::audit::rejection(
            state,
            call.source,
            &ApiError::new(
                status,
                code,
                format!("{} {}: {reason}", call.method, call.uri),
            ),
        );
    }
    verdict
}

async fn decide(state: &AppState, config: &ForwardAuthConfig, call: &Call<'_>) -> Verdict {
    let caller = match identity(state, config, call).await {
        Ok(caller) => caller,
        Err(reason) => return Verdict::Unauthenticated { reason },
    };
    // An unparsable body is the same as none: routes that need it deny.
    let body_json = call
        .body
        .filter(|bytes| !bytes.is_empty())
        .and_then(|bytes| serde_json::from_slice(bytes).ok());
    let mapped = match config
        .routes
        .map(call.method, call.uri, body_json.as_ref(), call.header)
    {
        Ok(mapped) => mapped,
        Err(error) => return Verdict::deny(error.to_string()),
    };

    let engine = state.engine.load();
    let set = engine.policy_set();
    let Some(action) = set.schema().action(&mapped.action) else {
        return Verdict::deny(format!(
            "the route's action `{}` is not declared; declared actions: {}",
            mapped.action,
            set.schema().actions.join(", ")
        ));
    };
    // The token's MFA claim reaches rules only where the schema declares `mfa: Bool`.
    let mut principal_attrs = BTreeMap::new();
    if let Some(mfa) = caller.mfa
        && set
            .schema()
            .attribute(EntityKind::Principal, "mfa")
            .is_some_and(|attr| attr.ty == Type::Bool)
    {
        principal_attrs.insert(String::from("mfa"), Value::Bool(mfa));
    }
    let groups: BTreeSet<String> = caller.groups.iter().cloned().collect();
    let dags: Vec<Option<String>> = if mapped.dags.is_empty() {
        vec![None]
    } else {
        mapped.dags.into_iter().map(Some).collect()
    };
    let now = super::now();
    let mut last_id = String::new();
    for dag in dags {
        if dag.as_deref() == Some("") || mapped.host.as_deref() == Some("") {
            return Verdict::deny("the call names an empty DAG or host id");
        }
        let parts = RequestParts {
            principal_id: caller.id.clone(),
            principal_kind: if caller.service {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            },
            groups: groups.clone(),
            principal_attrs: principal_attrs.clone(),
            action,
            dag,
            host: mapped.host.clone(),
            time: now,
            context_attrs: BTreeMap::new(),
        };
        let request = match Request::new(set, parts) {
            Ok(request) => request,
            Err(error) => {
                return Verdict::deny(format!(
                    "the call does not fit the policy's schema: {error}"
                ));
            }
        };
        let clock = Instant::now();
        let decision = engine.decide(&request);
        let latency = clock.elapsed();
        state.metrics.record(decision.allow, latency);
        let body = super::api::logged(state, call.source, &engine, &request, &decision, latency);
        // Every DAG of a bulk call must be allowed; the first deny decides.
        if body.answer.decision != "allow" {
            let reason = body
                .answer
                .reason
                .clone()
                .unwrap_or_else(|| format!("denied by {}", body.answer.deciding.join(", ")));
            return Verdict::Deny {
                reason,
                decision_id: Some(body.decision_id),
            };
        }
        last_id = body.decision_id;
    }
    Verdict::Allow {
        decision_id: last_id,
        principal: caller.id,
        groups: caller.groups,
    }
}

/// A caller as the proxy presents it.
struct Caller {
    id: String,
    service: bool,
    groups: Vec<String>,
    /// `None` when the source says nothing about MFA (trusted headers).
    mfa: Option<bool>,
}

/// The caller: a verified bearer token, else trusted headers from a trusted peer.
async fn identity(
    state: &AppState,
    config: &ForwardAuthConfig,
    call: &Call<'_>,
) -> Result<Caller, String> {
    let bearer = (call.header)("authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
    if let Some(token) = bearer {
        let verifier = state
            .verifier
            .as_ref()
            .ok_or("bearer tokens are not accepted: no identity provider is configured")?;
        let verified = verifier.verify_fresh(token.trim()).await?;
        return Ok(Caller {
            id: verified.id,
            service: verified.service,
            groups: verified.groups,
            mfa: Some(verified.mfa),
        });
    }
    let trusted = config
        .trusted_headers
        .as_ref()
        .filter(|trusted| trusted.peers.contains(&call.peer))
        .ok_or("no acceptable identity: send `Authorization: Bearer <token>`")?;
    let user = (call.header)(&trusted.user)
        .filter(|user| !user.is_empty())
        .ok_or("no acceptable identity: the trusted user header is missing")?;
    let groups = (call.header)(&trusted.groups)
        .map(|groups| {
            groups
                .split(',')
                .map(str::trim)
                .filter(|group| !group.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Caller {
        id: user,
        service: false,
        groups,
        mfa: None,
    })
}
