//! `/v1/forward-auth`: nginx `auth_request`, Traefik `ForwardAuth` and Envoy's HTTP service
//! mode. The original method and URI are read only from the headers the configured proxy
//! sets, never from "whichever is present", so a client cannot forge them through another
//! header. 200 allows (with the principal in headers for the upstream), 401 means no
//! acceptable identity, 403 denies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use crate::routes::RouteTable;
use crate::wire::decode_at;

/// The proxy in front, which decides which headers carry the original request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// `X-Original-Method` and `X-Original-URI`, as nginx configs set them.
    Nginx,
    /// `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
    /// The original method is the call's own, the path follows this prefix.
    Envoy { prefix: String },
}

/// Callers authenticated by the proxy itself (IIS Windows Authentication behind a proxy):
/// their identity in headers, believed only from these peer addresses.
#[derive(Clone, Debug)]
pub struct TrustedHeaders {
    pub user: String,
    pub groups: String,
    pub peers: Vec<IpAddr>,
}

#[derive(Clone, Debug)]
pub struct ForwardAuthConfig {
    pub proxy: Proxy,
    pub routes: RouteTable,
    /// Bearer tokens from this identity provider.
    pub oidc: Option<super::oidc::OidcConfig>,
    pub trusted_headers: Option<TrustedHeaders>,
}

pub(crate) const PREFIX: &str = "/v1/forward-auth";

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

fn deny(status: StatusCode, reason: &str, decision_id: Option<&str>) -> Response {
    let mut response = (
        status,
        axum::Json(json!({ "decision": "deny", "reason": reason, "decision_id": decision_id })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&reason.replace(['\r', '\n'], " ")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-flowgate-reason"), value);
    }
    response
}

pub(crate) async fn forward_auth(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(config) = &state.config.forward_auth else {
        return deny(
            StatusCode::NOT_FOUND,
            "forward-auth is not configured",
            None,
        );
    };
    let original = match &config.proxy {
        Proxy::Nginx => (
            header(&headers, "x-original-method"),
            header(&headers, "x-original-uri"),
        ),
        Proxy::Traefik => (
            header(&headers, "x-forwarded-method"),
            header(&headers, "x-forwarded-uri"),
        ),
        Proxy::Envoy { prefix } => {
            let path = uri
                .path_and_query()
                .map_or(uri.path(), |path| path.as_str());
            (
                Some(method.to_string()),
                path.strip_prefix(prefix.as_str()).map(str::to_owned),
            )
        }
    };
    let (Some(original_method), Some(original_uri)) = original else {
        return deny(
            StatusCode::FORBIDDEN,
            "the proxy did not send the original method and URI",
            None,
        );
    };

    let caller = match identity(&state, config, &headers, peer.ip()) {
        Ok(caller) => caller,
        Err(reason) => {
            let error = super::error::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                reason.clone(),
            );
            super::audit::rejection(&state, &error);
            state
                .metrics
                .bad_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return deny(StatusCode::UNAUTHORIZED, &reason, None);
        }
    };

    let bytes = to_bytes(body, state.config.max_body_bytes)
        .await
        .unwrap_or_default();
    let body_json = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let mapped = match config.routes.map(
        &original_method,
        &original_uri,
        body_json.as_ref(),
        |name| header(&headers, name),
    ) {
        Ok(mapped) => mapped,
        Err(error) => return deny(StatusCode::FORBIDDEN, &error.to_string(), None),
    };

    let engine = state.engine.load();
    let dags: Vec<Option<String>> = if mapped.dags.is_empty() {
        vec![None]
    } else {
        mapped.dags.into_iter().map(Some).collect()
    };
    let mut last_id = String::new();
    for dag in dags {
        let mut principal = json!({
            "id": caller.id,
            "kind": if caller.service { "service" } else { "user" },
            "groups": caller.groups,
        });
        // The token's MFA claim reaches rules only where the schema declares `mfa: Bool`.
        let schema_has_mfa = engine
            .policy_set()
            .schema()
            .attribute(compiler::ir::EntityKind::Principal, "mfa")
            .is_some_and(|attr| attr.ty == compiler::ir::Type::Bool);
        if schema_has_mfa && let (Some(object), Some(mfa)) = (principal.as_object_mut(), caller.mfa)
        {
            object.insert(String::from("mfa"), json!(mfa));
        }
        let request_json = json!({
            "principal": principal,
            "action": mapped.action,
            "dag": dag,
            "host": mapped.host,
        });
        let request = match decode_at(engine.policy_set(), &request_json, super::now(), "") {
            Ok(request) => request,
            Err(error) => {
                return deny(
                    StatusCode::FORBIDDEN,
                    &format!("the call does not fit the policy's schema: {error}"),
                    None,
                );
            }
        };
        let clock = Instant::now();
        let decision = engine.decide(&request);
        let latency = clock.elapsed();
        state.metrics.record(decision.allow, latency);
        let body = super::api::logged(
            &state,
            &engine,
            &request,
            engine.answer(&request, &decision),
            latency.as_nanos(),
        );
        if body.answer.decision != "allow" {
            let reason = body
                .answer
                .reason
                .clone()
                .unwrap_or_else(|| format!("denied by {}", body.answer.deciding.join(", ")));
            return deny(StatusCode::FORBIDDEN, &reason, Some(&body.decision_id));
        }
        last_id = body.decision_id;
    }
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-flowgate-decision-id", last_id),
        ("x-flowgate-principal", caller.id.clone()),
        ("x-flowgate-groups", caller.groups.join(",")),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// A caller as forward-auth knows it.
struct Caller {
    id: String,
    service: bool,
    groups: Vec<String>,
    /// `None` when the source says nothing about MFA (trusted headers).
    mfa: Option<bool>,
}

/// The caller: a verified bearer token, else trusted headers from a trusted peer.
fn identity(
    state: &AppState,
    config: &ForwardAuthConfig,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Result<Caller, String> {
    let bearer = header(headers, "authorization")
        .and_then(|value| value.strip_prefix("Bearer ").map(str::to_owned));
    if let Some(token) = bearer {
        let verifier = state
            .verifier
            .load_full()
            .ok_or("bearer tokens are not accepted: no identity provider is configured")?;
        let verified = verifier.verify(token.trim())?;
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
        .filter(|trusted| trusted.peers.contains(&peer))
        .ok_or("no acceptable identity: send `Authorization: Bearer <token>`")?;
    let user = header(headers, &trusted.user)
        .filter(|user| !user.is_empty())
        .ok_or("no acceptable identity: the trusted user header is missing")?;
    let groups = header(headers, &trusted.groups)
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
