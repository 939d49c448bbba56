//! The OpenAPI 3.1 description of the decision API, served at `/v1/openapi.json`. A test
//! checks that every path it lists is served and every served path is listed.

use serde_json::{Value, json};

/// Every `/v1` and health path, with its methods; the router serves exactly these.
pub(crate) const PATHS: &[(&str, &[&str])] = &[
    ("/v1/decide", &["post"]),
    ("/v1/decide/batch", &["post"]),
    ("/v1/policy", &["get"]),
    (
        "/v1/forward-auth",
        &["get", "post", "put", "patch", "delete"],
    ),
    ("/v1/openapi.json", &["get"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
];

pub(crate) fn document() -> Value {
    let error = json!({"description": "Bad request", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let decision = json!({"description": "The decision", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Flowgate decision API", "version": "1"},
        "paths": {
            "/v1/decide": {"post": {
                "summary": "Decide one request",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Request"}}}},
                "responses": {"200": decision, "400": error, "408": error, "413": error}
            }},
            "/v1/decide/batch": {"post": {
                "summary": "Decide many requests, answered in order by one policy version",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["requests"], "additionalProperties": false,
                    "properties": {"requests": {"type": "array", "items": {"$ref": "#/components/schemas/Request"}}}
                }}}},
                "responses": {
                    "200": {"description": "The decisions", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"answers": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}}}
                    }}}},
                    "400": error, "408": error, "413": error
                }
            }},
            "/v1/policy": {"get": {"summary": "The policy set being served", "responses": {"200": {"description": "Version, load time, rule count, last reload error"}}}},
            "/v1/forward-auth": {
                "get": forward_auth(), "post": forward_auth(), "put": forward_auth(), "patch": forward_auth(), "delete": forward_auth()
            },
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "The process is alive", "responses": {"200": {"description": "Alive"}}}},
            "/readyz": {"get": {"summary": "A checked policy set is loaded", "responses": {"200": {"description": "Ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "Text exposition format"}}}}
        },
        "components": {"schemas": {
            "Request": {
                "type": "object", "required": ["principal", "action"], "additionalProperties": false,
                "properties": {
                    "principal": {
                        "type": "object", "required": ["id"],
                        "properties": {
                            "id": {"type": "string"},
                            "kind": {"enum": ["user", "service"]},
                            "groups": {"type": "array", "items": {"type": "string"}}
                        },
                        "additionalProperties": {"description": "Attributes declared for `principal` in the schema"}
                    },
                    "action": {"type": "string"},
                    "dag": {"type": ["string", "null"]},
                    "host": {"type": ["string", "null"]},
                    "context": {
                        "type": "object",
                        "properties": {"time": {"type": "string", "format": "date-time"}},
                        "additionalProperties": {"description": "Attributes declared for `context` in the schema"}
                    }
                }
            },
            "Decision": {
                "type": "object", "required": ["decision", "deciding", "missing", "policy_version", "decision_id"],
                "properties": {
                    "decision": {"enum": ["allow", "deny"]},
                    "deciding": {"type": "array", "items": {"type": "string"}},
                    "missing": {"type": "array", "items": {"type": "string"}},
                    "reason": {"type": "string"},
                    "policy_version": {"type": "string"},
                    "decision_id": {"type": "string"}
                }
            },
            "Error": {
                "type": "object", "required": ["error"],
                "properties": {"error": {
                    "type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "pointer": {"type": "string"}}
                }}
            }
        }}
    })
}

fn forward_auth() -> Value {
    json!({
        "summary": "Forward-auth for nginx, Traefik and Envoy (the original request comes in the configured proxy's headers, or after this path for Envoy)",
        "responses": {"200": {"description": "Allowed"}, "401": {"description": "No acceptable identity"}, "403": {"description": "Denied, with X-Flowgate-Reason"}}
    })
}
