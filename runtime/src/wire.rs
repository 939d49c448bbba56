//! The JSON form of requests and answers, shared by `flowgate eval` and the decision API:
//! `{"principal": {"id", "kind", "groups", …attributes}, "action", "dag", "host",
//! "context": {"time", …attributes}}`. Decoding checks every field against the schema and
//! names a bad one by its JSON pointer.

use std::collections::{BTreeMap, BTreeSet};

use compiler::eval::{Request, RequestParts};
use compiler::ir::{EntityKind, PolicySet, PrincipalKind, Type, Value};
use compiler::time::{self, Timestamp};
use serde::Serialize;
use serde_json::Value as Json;

/// A request that does not fit: where (`/principal/mfa`) and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct WireError {
    pub pointer: String,
    pub message: String,
}

fn wire_error(pointer: impl Into<String>, message: impl Into<String>) -> WireError {
    WireError {
        pointer: pointer.into(),
        message: message.into(),
    }
}

/// Decodes one request. `now` fills `context.time` when the caller gives none.
pub fn decode_request(set: &PolicySet, json: &Json, now: Timestamp) -> Result<Request, WireError> {
    decode_at(set, json, now, "")
}

/// Decodes a request found at `base` inside a larger document (a batch's `/requests/3`).
pub fn decode_at(
    set: &PolicySet,
    json: &Json,
    now: Timestamp,
    base: &str,
) -> Result<Request, WireError> {
    let Json::Object(fields) = json else {
        return Err(wire_error(base, "a request is a JSON object"));
    };
    for key in fields.keys() {
        if !matches!(
            key.as_str(),
            "principal" | "action" | "dag" | "host" | "context"
        ) {
            return Err(wire_error(
                format!("{base}/{}", escape(key)),
                "unknown field; a request has `principal`, `action`, `dag`, `host` and `context`",
            ));
        }
    }
    // Pointers are built only for errors: decoding is on every decision's path.
    let principal_pointer = || format!("{base}/principal");
    let Some(Json::Object(principal)) = fields.get("principal") else {
        return Err(wire_error(
            principal_pointer(),
            "`principal` is required and is an object",
        ));
    };
    let Some(Json::String(principal_id)) = principal.get("id") else {
        return Err(wire_error(
            format!("{}/id", principal_pointer()),
            "`id` is required and is a string",
        ));
    };
    let principal_kind = match principal.get("kind") {
        None | Some(Json::Null) => PrincipalKind::User,
        Some(Json::String(kind)) if kind == "user" => PrincipalKind::User,
        Some(Json::String(kind)) if kind == "service" => PrincipalKind::Service,
        Some(_) => {
            return Err(wire_error(
                format!("{}/kind", principal_pointer()),
                "`kind` is `user` or `service`",
            ));
        }
    };
    let groups = match principal.get("groups") {
        None | Some(Json::Null) => BTreeSet::new(),
        Some(Json::Array(items)) => {
            let mut groups = BTreeSet::new();
            for (position, item) in items.iter().enumerate() {
                let Json::String(group) = item else {
                    return Err(wire_error(
                        format!("{}/groups/{position}", principal_pointer()),
                        "group names are strings",
                    ));
                };
                groups.insert(group.clone());
            }
            groups
        }
        Some(_) => {
            return Err(wire_error(
                format!("{}/groups", principal_pointer()),
                "`groups` is an array of strings",
            ));
        }
    };
    let mut principal_attrs = BTreeMap::new();
    for (name, value) in principal {
        if matches!(name.as_str(), "id" | "kind" | "groups") || value.is_null() {
            continue;
        }
        let pointer = || format!("{}/{}", principal_pointer(), escape(name));
        principal_attrs.insert(
            name.clone(),
            attribute(set, EntityKind::Principal, name, value, &pointer)?,
        );
    }
    let action_pointer = || format!("{base}/action");
    let Some(Json::String(action_name)) = fields.get("action") else {
        return Err(wire_error(
            action_pointer(),
            "`action` is required and is a string",
        ));
    };
    let Some(action) = set.schema().action(action_name) else {
        let declared = set.schema().actions.join(", ");
        return Err(wire_error(
            action_pointer(),
            format!("unknown action `{action_name}`; declared actions: {declared}"),
        ));
    };
    let entity = |key: &str| -> Result<Option<String>, WireError> {
        match fields.get(key) {
            None | Some(Json::Null) => Ok(None),
            Some(Json::String(id)) if !id.is_empty() => Ok(Some(id.clone())),
            Some(_) => Err(wire_error(
                format!("{base}/{key}"),
                format!("`{key}` is a non-empty string"),
            )),
        }
    };
    let dag = entity("dag")?;
    let host = entity("host")?;
    let mut request_time = now;
    let mut context_attrs = BTreeMap::new();
    match fields.get("context") {
        None | Some(Json::Null) => {}
        Some(Json::Object(context)) => {
            for (name, value) in context {
                let pointer = || format!("{base}/context/{}", escape(name));
                if value.is_null() {
                    continue;
                }
                if name == "time" {
                    let Json::String(text) = value else {
                        return Err(wire_error(pointer(), "`time` is an RFC 3339 string"));
                    };
                    request_time = time::parse_rfc3339(text).ok_or_else(|| {
                        wire_error(pointer(), format!("`{text}` is not an RFC 3339 time"))
                    })?;
                    continue;
                }
                context_attrs.insert(
                    name.clone(),
                    attribute(set, EntityKind::Context, name, value, &pointer)?,
                );
            }
        }
        Some(_) => {
            return Err(wire_error(
                format!("{base}/context"),
                "`context` is an object",
            ));
        }
    }
    let parts = RequestParts {
        principal_id: principal_id.clone(),
        principal_kind,
        groups,
        principal_attrs,
        action,
        dag,
        host,
        time: request_time,
        context_attrs,
    };
    // Every attribute was typed above, so this only fails on a schema bug; say where anyway.
    Request::new(set, parts)
        .map_err(|error| wire_error(format!("{base}{}", error.field()), error.to_string()))
}

/// JSON pointer escaping (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// An attribute's value typed against the schema, or `None` if it does not fit (the fast
/// path then leaves the request to [`decode_at`], which says why).
pub(crate) fn attribute_value(
    set: &PolicySet,
    kind: EntityKind,
    name: &str,
    json: &Json,
) -> Option<Value> {
    attribute(set, kind, name, json, &String::new).ok()
}

fn attribute(
    set: &PolicySet,
    kind: EntityKind,
    name: &str,
    json: &Json,
    pointer: &dyn Fn() -> String,
) -> Result<Value, WireError> {
    let Some(def) = set.schema().attribute(kind, name) else {
        let known: Vec<&str> = set
            .schema()
            .attributes(kind)
            .iter()
            .filter(|attr| !attr.builtin)
            .map(|attr| attr.name.as_str())
            .collect();
        return Err(wire_error(
            pointer(),
            format!(
                "unknown attribute `{name}`; `{}` has {}",
                kind.keyword(),
                known.join(", ")
            ),
        ));
    };
    value(set, &def.ty, json, pointer)
}

fn value(
    set: &PolicySet,
    ty: &Type,
    json: &Json,
    pointer: &dyn Fn() -> String,
) -> Result<Value, WireError> {
    let expected = || {
        wire_error(
            pointer(),
            format!("expected {}", set.schema().display_type(ty)),
        )
    };
    match (ty, json) {
        (Type::Bool, Json::Bool(flag)) => Ok(Value::Bool(*flag)),
        (Type::Int, Json::Number(number)) => number.as_i64().map(Value::Int).ok_or_else(expected),
        (Type::String, Json::String(text)) => Ok(Value::String(text.clone())),
        (Type::Time, Json::String(text)) => time::parse_rfc3339(text)
            .map(Value::Time)
            .ok_or_else(expected),
        (Type::Date, Json::String(text)) => {
            time::parse_date(text).map(Value::Date).ok_or_else(expected)
        }
        (Type::Enum(id), Json::String(text)) => {
            let def = set.schema().enum_def(*id).ok_or_else(expected)?;
            match def.values.iter().position(|candidate| candidate == text) {
                Some(index) => Ok(Value::Enum(*id, index as u32)),
                None => Err(wire_error(
                    pointer(),
                    format!(
                        "`{text}` is not a value of `{}` ({})",
                        def.name,
                        def.values.join(", ")
                    ),
                )),
            }
        }
        (Type::Set(element), Json::Array(items)) => {
            let mut values = BTreeSet::new();
            for (position, item) in items.iter().enumerate() {
                let item_pointer = || format!("{}/{position}", pointer());
                values.insert(value(set, element, item, &item_pointer)?);
            }
            Ok(Value::Set(values))
        }
        _ => Err(expected()),
    }
}

/// The answer as callers receive it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// `allow` or `deny`.
    pub decision: &'static str,
    /// Ids of the deciding rules: `@id`, else `file:line`.
    pub deciding: Vec<String>,
    pub missing: Vec<String>,
    /// Why a deny has no deciding rule, when there is more to say than "no rule allows it".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub policy_version: String,
}
