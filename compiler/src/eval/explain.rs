//! Why a request was denied: for each permit that came closest, the first part of it that
//! failed, in words ("host `prod-sql-01` has env `prod`, rule wants `dev` or `staging`").

use super::cond::{Env, Truth, eval_cond};
use super::reference::{decide_reference, env_for};
use super::request::{EntityRef, Request};
use super::{Decision, RuleIndex};
use crate::ir::{
    CmpOp, Cond, EntityMatch, PolicySet, PrincipalKind, Rule, Schema, Term, TimePart, Value,
};
use crate::syntax::ast::Effect;
use crate::time;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearMiss {
    pub rule: RuleIndex,
    /// How many of the rule's parts (time, action, caller, DAG, host, conditions) held.
    pub parts_passed: usize,
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    pub decision: Decision,
    /// For a deny: the permits that came closest, closest first (at most three).
    pub near_misses: Vec<NearMiss>,
}

pub fn explain(set: &PolicySet, request: &Request) -> Explanation {
    let decision = decide_reference(set, request);
    let mut near_misses = Vec::new();
    if !decision.allow {
        let env = env_for(set, request);
        for (index, rule) in set.rules().iter().enumerate() {
            if rule.effect != Effect::Permit {
                continue;
            }
            if let Some((parts_passed, reason)) = first_failure(set.schema(), rule, request, &env) {
                near_misses.push(NearMiss {
                    rule: index as RuleIndex,
                    parts_passed,
                    reason,
                });
            }
        }
        near_misses.sort_by(|left, right| {
            right
                .parts_passed
                .cmp(&left.parts_passed)
                .then(left.rule.cmp(&right.rule))
        });
        near_misses.truncate(3);
    }
    Explanation {
        decision,
        near_misses,
    }
}

/// The number of parts that held before the first that did not, and why it did not.
fn first_failure(
    schema: &Schema,
    rule: &Rule,
    request: &Request,
    env: &Env<'_>,
) -> Option<(usize, String)> {
    let mut passed = 0;
    if let Some(expires) = rule.expires.filter(|expires| *expires <= request.time) {
        return Some((
            passed,
            format!("expired at {}", time::format_rfc3339(expires)),
        ));
    }
    passed += 1;
    if let Some(actions) = rule
        .actions
        .as_ref()
        .filter(|actions| !actions.contains(&request.action))
    {
        let names: Vec<String> = actions
            .iter()
            .map(|action| format!("`{}`", schema.action_name(*action)))
            .collect();
        return Some((
            passed,
            format!(
                "covers {}, not `{}`",
                names.join(", "),
                schema.action_name(request.action)
            ),
        ));
    }
    passed += 1;
    if !rule.principals.is_empty()
        && !rule
            .principals
            .iter()
            .any(|matcher| principal_matches(matcher, request))
    {
        let wanted: Vec<String> = rule
            .principals
            .iter()
            .map(|matcher| format!("{} {}", matcher.kind.keyword(), matcher.pattern))
            .collect();
        let groups: Vec<&str> = request.groups.iter().map(String::as_str).collect();
        let caller = match request.principal_kind {
            PrincipalKind::Service => "service",
            PrincipalKind::User | PrincipalKind::Group => "user",
        };
        return Some((
            passed,
            format!(
                "applies to {}; the caller is {caller} `{}` in groups {{{}}}",
                wanted.join(", "),
                request.principal_id,
                groups.join(", ")
            ),
        ));
    }
    passed += 1;
    for (constraint, named, keyword) in [
        (&rule.dag, request.dag.as_ref(), "dag"),
        (&rule.host, request.host.as_ref(), "host"),
    ] {
        let Some(constraint) = constraint else {
            passed += 1;
            continue;
        };
        if let Some(reason) = entity_failure(schema, constraint, named, keyword, env) {
            return Some((passed, reason));
        }
        passed += 1;
    }
    for condition in &rule.conditions {
        let mut missing = Vec::new();
        match eval_cond(condition, env, &mut missing) {
            Truth::Yes => passed += 1,
            Truth::No => {
                return Some((
                    passed,
                    format!(
                        "condition `{}` is false{}",
                        describe(schema, condition),
                        leaf_detail(schema, condition, env)
                    ),
                ));
            }
            Truth::Unknown => {
                return Some((
                    passed,
                    format!("needs {}, which the request lacks", quoted(&missing)),
                ));
            }
        }
    }
    None
}

fn entity_failure(
    schema: &Schema,
    constraint: &EntityMatch,
    named: Option<&EntityRef>,
    keyword: &str,
    env: &Env<'_>,
) -> Option<String> {
    let Some(entity) = named else {
        return Some(format!("needs a {keyword}; the request names none"));
    };
    if !constraint.patterns.is_empty()
        && !constraint
            .patterns
            .iter()
            .any(|pattern| pattern.matches(&entity.id))
    {
        let patterns: Vec<String> = constraint
            .patterns
            .iter()
            .map(ToString::to_string)
            .collect();
        return Some(format!(
            "{keyword} `{}` does not match {}",
            entity.id,
            patterns.join(" or ")
        ));
    }
    let filter = constraint.filter.as_ref()?;
    let mut missing = Vec::new();
    match eval_cond(filter, env, &mut missing) {
        Truth::Yes => None,
        Truth::Unknown => Some(format!(
            "{keyword} `{}` is not in the inventory, so {} is unknown",
            entity.id,
            quoted(&missing)
        )),
        Truth::No => Some(match failing_leaf(filter, env) {
            Some(leaf) => leaf_words(schema, leaf, env, keyword, &entity.id),
            None => format!(
                "{keyword} `{}` fails `where {}`",
                entity.id,
                describe(schema, filter)
            ),
        }),
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn principal_matches(matcher: &crate::ir::PrincipalMatch, request: &Request) -> bool {
    match matcher.kind {
        PrincipalKind::Group => request
            .groups
            .iter()
            .any(|group| matcher.pattern.matches(group)),
        kind => kind == request.principal_kind && matcher.pattern.matches(&request.principal_id),
    }
}

/// The first conjunct that is false, descending through `&&`.
fn failing_leaf<'a>(cond: &'a Cond, env: &Env<'_>) -> Option<&'a Cond> {
    match cond {
        Cond::And(parts) => parts
            .iter()
            .find(|part| eval_cond(part, env, &mut Vec::new()) == Truth::No)
            .and_then(|part| failing_leaf(part, env)),
        other => Some(other),
    }
}

fn leaf_detail(schema: &Schema, cond: &Cond, env: &Env<'_>) -> String {
    match failing_leaf(cond, env) {
        Some(
            Cond::Compare {
                left: Term::Attr(path),
                ..
            }
            | Cond::In {
                element: Term::Attr(path),
                ..
            },
        ) => match env.value(path) {
            Some(value) => format!(": `{path}` is {}", show(schema, value)),
            None => String::new(),
        },
        _ => String::new(),
    }
}

fn leaf_words(schema: &Schema, leaf: &Cond, env: &Env<'_>, keyword: &str, id: &str) -> String {
    let wanted = match leaf {
        Cond::Compare {
            op: CmpOp::Eq,
            left: Term::Attr(path),
            right: Term::Literal(value),
        } => Some((path, show(schema, value))),
        Cond::In {
            element: Term::Attr(path),
            set: Term::Literal(Value::Set(values)),
        } => {
            let shown: Vec<String> = values.iter().map(|value| show(schema, value)).collect();
            Some((path, join_or(&shown)))
        }
        _ => None,
    };
    match wanted {
        Some((path, wanted)) => {
            let actual = env
                .value(path)
                .map_or_else(|| String::from("none"), |value| show(schema, value));
            format!(
                "{keyword} `{id}` has {} {actual}, rule wants {wanted}",
                path.attr
            )
        }
        None => format!("{keyword} `{id}` fails `where {}`", describe(schema, leaf)),
    }
}

fn join_or(items: &[String]) -> String {
    match items.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::from("nothing"),
    }
}

fn show(schema: &Schema, value: &Value) -> String {
    format!("`{}`", show_bare(schema, value))
}

fn show_bare(schema: &Schema, value: &Value) -> String {
    match value {
        Value::Bool(flag) => flag.to_string(),
        Value::Int(number) => number.to_string(),
        Value::String(text) => format!("{text:?}"),
        Value::Time(stamp) => time::format_rfc3339(*stamp),
        Value::Date(days) => time::format_date(*days),
        Value::Enum(id, index) => schema
            .enum_def(*id)
            .and_then(|def| def.values.get(*index as usize))
            .cloned()
            .unwrap_or_else(|| String::from("?")),
        Value::Set(values) => format!(
            "{{{}}}",
            values
                .iter()
                .map(|value| show_bare(schema, value))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn term(schema: &Schema, term: &Term) -> String {
    match term {
        Term::Literal(value) => show_bare(schema, value),
        Term::Attr(path) => path.to_string(),
        Term::TimePart(path, part) => {
            let part = match part {
                TimePart::Hour => "hour",
                TimePart::Minute => "minute",
                TimePart::Weekday => "weekday",
                TimePart::Date => "date",
            };
            format!("{path}.{part}")
        }
    }
}

/// A condition written back in the policy language.
pub fn describe(schema: &Schema, cond: &Cond) -> String {
    let join = |parts: &[Cond], separator: &str| {
        parts
            .iter()
            .map(|part| describe(schema, part))
            .collect::<Vec<_>>()
            .join(separator)
    };
    match cond {
        Cond::Bool(operand) => term(schema, operand),
        Cond::Not(inner) => format!("!({})", describe(schema, inner)),
        Cond::And(parts) => join(parts, " && "),
        Cond::Or(parts) => format!("({})", join(parts, " || ")),
        Cond::Has(path) => format!("{} has {}", path.entity.keyword(), path.attr),
        Cond::Compare { op, left, right } => {
            let symbol = match op {
                CmpOp::Eq => "==",
                CmpOp::NotEq => "!=",
                CmpOp::Less => "<",
                CmpOp::LessEq => "<=",
                CmpOp::Greater => ">",
                CmpOp::GreaterEq => ">=",
            };
            format!("{} {symbol} {}", term(schema, left), term(schema, right))
        }
        Cond::In { element, set } => format!("{} in {}", term(schema, element), term(schema, set)),
    }
}
