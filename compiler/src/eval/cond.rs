//! Three-valued (Kleene) evaluation of conditions. An attribute the request or inventory
//! lacks makes a test unknown rather than false, and the unknown propagates: `no && ?` is
//! no, `yes || ?` is yes, everything else with a `?` stays unknown. Callers then fail
//! closed: an unknown forbid applies, an unknown permit does not.

use crate::ir::{AttrPath, CmpOp, Cond, EntityKind, Term, TimePart, Value, WEEKDAY_ENUM};
use crate::time;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Truth {
    Yes,
    No,
    Unknown,
}

/// What is known about the DAG or host while a rule is evaluated.
#[derive(Clone, Copy, Debug)]
pub enum EntityState<'a> {
    /// In the inventory: every attribute it has is known, and absent ones are absent.
    Known(&'a [Option<Value>]),
    /// Outside the inventory: only the built-in `id` is known.
    IdOnly(&'a [Option<Value>]),
    /// The request names none.
    Absent,
}

/// Where attribute values come from.
#[derive(Clone, Copy, Debug)]
pub struct Env<'a> {
    /// Attribute values by schema position (see `AttrPath::slot`).
    pub principal: &'a [Option<Value>],
    pub context: &'a [Option<Value>],
    pub dag: EntityState<'a>,
    pub host: EntityState<'a>,
}

enum Lookup<'a> {
    Present(&'a Value),
    Absent,
    Unknown,
}

impl<'a> Env<'a> {
    fn lookup(&self, path: &AttrPath) -> Lookup<'a> {
        let found = |values: &'a [Option<Value>]| match values.get(path.slot as usize) {
            Some(Some(value)) => Lookup::Present(value),
            _ => Lookup::Absent,
        };
        match path.entity {
            EntityKind::Principal => found(self.principal),
            EntityKind::Context => found(self.context),
            EntityKind::Dag | EntityKind::Host => {
                let state = if path.entity == EntityKind::Dag {
                    self.dag
                } else {
                    self.host
                };
                match state {
                    EntityState::Known(map) => found(map),
                    EntityState::IdOnly(map) if path.attr == "id" => found(map),
                    EntityState::IdOnly(_) | EntityState::Absent => Lookup::Unknown,
                }
            }
        }
    }

    /// The value of an attribute, when the request or inventory has it.
    pub fn value(&self, path: &AttrPath) -> Option<&'a Value> {
        match self.lookup(path) {
            Lookup::Present(value) => Some(value),
            Lookup::Absent | Lookup::Unknown => None,
        }
    }

    fn is_absent_entity(&self, entity: EntityKind) -> bool {
        match entity {
            EntityKind::Dag => matches!(self.dag, EntityState::Absent),
            EntityKind::Host => matches!(self.host, EntityState::Absent),
            EntityKind::Principal | EntityKind::Context => false,
        }
    }
}

/// Records what was missing: `principal.mfa`, or `dag` when the request names no DAG.
fn note_missing(env: &Env<'_>, path: &AttrPath, missing: &mut Vec<String>) {
    let name = if env.is_absent_entity(path.entity) {
        path.entity.keyword().to_owned()
    } else {
        path.to_string()
    };
    if !missing.contains(&name) {
        missing.push(name);
    }
}

enum Operand<'a> {
    Borrowed(&'a Value),
    Computed(Value),
}

impl Operand<'_> {
    fn value(&self) -> &Value {
        match self {
            Operand::Borrowed(value) => value,
            Operand::Computed(value) => value,
        }
    }
}

fn term<'a>(term: &'a Term, env: &Env<'a>, missing: &mut Vec<String>) -> Option<Operand<'a>> {
    let (path, part) = match term {
        Term::Literal(value) => return Some(Operand::Borrowed(value)),
        Term::Attr(path) => (path, None),
        Term::TimePart(path, part) => (path, Some(*part)),
    };
    let value = match env.lookup(path) {
        Lookup::Present(value) => value,
        Lookup::Absent | Lookup::Unknown => {
            note_missing(env, path, missing);
            return None;
        }
    };
    match (part, value) {
        (None, value) => Some(Operand::Borrowed(value)),
        (Some(part), Value::Time(stamp)) => Some(Operand::Computed(match part {
            TimePart::Hour => Value::Int(time::hour(*stamp)),
            TimePart::Minute => Value::Int(time::minute(*stamp)),
            TimePart::Weekday => Value::Enum(WEEKDAY_ENUM, time::weekday(*stamp) as u32),
            TimePart::Date => Value::Date(time::date(*stamp)),
        })),
        // The checker only builds time parts of `Time` attributes, and requests are
        // type-checked, so this cannot happen; were it to, the test is unknown.
        (Some(_), _) => {
            note_missing(env, path, missing);
            None
        }
    }
}

fn truth(flag: bool) -> Truth {
    if flag { Truth::Yes } else { Truth::No }
}

fn ordinal(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) | Value::Time(number) | Value::Date(number) => Some(*number),
        _ => None,
    }
}

/// Evaluates a condition. `missing` gains the attributes that made it unknown; when the
/// result is known, whatever was noted on the way is taken back out.
pub fn eval_cond(cond: &Cond, env: &Env<'_>, missing: &mut Vec<String>) -> Truth {
    let mark = missing.len();
    let result = eval_inner(cond, env, missing);
    if result != Truth::Unknown {
        missing.truncate(mark);
    }
    result
}

fn eval_inner(cond: &Cond, env: &Env<'_>, missing: &mut Vec<String>) -> Truth {
    match cond {
        Cond::Not(inner) => match eval_cond(inner, env, missing) {
            Truth::Yes => Truth::No,
            Truth::No => Truth::Yes,
            Truth::Unknown => Truth::Unknown,
        },
        Cond::And(parts) => {
            let mut result = Truth::Yes;
            for part in parts {
                match eval_cond(part, env, missing) {
                    Truth::No => return Truth::No,
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::Yes => {}
                }
            }
            result
        }
        Cond::Or(parts) => {
            let mut result = Truth::No;
            for part in parts {
                match eval_cond(part, env, missing) {
                    Truth::Yes => return Truth::Yes,
                    Truth::Unknown => result = Truth::Unknown,
                    Truth::No => {}
                }
            }
            result
        }
        Cond::Has(path) => match env.lookup(path) {
            Lookup::Present(_) => Truth::Yes,
            Lookup::Absent => Truth::No,
            Lookup::Unknown => {
                note_missing(env, path, missing);
                Truth::Unknown
            }
        },
        Cond::Bool(operand) => match term(operand, env, missing) {
            Some(value) => truth(matches!(value.value(), Value::Bool(true))),
            None => Truth::Unknown,
        },
        Cond::Compare { op, left, right } => {
            let left = term(left, env, missing);
            let right = term(right, env, missing);
            let (Some(left), Some(right)) = (left, right) else {
                return Truth::Unknown;
            };
            let (left, right) = (left.value(), right.value());
            match op {
                CmpOp::Eq => truth(left == right),
                CmpOp::NotEq => truth(left != right),
                ordering => match (ordinal(left), ordinal(right)) {
                    (Some(left), Some(right)) => truth(match ordering {
                        CmpOp::Less => left < right,
                        CmpOp::LessEq => left <= right,
                        CmpOp::Greater => left > right,
                        _ => left >= right,
                    }),
                    _ => Truth::Unknown,
                },
            }
        }
        Cond::In { element, set } => {
            let element = term(element, env, missing);
            let set = term(set, env, missing);
            let (Some(element), Some(set)) = (element, set) else {
                return Truth::Unknown;
            };
            match set.value() {
                Value::Set(values) => truth(values.contains(element.value())),
                _ => Truth::Unknown,
            }
        }
    }
}
