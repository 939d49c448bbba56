//! The typed intermediate form: names resolved, types checked, patterns compiled, host ids
//! normalised. A [`PolicySet`] is built only by a check that found no errors, and every
//! value in it agrees with the schema: that is what lets evaluation never fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use regex::Regex;

use crate::source::Span;
use crate::syntax::ast::Effect;
use crate::time::{Days, Timestamp};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EnumId(pub(crate) u32);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    Bool,
    Int,
    String,
    Time,
    Date,
    Enum(EnumId),
    Set(Box<Type>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumDef {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntityKind {
    Principal,
    Dag,
    Host,
    Context,
}

impl EntityKind {
    pub const ALL: [EntityKind; 4] = [
        EntityKind::Principal,
        EntityKind::Dag,
        EntityKind::Host,
        EntityKind::Context,
    ];

    pub fn keyword(self) -> &'static str {
        match self {
            EntityKind::Principal => "principal",
            EntityKind::Dag => "dag",
            EntityKind::Host => "host",
            EntityKind::Context => "context",
        }
    }

    pub fn from_keyword(word: &str) -> Option<EntityKind> {
        EntityKind::ALL
            .into_iter()
            .find(|kind| kind.keyword() == word)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrDef {
    pub name: String,
    pub ty: Type,
    pub optional: bool,
    /// Built-in attributes (`id`, `groups`, `kind`, `time`) are always present.
    pub builtin: bool,
}

/// The vocabulary rules may use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    pub enums: Vec<EnumDef>,
    pub entities: BTreeMap<EntityKind, Vec<AttrDef>>,
    pub actions: Vec<String>,
    pub aliases: BTreeMap<String, Vec<ActionId>>,
}

pub const PRINCIPAL_KIND_ENUM: EnumId = EnumId(0);
pub const WEEKDAY_ENUM: EnumId = EnumId(1);

impl Schema {
    pub fn attribute(&self, kind: EntityKind, name: &str) -> Option<&AttrDef> {
        self.entities
            .get(&kind)?
            .iter()
            .find(|attr| attr.name == name)
    }

    /// Where evaluation finds an attribute: the entity and the attribute's position.
    pub fn path(&self, kind: EntityKind, name: &str) -> Option<AttrPath> {
        let slot = self
            .attributes(kind)
            .iter()
            .position(|attr| attr.name == name)?;
        Some(AttrPath {
            entity: kind,
            attr: name.to_owned(),
            slot: slot as u32,
        })
    }

    /// The schema position of an attribute, without building a path.
    pub fn slot(&self, kind: EntityKind, name: &str) -> Option<u32> {
        self.attributes(kind)
            .iter()
            .position(|attr| attr.name == name)
            .map(|slot| slot as u32)
    }

    pub fn attributes(&self, kind: EntityKind) -> &[AttrDef] {
        self.entities.get(&kind).map_or(&[], Vec::as_slice)
    }

    pub fn enum_def(&self, id: EnumId) -> Option<&EnumDef> {
        self.enums.get(id.0 as usize)
    }

    pub fn action(&self, name: &str) -> Option<ActionId> {
        self.actions
            .iter()
            .position(|action| action == name)
            .map(|index| ActionId(index as u32))
    }

    pub fn action_name(&self, id: ActionId) -> &str {
        self.actions.get(id.0 as usize).map_or("?", String::as_str)
    }

    pub fn display_type(&self, ty: &Type) -> String {
        match ty {
            Type::Bool => String::from("Bool"),
            Type::Int => String::from("Int"),
            Type::String => String::from("String"),
            Type::Time => String::from("Time"),
            Type::Date => String::from("Date"),
            Type::Enum(id) => self
                .enum_def(*id)
                .map_or_else(|| String::from("?"), |def| def.name.clone()),
            Type::Set(element) => format!("Set<{}>", self.display_type(element)),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActionId(pub u32);

/// A value of some [`Type`]; ordered so sets of values have one canonical form.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Bool(bool),
    Int(i64),
    String(String),
    Time(Timestamp),
    Date(Days),
    Enum(EnumId, u32),
    Set(BTreeSet<Value>),
}

/// An inventory DAG or host with attribute values checked against the schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entity {
    pub id: String,
    pub attrs: BTreeMap<String, Value>,
    /// The same values by schema position (see [`AttrPath::slot`]).
    pub values: Vec<Option<Value>>,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// By DAG id, exactly as written (Airflow ids are case-sensitive).
    pub dags: BTreeMap<String, Entity>,
    /// By normalised host name (see [`normalize_host`]).
    pub hosts: BTreeMap<String, Entity>,
}

/// Host names compare as DNS and Windows compare them: case-insensitively, with a
/// trailing dot ignored.
pub fn normalize_host(name: &str) -> String {
    let mut name = name.to_owned();
    normalize_host_in_place(&mut name);
    name
}

/// [`normalize_host`] on a string the caller owns, without a copy.
pub fn normalize_host_in_place(name: &mut String) {
    if name.ends_with('.') {
        name.pop();
    }
    name.make_ascii_lowercase();
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PrincipalKind {
    User,
    Group,
    Service,
}

impl PrincipalKind {
    pub fn keyword(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Service => "service",
        }
    }
}

/// An id pattern, compiled once. Host patterns are compiled against normalised names.
#[derive(Clone, Debug)]
pub enum IdPattern {
    Exact(String),
    /// `"etl_*"`, the most common glob, matched without an automaton.
    Prefix {
        source: String,
        prefix: String,
    },
    /// `"*@partner.example"`, the next most common.
    Suffix {
        source: String,
        suffix: String,
    },
    Glob {
        source: String,
        regex: Regex,
    },
    Regex {
        source: String,
        regex: Regex,
    },
}

impl IdPattern {
    pub fn matches(&self, id: &str) -> bool {
        match self {
            IdPattern::Exact(exact) => exact == id,
            IdPattern::Prefix { prefix, .. } => id.starts_with(prefix.as_str()),
            IdPattern::Suffix { suffix, .. } => id.ends_with(suffix.as_str()),
            IdPattern::Glob { regex, .. } | IdPattern::Regex { regex, .. } => regex.is_match(id),
        }
    }
}

impl PartialEq for IdPattern {
    fn eq(&self, other: &IdPattern) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdPattern::Exact(text)
            | IdPattern::Prefix { source: text, .. }
            | IdPattern::Suffix { source: text, .. }
            | IdPattern::Glob { source: text, .. } => {
                write!(f, "{text:?}")
            }
            IdPattern::Regex { source, .. } => write!(f, "/{source}/"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PrincipalMatch {
    pub kind: PrincipalKind,
    pub pattern: IdPattern,
}

/// `on dag …` or `at host …`: any pattern matches the id, and the filter holds.
#[derive(Clone, Debug, PartialEq)]
pub struct EntityMatch {
    pub patterns: Vec<IdPattern>,
    pub filter: Option<Cond>,
}

/// Where an attribute value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrPath {
    pub entity: EntityKind,
    pub attr: String,
    /// The attribute's position in the schema, where evaluation finds its value.
    pub slot: u32,
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.entity.keyword(), self.attr)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimePart {
    Hour,
    Minute,
    Weekday,
    Date,
}

impl TimePart {
    pub fn from_name(name: &str) -> Option<TimePart> {
        match name {
            "hour" => Some(TimePart::Hour),
            "minute" => Some(TimePart::Minute),
            "weekday" => Some(TimePart::Weekday),
            "date" => Some(TimePart::Date),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Literal(Value),
    Attr(AttrPath),
    /// `context.time.hour` and friends: a part of a `Time` attribute.
    TimePart(AttrPath, TimePart),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    NotEq,
    Less,
    LessEq,
    Greater,
    GreaterEq,
}

/// A condition whose operands have been checked to have matching types.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    Bool(Term),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Has(AttrPath),
    Compare {
        op: CmpOp,
        left: Term,
        right: Term,
    },
    /// `element in set`; the set is a `Set<T>` attribute or literal.
    In {
        element: Term,
        set: Term,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// `@id`, else `file:line` of the rule.
    pub id: String,
    pub effect: Effect,
    /// `None` for `*`.
    pub actions: Option<BTreeSet<ActionId>>,
    /// Empty means any principal.
    pub principals: Vec<PrincipalMatch>,
    pub dag: Option<EntityMatch>,
    pub host: Option<EntityMatch>,
    /// All must hold; `unless c` is stored as `!c`.
    pub conditions: Vec<Cond>,
    pub expires: Option<Timestamp>,
    pub annotations: BTreeMap<String, String>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TestCase {
    pub name: String,
    pub expectations: Vec<Expectation>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    pub allow: bool,
    pub action: ActionId,
    pub principal_kind: PrincipalKind,
    pub principal_id: String,
    pub groups: BTreeSet<String>,
    pub principal_attrs: BTreeMap<String, Value>,
    pub dag: Option<String>,
    pub host: Option<String>,
    pub context: BTreeMap<String, Value>,
    pub span: Span,
}

/// A policy set that passed the checker without errors. Only the checker builds one.
#[derive(Clone, Debug)]
pub struct PolicySet {
    pub(crate) schema: Schema,
    pub(crate) inventory: Inventory,
    pub(crate) rules: Vec<Rule>,
    pub(crate) tests: Vec<TestCase>,
    pub(crate) builtins_read: BuiltinsRead,
}

/// Which built-in attributes that cost an allocation some rule's condition reads. A
/// request fills in only those: nothing else looks at them, and building them for every
/// decision was a good part of its cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct BuiltinsRead {
    pub(crate) principal_id: bool,
    pub(crate) principal_groups: bool,
    pub(crate) dag_id: bool,
    pub(crate) host_id: bool,
}

impl BuiltinsRead {
    pub(crate) fn of(rules: &[Rule]) -> BuiltinsRead {
        let mut read = BuiltinsRead::default();
        for rule in rules {
            let filters = [&rule.dag, &rule.host]
                .into_iter()
                .filter_map(|entity| entity.as_ref()?.filter.as_ref());
            for cond in rule.conditions.iter().chain(filters) {
                read.note_cond(cond);
            }
        }
        read
    }

    fn note_cond(&mut self, cond: &Cond) {
        match cond {
            Cond::Bool(term) => self.note_term(term),
            Cond::Not(inner) => self.note_cond(inner),
            Cond::And(all) | Cond::Or(all) => all.iter().for_each(|cond| self.note_cond(cond)),
            Cond::Has(path) => self.note_path(path),
            Cond::Compare { left, right, .. } => {
                self.note_term(left);
                self.note_term(right);
            }
            Cond::In { element, set } => {
                self.note_term(element);
                self.note_term(set);
            }
        }
    }

    fn note_term(&mut self, term: &Term) {
        match term {
            Term::Literal(_) => {}
            Term::Attr(path) | Term::TimePart(path, _) => self.note_path(path),
        }
    }

    fn note_path(&mut self, path: &AttrPath) {
        match (path.entity, path.attr.as_str()) {
            (EntityKind::Principal, "id") => self.principal_id = true,
            (EntityKind::Principal, "groups") => self.principal_groups = true,
            (EntityKind::Dag, "id") => self.dag_id = true,
            (EntityKind::Host, "id") => self.host_id = true,
            _ => {}
        }
    }
}

impl PolicySet {
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn tests(&self) -> &[TestCase] {
        &self.tests
    }
}
