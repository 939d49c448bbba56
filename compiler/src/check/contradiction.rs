//! Warns about rules that can never match: tests joined by `&&` that no value satisfies,
//! such as `env == prod && env == dev` or `hour >= 18 && hour < 6`.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Code, Diagnostic};
use crate::ir::{self, CmpOp, Cond, Schema, Term, Value};
use crate::source::Span;
use crate::syntax::ast;

pub(crate) fn warn_if_never_matches(
    schema: &Schema,
    rule: &ast::Rule,
    checked: &ir::Rule,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut groups: Vec<(Span, Vec<&Cond>)> = Vec::new();
    if let (Some(ast_dag), Some(dag)) = (&rule.dag, &checked.dag)
        && let (Some(expr), Some(filter)) = (&ast_dag.filter, &dag.filter)
    {
        groups.push((expr.span, vec![filter]));
    }
    if let (Some(ast_host), Some(host)) = (&rule.host, &checked.host)
        && let (Some(expr), Some(filter)) = (&ast_host.filter, &host.filter)
    {
        groups.push((expr.span, vec![filter]));
    }
    if let (Some(first), Some(last)) = (rule.conditions.first(), rule.conditions.last()) {
        groups.push((
            first.span.to(last.span),
            checked.conditions.iter().collect(),
        ));
    }
    for (span, conds) in groups {
        let mut conjuncts = Vec::new();
        for cond in conds {
            collect_conjuncts(cond, &mut conjuncts);
        }
        if let Some(subject) = unsatisfiable(&conjuncts) {
            let subject = describe(schema, &subject);
            diagnostics.push(
                Diagnostic::warning(Code::RuleNeverMatches, span, "this rule can never match")
                    .with_label(format!(
                        "no value of {subject} passes every test joined by `&&`"
                    ))
                    .with_secondary(rule.effect_span, "this rule")
                    .with_help("check for a typo, or join the alternatives with `||` or `in {…}`"),
            );
        }
    }
}

fn collect_conjuncts<'a>(cond: &'a Cond, out: &mut Vec<&'a Cond>) {
    match cond {
        Cond::And(parts) => parts.iter().for_each(|part| collect_conjuncts(part, out)),
        other => out.push(other),
    }
}

#[derive(Default)]
struct Bounds {
    allowed: Option<BTreeSet<Value>>,
    excluded: BTreeSet<Value>,
    low: Option<(i64, bool)>,
    high: Option<(i64, bool)>,
}

/// The subject of the first contradiction found, if any.
fn unsatisfiable(conjuncts: &[&Cond]) -> Option<Term> {
    let mut bounds: BTreeMap<String, (Term, Bounds)> = BTreeMap::new();
    for cond in conjuncts {
        let (negated, inner) = match cond {
            Cond::Not(inner) => (true, &**inner),
            other => (false, *other),
        };
        match inner {
            Cond::Compare { op, left, right } => {
                let (subject, value, op) = match (left, right) {
                    (Term::Literal(value), subject) if !matches!(subject, Term::Literal(_)) => {
                        (subject, value, flip(*op))
                    }
                    (subject, Term::Literal(value)) if !matches!(subject, Term::Literal(_)) => {
                        (subject, value, *op)
                    }
                    _ => continue,
                };
                let op = if negated { negate(op) } else { op };
                let entry = &mut bounds
                    .entry(format!("{subject:?}"))
                    .or_insert_with(|| (subject.clone(), Bounds::default()))
                    .1;
                match op {
                    CmpOp::Eq => restrict(entry, BTreeSet::from([value.clone()])),
                    CmpOp::NotEq => {
                        entry.excluded.insert(value.clone());
                    }
                    ordering => {
                        let Some(number) = ordinal(value) else {
                            continue;
                        };
                        match ordering {
                            CmpOp::Less => tighten_high(entry, number, false),
                            CmpOp::LessEq => tighten_high(entry, number, true),
                            CmpOp::Greater => tighten_low(entry, number, false),
                            CmpOp::GreaterEq => tighten_low(entry, number, true),
                            CmpOp::Eq | CmpOp::NotEq => {}
                        }
                    }
                }
            }
            Cond::In {
                element,
                set: Term::Literal(Value::Set(values)),
            } if !matches!(element, Term::Literal(_)) => {
                let entry = &mut bounds
                    .entry(format!("{element:?}"))
                    .or_insert_with(|| (element.clone(), Bounds::default()))
                    .1;
                if negated {
                    entry.excluded.extend(values.iter().cloned());
                } else {
                    restrict(entry, values.clone());
                }
            }
            Cond::Bool(subject @ (Term::Attr(_) | Term::TimePart(..))) => {
                let entry = &mut bounds
                    .entry(format!("{subject:?}"))
                    .or_insert_with(|| (subject.clone(), Bounds::default()))
                    .1;
                restrict(entry, BTreeSet::from([Value::Bool(!negated)]));
            }
            _ => {}
        }
    }
    bounds
        .into_values()
        .find(|(_, bound)| is_empty(bound))
        .map(|(subject, _)| subject)
}

fn restrict(bound: &mut Bounds, values: BTreeSet<Value>) {
    bound.allowed = Some(match bound.allowed.take() {
        Some(existing) => existing.intersection(&values).cloned().collect(),
        None => values,
    });
}

fn tighten_low(bound: &mut Bounds, number: i64, inclusive: bool) {
    let candidate = if inclusive {
        number
    } else {
        number.saturating_add(1)
    };
    bound.low = Some((
        bound.low.map_or(candidate, |(low, _)| low.max(candidate)),
        true,
    ));
}

fn tighten_high(bound: &mut Bounds, number: i64, inclusive: bool) {
    let candidate = if inclusive {
        number
    } else {
        number.saturating_sub(1)
    };
    bound.high = Some((
        bound
            .high
            .map_or(candidate, |(high, _)| high.min(candidate)),
        true,
    ));
}

fn is_empty(bound: &Bounds) -> bool {
    let low = bound.low.map(|(low, _)| low);
    let high = bound.high.map(|(high, _)| high);
    if let (Some(low), Some(high)) = (low, high)
        && low > high
    {
        return true;
    }
    let Some(allowed) = &bound.allowed else {
        return false;
    };
    !allowed.iter().any(|value| {
        !bound.excluded.contains(value)
            && ordinal(value).is_none_or(|number| {
                low.is_none_or(|low| number >= low) && high.is_none_or(|high| number <= high)
            })
    })
}

fn ordinal(value: &Value) -> Option<i64> {
    match value {
        Value::Int(number) | Value::Time(number) | Value::Date(number) => Some(*number),
        _ => None,
    }
}

fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Less => CmpOp::Greater,
        CmpOp::LessEq => CmpOp::GreaterEq,
        CmpOp::Greater => CmpOp::Less,
        CmpOp::GreaterEq => CmpOp::LessEq,
        other => other,
    }
}

fn negate(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Eq => CmpOp::NotEq,
        CmpOp::NotEq => CmpOp::Eq,
        CmpOp::Less => CmpOp::GreaterEq,
        CmpOp::LessEq => CmpOp::Greater,
        CmpOp::Greater => CmpOp::LessEq,
        CmpOp::GreaterEq => CmpOp::Less,
    }
}

fn describe(_schema: &Schema, term: &Term) -> String {
    match term {
        Term::Attr(path) => format!("`{path}`"),
        Term::TimePart(path, part) => format!("`{path}.{}`", format!("{part:?}").to_lowercase()),
        Term::Literal(_) => String::from("the value"),
    }
}
