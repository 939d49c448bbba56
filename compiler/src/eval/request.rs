//! A request typed against the schema. Built-in attributes are filled in once, when the
//! request is built, so evaluation reads every attribute the same way and allocates nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::ir::{
    ActionId, AttrDef, EntityKind, PRINCIPAL_KIND_ENUM, PolicySet, PrincipalKind, Type, Value,
    normalize_host_in_place,
};
use crate::time::Timestamp;

/// The DAG or host a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityRef {
    /// As the inventory keys it: exact for DAGs, normalised for hosts.
    pub id: String,
    /// Attribute values by schema position: only the built-in `id` is known here.
    pub(crate) values: Vec<Option<Value>>,
}

#[derive(Debug)]
pub struct Request {
    pub principal_id: String,
    pub principal_kind: PrincipalKind,
    /// Sorted, without duplicates; a slice rather than a tree so deciding walks it in one go.
    pub groups: Box<[String]>,
    /// Principal attribute values by schema position, built-ins included.
    pub(crate) principal: Vec<Option<Value>>,
    pub action: ActionId,
    pub dag: Option<EntityRef>,
    pub host: Option<EntityRef>,
    pub time: Timestamp,
    /// Context attribute values by schema position, `time` included.
    pub(crate) context: Vec<Option<Value>>,
    /// The names above resolved against one decision table, when the caller prepared the
    /// request for it; deciding then compares no strings.
    pub(crate) prepared: Option<Prepared>,
}

/// A clone is a request like any other: its fields can be changed, so it does not keep
/// the preparation, which would go stale.
impl Clone for Request {
    fn clone(&self) -> Request {
        Request {
            principal_id: self.principal_id.clone(),
            principal_kind: self.principal_kind,
            groups: self.groups.clone(),
            principal: self.principal.clone(),
            action: self.action,
            dag: self.dag.clone(),
            host: self.host.clone(),
            time: self.time,
            context: self.context.clone(),
            prepared: None,
        }
    }
}

/// Two requests are equal when they ask the same; preparation is not part of that.
impl PartialEq for Request {
    fn eq(&self, other: &Request) -> bool {
        self.principal_id == other.principal_id
            && self.principal_kind == other.principal_kind
            && self.groups == other.groups
            && self.principal == other.principal
            && self.action == other.action
            && self.dag == other.dag
            && self.host == other.host
            && self.time == other.time
            && self.context == other.context
    }
}

impl Eq for Request {}

/// A request resolved against one decision table, which then decides it without comparing
/// strings. It gives out the request only by shared reference, so the names it was
/// resolved from cannot change underneath it.
#[derive(Debug, PartialEq, Eq)]
pub struct PreparedRequest(pub(crate) Request);

/// Unlike a plain request's, a prepared request's clone keeps its preparation: neither
/// copy can change the names it was resolved from.
impl Clone for PreparedRequest {
    fn clone(&self) -> PreparedRequest {
        let mut request = self.0.clone();
        request.prepared = self.0.prepared.clone();
        PreparedRequest(request)
    }
}

impl PreparedRequest {
    /// The request, without its preparation.
    pub fn into_inner(self) -> Request {
        let mut request = self.0;
        request.prepared = None;
        request
    }
}

impl std::ops::Deref for PreparedRequest {
    type Target = Request;

    fn deref(&self) -> &Request {
        &self.0
    }
}

impl AsRef<Request> for Request {
    fn as_ref(&self) -> &Request {
        self
    }
}

impl AsRef<Request> for PreparedRequest {
    fn as_ref(&self) -> &Request {
        &self.0
    }
}

/// A request's principal, DAG and host resolved against one decision table, by
/// `DecisionTable::prepare`. Ignored by any other table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prepared {
    pub(crate) table: u64,
    /// The principal's keys found in the table: its own id, then its groups.
    pub(crate) keys: Box<[u32]>,
    /// Slots of rules whose `to` pattern (glob or regex) admits the principal.
    pub(crate) pattern_slots: Box<[u32]>,
    /// Inventory positions; `None` for an entity outside the inventory (or none named).
    pub(crate) dag: Option<u32>,
    pub(crate) host: Option<u32>,
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
        let mut builder = RequestBuilder::new(
            set,
            parts.principal_id,
            parts.principal_kind,
            parts.action,
            parts.time,
        );
        for (name, value) in parts.principal_attrs {
            builder.principal_attribute(&name, value)?;
        }
        for (name, value) in parts.context_attrs {
            builder.context_attribute(&name, value)?;
        }
        builder.groups = parts.groups.into_iter().collect();
        builder.dag = parts.dag;
        builder.host = parts.host;
        Ok(builder.build())
    }
}

/// Builds a request a piece at a time, checking each attribute as it comes: what a
/// decoder uses to go from wire text to a request without the maps of [`RequestParts`]
/// in between. The result is the request [`Request::new`] builds from the same parts.
pub struct RequestBuilder<'s> {
    set: &'s PolicySet,
    principal_id: String,
    principal_kind: PrincipalKind,
    groups: Vec<String>,
    principal: Slots<'s>,
    action: ActionId,
    dag: Option<String>,
    host: Option<String>,
    time: Timestamp,
    context: Slots<'s>,
}

impl<'s> RequestBuilder<'s> {
    pub fn new(
        set: &'s PolicySet,
        principal_id: String,
        principal_kind: PrincipalKind,
        action: ActionId,
        time: Timestamp,
    ) -> RequestBuilder<'s> {
        RequestBuilder {
            set,
            principal_id,
            principal_kind,
            groups: Vec::new(),
            principal: Slots::new(set, EntityKind::Principal),
            action,
            dag: None,
            host: None,
            time,
            context: Slots::new(set, EntityKind::Context),
        }
    }

    /// Room for this many more groups; the request keeps them in a slice sized exactly,
    /// and a caller that knows the count spares it a copy.
    pub fn reserve_groups(&mut self, additional: usize) {
        self.groups.reserve_exact(additional);
    }

    /// Adds a group; order and repeats do not matter.
    pub fn group(&mut self, group: &str) {
        self.groups.push(group.to_owned());
    }

    /// Sets a declared principal attribute; a second value for the same name replaces
    /// the first.
    pub fn principal_attribute(&mut self, name: &str, value: Value) -> Result<(), RequestError> {
        check_value(self.set, EntityKind::Principal, name, &value, "/principal")?;
        self.principal.put(name, value);
        Ok(())
    }

    /// Sets a declared context attribute (not `time`: see [`RequestBuilder::time`]).
    pub fn context_attribute(&mut self, name: &str, value: Value) -> Result<(), RequestError> {
        check_value(self.set, EntityKind::Context, name, &value, "/context")?;
        self.context.put(name, value);
        Ok(())
    }

    pub fn dag(&mut self, id: &str) {
        self.dag = Some(id.to_owned());
    }

    /// The host as given; it is normalised (case, trailing dot) when the request is built.
    pub fn host(&mut self, id: &str) {
        self.host = Some(id.to_owned());
    }

    pub fn time(&mut self, time: Timestamp) {
        self.time = time;
    }

    /// Fills in the built-in attributes.
    pub fn build(self) -> Request {
        let RequestBuilder {
            set,
            principal_id,
            principal_kind,
            mut groups,
            mut principal,
            action,
            dag,
            host,
            time,
            mut context,
        } = self;
        groups.sort_unstable();
        groups.dedup();
        let read = set.builtins_read;
        if read.principal_id {
            principal.put("id", Value::String(principal_id.clone()));
        }
        let kind_index = match principal_kind {
            PrincipalKind::Service => 1,
            PrincipalKind::User | PrincipalKind::Group => 0,
        };
        principal.put("kind", Value::Enum(PRINCIPAL_KIND_ENUM, kind_index));
        if read.principal_groups {
            principal.put(
                "groups",
                Value::Set(groups.iter().cloned().map(Value::String).collect()),
            );
        }
        context.put("time", Value::Time(time));
        Request {
            principal_id,
            principal_kind,
            groups: groups.into_boxed_slice(),
            principal: principal.values,
            action,
            dag: dag.map(|id| entity_ref(set, EntityKind::Dag, id, read.dag_id)),
            host: host.map(|mut id| {
                normalize_host_in_place(&mut id);
                entity_ref(set, EntityKind::Host, id, read.host_id)
            }),
            time,
            context: context.values,
            prepared: None,
        }
    }
}

/// `read_id`: whether some rule reads the built-in `id`. A request gives no other value
/// of a DAG or host, so without it there is nothing to lay out: evaluation finds no value
/// in an empty slice just as in a slice of empty slots.
fn entity_ref(set: &PolicySet, kind: EntityKind, id: String, read_id: bool) -> EntityRef {
    if !read_id {
        return EntityRef {
            id,
            values: Vec::new(),
        };
    }
    let mut slots = Slots::new(set, kind);
    slots.put("id", Value::String(id.clone()));
    EntityRef {
        id,
        values: slots.values,
    }
}

/// Attribute values laid out by schema position.
struct Slots<'a> {
    /// The entity's attributes, looked up once: a request fills several slots.
    attributes: &'a [AttrDef],
    values: Vec<Option<Value>>,
}

impl<'a> Slots<'a> {
    fn new(set: &'a PolicySet, kind: EntityKind) -> Slots<'a> {
        let attributes = set.schema().attributes(kind);
        Slots {
            attributes,
            values: vec![None; attributes.len()],
        }
    }

    /// Built-ins come first in the schema, so they are found at once.
    fn put(&mut self, name: &str, value: Value) {
        if let Some(slot) = self
            .attributes
            .iter()
            .position(|attribute| attribute.name == name)
            && let Some(slot) = self.values.get_mut(slot)
        {
            *slot = Some(value);
        }
    }
}

fn check_value(
    set: &PolicySet,
    kind: EntityKind,
    name: &str,
    value: &Value,
    prefix: &str,
) -> Result<(), RequestError> {
    // Built only for an error: requests are built on every decision's path.
    let field = || format!("{prefix}/{name}");
    let Some(def) = set.schema().attribute(kind, name) else {
        return Err(RequestError::UnknownAttribute {
            field: field(),
            name: name.to_owned(),
        });
    };
    if def.builtin {
        return Err(RequestError::BuiltIn {
            field: field(),
            name: name.to_owned(),
        });
    }
    if !has_type(value, &def.ty) {
        let expected = set.schema().display_type(&def.ty);
        return Err(RequestError::WrongType {
            field: field(),
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

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;
    use crate::source::SourceSet;

    fn set() -> PolicySet {
        checked(
            "principal { mfa: Bool }\ncontext { ticket: String }\nactions { view }\n\
             permit view to group \"ops\";\n",
        )
    }

    /// Groups come out sorted and unique and the host normalised, as from the parts.
    #[test]
    fn the_builder_builds_what_the_parts_build() {
        let set = set();
        let action = set.schema().action("view").unwrap();
        let mut builder =
            RequestBuilder::new(&set, String::from("ann"), PrincipalKind::User, action, 5);
        for group in ["ops", "dev", "ops"] {
            builder.group(group);
        }
        builder
            .principal_attribute("mfa", Value::Bool(true))
            .unwrap();
        builder
            .context_attribute("ticket", Value::String(String::from("CHG-1")))
            .unwrap();
        builder.dag("etl");
        builder.host("Worker-01.");
        let built = builder.build();
        let parts = RequestParts {
            principal_id: String::from("ann"),
            principal_kind: PrincipalKind::User,
            groups: ["dev", "ops"].map(String::from).into(),
            principal_attrs: [(String::from("mfa"), Value::Bool(true))].into(),
            action,
            dag: Some(String::from("etl")),
            host: Some(String::from("worker-01")),
            time: 5,
            context_attrs: [(String::from("ticket"), Value::String(String::from("CHG-1")))].into(),
        };
        assert_eq!(built, Request::new(&set, parts).unwrap());
        assert_eq!(&*built.groups, ["dev", "ops"]);
        assert_eq!(built.host.unwrap().id, "worker-01");
    }

    fn checked(text: &str) -> PolicySet {
        let mut sources = SourceSet::new();
        sources.add("main.gate", text);
        crate::analyze(&sources, &crate::check::CheckOptions::at(0))
            .policy_set
            .expect("the policy checks")
    }

    fn request_to(set: &PolicySet) -> Request {
        let action = set.schema().action("view").unwrap();
        let mut builder =
            RequestBuilder::new(set, String::from("ann"), PrincipalKind::User, action, 5);
        builder.group("ops");
        builder.dag("etl");
        builder.host("w1");
        builder.build()
    }

    /// A built-in some rule reads is there for it, to both evaluators; one no rule reads
    /// is left out, which changes no decision.
    #[test]
    fn built_ins_are_filled_in_when_a_rule_reads_them() {
        for condition in [
            "principal.id == \"ann\"",
            "\"ops\" in principal.groups",
            "dag.id == \"etl\"",
            "host.id == \"w1\"",
        ] {
            let set = checked(&format!(
                "actions {{ view }}\npermit view when {condition};\n"
            ));
            let request = request_to(&set);
            let table = crate::lower::lower(&set);
            let mut decision = crate::eval::Decision::default();
            table.decide(&request, &mut table.scratch(), &mut decision);
            assert!(decision.allow, "{condition}: {decision:?}");
            assert!(
                crate::eval::decide_reference(&set, &request).allow,
                "{condition}"
            );
        }
        let set = checked("actions { view }\npermit view to group \"ops\";\n");
        let request = request_to(&set);
        let slot = |kind, name| set.schema().slot(kind, name).unwrap() as usize;
        assert_eq!(request.principal[slot(EntityKind::Principal, "id")], None);
        assert_eq!(
            request.principal[slot(EntityKind::Principal, "groups")],
            None
        );
        assert!(request.dag.as_ref().unwrap().values.is_empty());
        assert!(request.host.as_ref().unwrap().values.is_empty());
        assert!(crate::eval::decide_reference(&set, &request).allow);
    }

    #[test]
    fn the_builder_refuses_what_the_schema_does_not_declare() {
        let set = set();
        let action = set.schema().action("view").unwrap();
        let mut builder =
            RequestBuilder::new(&set, String::from("ann"), PrincipalKind::User, action, 5);
        assert!(matches!(
            builder.principal_attribute("shoe", Value::Int(1)),
            Err(RequestError::UnknownAttribute { .. })
        ));
        assert!(matches!(
            builder.principal_attribute("mfa", Value::Int(1)),
            Err(RequestError::WrongType { .. })
        ));
        assert!(matches!(
            builder.context_attribute("time", Value::Time(1)),
            Err(RequestError::BuiltIn { .. })
        ));
    }
}
