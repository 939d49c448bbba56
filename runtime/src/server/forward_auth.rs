//! `/v1/forward-auth`: nginx `auth_request`, Traefik `ForwardAuth` and Envoy's HTTP service
//! mode. The original method and URI are read only from the headers the configured proxy
//! sets, never from "whichever is present", so a client cannot forge them through another
//! header. 200 allows (with the principal in headers for the upstream), 401 means no
//! acceptable identity, 403 denies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::{Body, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::audit::Source;
use super::authorize::{Call, Verdict, authorize};
use super::error::ApiError;
use crate::routes::RouteTable;

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
        let reason = "the proxy did not send the original method and URI";
        state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
        super::audit::rejection(
            &state,
            Source::ForwardAuth,
            &ApiError::new(StatusCode::FORBIDDEN, "undecidable", reason),
        );
        return deny(StatusCode::FORBIDDEN, reason, None);
    };
    // A body over the limit is treated as absent, so routes that need it deny.
    let body = to_bytes(body, state.config.max_body_bytes).await.ok();
    let lookup = |name: &str| header(&headers, name);
    let call = Call {
        method: &original_method,
        uri: &original_uri,
        header: &lookup,
        body: body.as_deref(),
        peer: peer.ip(),
        source: Source::ForwardAuth,
    };
    match authorize(&state, config, &call).await {
        Verdict::Allow {
            decision_id,
            principal,
            groups,
        } => {
            let mut response = StatusCode::OK.into_response();
            let headers = response.headers_mut();
            for (name, value) in [
                ("x-flowgate-decision-id", decision_id),
                ("x-flowgate-principal", principal),
                ("x-flowgate-groups", groups.join(",")),
            ] {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
            response
        }
        Verdict::Deny {
            reason,
            decision_id,
        } => deny(StatusCode::FORBIDDEN, &reason, decision_id.as_deref()),
        Verdict::Unauthenticated { reason } => deny(StatusCode::UNAUTHORIZED, &reason, None),
    }
}
