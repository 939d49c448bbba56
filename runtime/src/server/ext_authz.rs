//! Envoy's `ext_authz` over gRPC (`envoy.service.auth.v3.Authorization/Check`). Envoy
//! itself describes the original call (method, path, headers and, with
//! `with_request_body`, the body), so no header a client sends can change which call is
//! decided. OK carries the decision id and principal to the upstream; a deny carries a
//! 403 (or 401 without an identity) with the reason.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use envoy_types::ext_authz::v3::pb::{
    Authorization, AuthorizationServer, CheckRequest, CheckResponse, HeaderAppendAction,
    HttpStatusCode,
};
use envoy_types::ext_authz::v3::{
    CheckResponseExt, DeniedHttpResponseBuilder, OkHttpResponseBuilder,
};
use serde_json::json;

use super::AppState;
use super::audit::Source;
use super::authorize::{Call, Verdict, authorize};

pub(crate) struct ExtAuthz {
    state: Arc<AppState>,
}

pub(crate) fn service(state: Arc<AppState>) -> AuthorizationServer<ExtAuthz> {
    // Envoy sends the body inside the message, so the body limit bounds the message too.
    let limit = state.config.max_body_bytes.saturating_add(64 * 1024);
    AuthorizationServer::new(ExtAuthz { state }).max_decoding_message_size(limit)
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let peer = request
            .remote_addr()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |address| address.ip());
        let check = request.into_inner();
        Ok(tonic::Response::new(decide(&self.state, peer, check).await))
    }
}

async fn decide(state: &AppState, peer: IpAddr, check: CheckRequest) -> CheckResponse {
    let Some(config) = &state.config.forward_auth else {
        return denied(
            HttpStatusCode::Forbidden,
            "forward-auth is not configured",
            None,
        );
    };
    let Some(http) = check
        .attributes
        .and_then(|attributes| attributes.request)
        .and_then(|request| request.http)
    else {
        return denied(
            HttpStatusCode::Forbidden,
            "Envoy sent no HTTP request attributes",
            None,
        );
    };
    let headers = header_table(http.headers, http.header_map);
    let lookup = |name: &str| headers.get(name).cloned();
    let body = if http.raw_body.is_empty() {
        http.body.into_bytes()
    } else {
        http.raw_body
    };
    let call = Call {
        method: &http.method,
        uri: &http.path,
        header: &lookup,
        // Over the limit counts as absent, as for HTTP forward-auth.
        body: (!body.is_empty() && body.len() <= state.config.max_body_bytes)
            .then_some(body.as_slice()),
        peer,
        source: Source::ExtAuthzGrpc,
    };
    match authorize(state, config, &call).await {
        Verdict::Allow {
            decision_id,
            principal,
            groups,
        } => {
            let mut ok = OkHttpResponseBuilder::new();
            // Overwrite, never append: a client must not smuggle its own values upstream.
            for (name, value) in [
                ("x-flowgate-decision-id", decision_id),
                ("x-flowgate-principal", principal),
                ("x-flowgate-groups", groups.join(",")),
            ] {
                ok.add_header(
                    name,
                    value,
                    Some(HeaderAppendAction::OverwriteIfExistsOrAdd),
                    true,
                );
            }
            let mut response = CheckResponse::with_status(tonic::Status::ok("allowed"));
            response.set_http_response(ok);
            response
        }
        Verdict::Deny {
            reason,
            decision_id,
        } => denied(HttpStatusCode::Forbidden, &reason, decision_id.as_deref()),
        Verdict::Unauthenticated { reason } => denied(HttpStatusCode::Unauthorized, &reason, None),
    }
}

/// Envoy sends headers as a map, or as a list when `encode_raw_headers` is on; names are
/// lowercase either way. Repeated headers are joined with commas, as HTTP allows.
fn header_table(
    map: HashMap<String, String>,
    list: Option<envoy_types::pb::envoy::config::core::v3::HeaderMap>,
) -> HashMap<String, String> {
    let mut table = map;
    for header in list.into_iter().flat_map(|list| list.headers) {
        let value = if header.raw_value.is_empty() {
            header.value
        } else {
            String::from_utf8_lossy(&header.raw_value).into_owned()
        };
        table
            .entry(header.key.to_ascii_lowercase())
            .and_modify(|existing| {
                existing.push(',');
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    table
}

fn denied(status: HttpStatusCode, reason: &str, decision_id: Option<&str>) -> CheckResponse {
    let mut http = DeniedHttpResponseBuilder::new();
    http.set_http_status(status);
    http.add_header("content-type", "application/json", None, false);
    http.add_header(
        "x-flowgate-reason",
        reason.replace(['\r', '\n'], " "),
        None,
        false,
    );
    if let Some(id) = decision_id {
        http.add_header("x-flowgate-decision-id", id, None, false);
    }
    http.set_body(
        json!({ "decision": "deny", "reason": reason, "decision_id": decision_id }).to_string(),
    );
    let status = if status == HttpStatusCode::Unauthorized {
        tonic::Status::unauthenticated(reason)
    } else {
        tonic::Status::permission_denied(reason)
    };
    let mut response = CheckResponse::with_status(status);
    response.set_http_response(http);
    response
}
