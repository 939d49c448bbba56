//! A request typed against the schema. Built-in attributes are filled in once, when the
//! request is built, so evaluation reads every attribute the same way and allocates nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{
    ActionId, EntityKind, PRINCIPAL_KIND_ENUM, PolicySet, PrincipalKind, Type, Value,
    normalize_host,
};
use crate::time::Timestamp;

/// The DAG or host a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityRef {
    /// As the inventory keys it: exact for DAGs, normalised for hosts.
    pub id: String,
    /// The built-in `id` attribute, readable by conditions.
    pub(crate) attrs: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub principal_id: String,
    pub principal_kind: PrincipalKind,
    pub groups: BTreeSet<String>,
    /// Every principal attribute the request gives, plus `id`, `kind` and `groups`.
    pub(crate) principal: BTreeMap<String, Value>,
    pub action: ActionId,
    pub dag: Option<EntityRef>,
    pub host: Option<EntityRef>,
    pub time: Timestamp,
    /// Every context attribute the request gives, plus `time`.
    pub(crate) context: BTreeMap<String, Value>,
}

/// Why a request does not fit the schema. `field` is a JSON-pointer-like path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown attribute `{name}`")]
    UnknownAttribute { field: String, name: String },
    #[error("`{name}` is `{expected}`")]
    WrongType {
        field: String,
        name: String,
        expected: String,
    },
    #[error("`{name}` is built in and cannot be given here")]
    BuiltIn { field: String, name: String },
}

impl RequestError {
    pub fn field(&self) -> &str {
        match self {
            RequestError::UnknownAttribute { field, .. }
            | RequestError::WrongType { field, .. }
            | RequestError::BuiltIn { field, .. } => field,
        }
    }
}

/// What a caller knows about one request, before it is checked against the schema.
pub struct RequestParts {
    pub principal_id: String,
    pub principal_kind: PrincipalKind,
    pub groups: BTreeSet<String>,
    pub principal_attrs: BTreeMap<String, Value>,
    pub action: ActionId,
    pub dag: Option<String>,
    pub host: Option<String>,
    pub time: Timestamp,
    pub context_attrs: BTreeMap<String, Value>,
}

impl Request {
    /// Checks attribute values against the schema and fills in the built-ins.
    pub fn new(set: &PolicySet, parts: RequestParts) -> Result<Request, RequestError> {
        let mut principal = BTreeMap::new();
        for (name, value) in parts.principal_attrs {
            check_value(set, EntityKind::Principal, &name, &value, "/principal")?;
            principal.insert(name, value);
        }
        principal.insert(
            String::from("id"),
            Value::String(parts.principal_id.clone()),
        );
        let kind_index = match parts.principal_kind {
            PrincipalKind::Service => 1,
            PrincipalKind::User | PrincipalKind::Group => 0,
        };
        principal.insert(
            String::from("kind"),
            Value::Enum(PRINCIPAL_KIND_ENUM, kind_index),
        );
        principal.insert(
            String::from("groups"),
            Value::Set(parts.groups.iter().cloned().map(Value::String).collect()),
        );
        let mut context = BTreeMap::new();
        for (name, value) in parts.context_attrs {
            check_value(set, EntityKind::Context, &name, &value, "/context")?;
            context.insert(name, value);
        }
        context.insert(String::from("time"), Value::Time(parts.time));
        Ok(Request {
            principal_id: parts.principal_id,
            principal_kind: parts.principal_kind,
            groups: parts.groups,
            principal,
            action: parts.action,
            dag: parts.dag.map(entity_ref),
            host: parts.host.map(|id| entity_ref(normalize_host(&id))),
            time: parts.time,
            context,
        })
    }
}

fn entity_ref(id: String) -> EntityRef {
    let attrs = BTreeMap::from([(String::from("id"), Value::String(id.clone()))]);
    EntityRef { id, attrs }
}

fn check_value(
    set: &PolicySet,
    kind: EntityKind,
    name: &str,
    value: &Value,
    prefix: &str,
) -> Result<(), RequestError> {
    let field = format!("{prefix}/{name}");
    let Some(def) = set.schema().attribute(kind, name) else {
        return Err(RequestError::UnknownAttribute {
            field,
            name: name.to_owned(),
        });
    };
    if def.builtin {
        return Err(RequestError::BuiltIn {
            field,
            name: name.to_owned(),
        });
    }
    if !has_type(value, &def.ty) {
        let expected = set.schema().display_type(&def.ty);
        return Err(RequestError::WrongType {
            field,
            name: name.to_owned(),
            expected,
        });
    }
    Ok(())
}

/// Whether a value inhabits a type; enum values must name one of the enum's values.
pub(crate) fn has_type(value: &Value, ty: &Type) -> bool {
    match (value, ty) {
        (Value::Bool(_), Type::Bool)
        | (Value::Int(_), Type::Int)
        | (Value::String(_), Type::String)
        | (Value::Time(_), Type::Time)
        | (Value::Date(_), Type::Date) => true,
        (Value::Enum(id, _), Type::Enum(expected)) => id == expected,
        (Value::Set(values), Type::Set(element)) => {
            values.iter().all(|value| has_type(value, element))
        }
        _ => false,
    }
}
