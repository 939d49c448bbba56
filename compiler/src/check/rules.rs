//! Checks one rule: annotations, actions, principals, id patterns, filters and conditions.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::CheckOptions;
use super::expr::{ExprChecker, Scope};
use super::patterns::{IdCase, RegexCache, compile};
use crate::diag::{Code, Diagnostic};
use crate::ir::{
    self, EntityKind, EntityMatch, IdPattern, Inventory, PrincipalKind, PrincipalMatch, Schema,
};
use crate::resolve::{unknown_action, unknown_entity_kind};
use crate::source::{SourceSet, Span};
use crate::suggest;
use crate::syntax::ast::{self, ActionSpec, ConditionKind};
use crate::time;

pub(crate) struct RuleContext<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) inventory: &'a Inventory,
    pub(crate) sources: &'a SourceSet,
    pub(crate) options: &'a CheckOptions,
    pub(crate) regexes: RefCell<RegexCache>,
}

const SECONDS_PER_DAY: i64 = 86_400;

pub(crate) fn check_rule(
    ctx: &RuleContext<'_>,
    rule: &ast::Rule,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ir::Rule> {
    let errors_before = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    let (annotations, expires) = annotations(ctx, rule, diagnostics);
    let actions = match &rule.actions {
        ActionSpec::All(_) => None,
        ActionSpec::Named(names) => {
            let mut set = BTreeSet::new();
            for name in names {
                if let Some(id) = ctx.schema.action(&name.text) {
                    set.insert(id);
                } else if let Some(members) = ctx.schema.aliases.get(&name.text) {
                    set.extend(members.iter().copied());
                } else {
                    diagnostics.push(unknown_action(ctx.schema, name));
                }
            }
            Some(set)
        }
    };
    let mut principals = Vec::new();
    for matcher in &rule.principals {
        let kind = match matcher.kind.text.as_str() {
            "user" => PrincipalKind::User,
            "group" => PrincipalKind::Group,
            "service" => PrincipalKind::Service,
            _ => {
                diagnostics.push(unknown_entity_kind(
                    &matcher.kind,
                    &["user", "group", "service"],
                ));
                continue;
            }
        };
        if let Some(pattern) = compile(&matcher.pattern, IdCase::Exact, &ctx.regexes, diagnostics) {
            principals.push(PrincipalMatch { kind, pattern });
        }
    }
    let dag = rule
        .dag
        .as_ref()
        .and_then(|constraint| entity_match(ctx, constraint, EntityKind::Dag, diagnostics));
    let host = rule
        .host
        .as_ref()
        .and_then(|constraint| entity_match(ctx, constraint, EntityKind::Host, diagnostics));
    let mut conditions = Vec::new();
    for condition in &rule.conditions {
        let mut checker = ExprChecker {
            schema: ctx.schema,
            scope: Scope::Condition,
            diagnostics,
        };
        if let Some(cond) = checker.condition(&condition.expr) {
            conditions.push(match condition.kind {
                ConditionKind::When => cond,
                ConditionKind::Unless => ir::Cond::Not(Box::new(cond)),
            });
        }
    }
    let errors_after = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    if errors_after > errors_before {
        return None;
    }
    let id = annotations.get("id").cloned().unwrap_or_else(|| {
        ctx.sources
            .location(rule.effect_span)
            .rsplit_once(':')
            .map_or_else(String::new, |(place, _)| place.to_owned())
    });
    let checked = ir::Rule {
        id,
        effect: rule.effect,
        actions,
        principals,
        dag,
        host,
        conditions,
        expires,
        annotations,
        span: rule.span,
    };
    super::contradiction::warn_if_never_matches(ctx.schema, rule, &checked, diagnostics);
    Some(checked)
}

fn annotations(
    ctx: &RuleContext<'_>,
    rule: &ast::Rule,
    diagnostics: &mut Vec<Diagnostic>,
) -> (BTreeMap<String, String>, Option<time::Timestamp>) {
    let mut values = BTreeMap::new();
    let mut spans: BTreeMap<&str, Span> = BTreeMap::new();
    let mut expires = None;
    for annotation in &rule.annotations {
        let key = annotation.key.text.as_str();
        if let Some(first) = spans.get(key) {
            diagnostics.push(
                Diagnostic::error(
                    Code::DuplicateAnnotation,
                    annotation.span,
                    format!("`@{key}` is given twice on this rule"),
                )
                .with_secondary(*first, "first given here"),
            );
            continue;
        }
        spans.insert(key, annotation.span);
        let value = annotation.value.as_ref().map(|value| value.value.clone());
        let needs_value = matches!(key, "id" | "expires" | "owner" | "reason");
        match (&value, needs_value) {
            (None, true) => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidAnnotation,
                        annotation.span,
                        format!("`@{key}` needs a value"),
                    )
                    .with_help(format!("write `@{key}(\"…\")`")),
                );
                continue;
            }
            (Some(text), true) if text.trim().is_empty() => {
                diagnostics.push(Diagnostic::error(
                    Code::InvalidAnnotation,
                    annotation.span,
                    format!("`@{key}` cannot be empty"),
                ));
                continue;
            }
            _ => {}
        }
        if key == "id"
            && let Some(text) = &value
            && text.chars().any(|ch| ch.is_whitespace() || ch.is_control())
        {
            diagnostics.push(
                Diagnostic::error(
                    Code::InvalidAnnotation,
                    annotation.span,
                    "`@id` cannot contain spaces",
                )
                .with_help("use kebab-case, such as `etl-operators`"),
            );
            continue;
        }
        if key == "expires" {
            let (Some(text), Some(value_span)) =
                (&value, annotation.value.as_ref().map(|value| value.span))
            else {
                continue;
            };
            match time::parse_rfc3339(text) {
                None => {
                    diagnostics.push(
                        Diagnostic::error(Code::InvalidExpires, value_span, format!("`{text}` is not a time"))
                            .with_help("write an RFC 3339 time with a zone, such as `@expires(\"2027-01-31T00:00:00Z\")`"),
                    );
                    continue;
                }
                Some(stamp) if stamp <= ctx.options.now => diagnostics.push(
                    Diagnostic::warning(
                        Code::RuleExpired,
                        value_span,
                        format!("rule expired at {}", time::format_rfc3339(stamp)),
                    )
                    .with_label("this rule no longer matches any request")
                    .with_help(
                        "delete the rule, or move `@expires` forward if the grant is renewed",
                    ),
                ),
                Some(stamp)
                    if stamp - ctx.options.now
                        <= ctx.options.expiry_warning_days * SECONDS_PER_DAY =>
                {
                    let days = (stamp - ctx.options.now) / SECONDS_PER_DAY;
                    diagnostics.push(
                        Diagnostic::warning(
                            Code::RuleExpiresSoon,
                            value_span,
                            format!(
                                "rule expires in {days} days, at {}",
                                time::format_rfc3339(stamp)
                            ),
                        )
                        .with_help("renew it, or let it lapse on purpose and delete it afterwards"),
                    );
                }
                Some(_) => {}
            }
            expires = time::parse_rfc3339(text);
        }
        values.insert(key.to_owned(), value.unwrap_or_default());
    }
    (values, expires)
}

fn entity_match(
    ctx: &RuleContext<'_>,
    constraint: &ast::EntityConstraint,
    expected: EntityKind,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<EntityMatch> {
    if constraint.kind.text != expected.keyword() {
        let (keyword, other) = match expected {
            EntityKind::Dag => ("on", "at host"),
            _ => ("at", "on dag"),
        };
        if EntityKind::from_keyword(&constraint.kind.text).is_some() {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownEntityKind,
                    constraint.kind.span,
                    format!(
                        "`{keyword}` takes `{}`, not `{}`",
                        expected.keyword(),
                        constraint.kind.text
                    ),
                )
                .with_help(format!("the other constraint is written `{other} …`")),
            );
        } else {
            diagnostics.push(unknown_entity_kind(&constraint.kind, &[expected.keyword()]));
        }
        return None;
    }
    let case = if expected == EntityKind::Host {
        IdCase::Host
    } else {
        IdCase::Exact
    };
    let mut patterns = Vec::new();
    for pattern in &constraint.patterns {
        let Some(compiled) = compile(pattern, case, &ctx.regexes, diagnostics) else {
            continue;
        };
        warn_if_matches_nothing(ctx, expected, pattern.span, &compiled, diagnostics);
        patterns.push(compiled);
    }
    let filter = match &constraint.filter {
        Some(expr) => {
            let mut checker = ExprChecker {
                schema: ctx.schema,
                scope: Scope::Where(expected),
                diagnostics,
            };
            Some(checker.condition(expr)?)
        }
        None => None,
    };
    Some(EntityMatch { patterns, filter })
}

fn warn_if_matches_nothing(
    ctx: &RuleContext<'_>,
    kind: EntityKind,
    span: Span,
    pattern: &IdPattern,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let entities = match kind {
        EntityKind::Dag => &ctx.inventory.dags,
        _ => &ctx.inventory.hosts,
    };
    let matches_some = match pattern {
        IdPattern::Exact(id) => entities.contains_key(id),
        IdPattern::Prefix { prefix, .. } => entities
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(id, _)| id.starts_with(prefix.as_str())),
        _ => entities.keys().any(|id| pattern.matches(id)),
    };
    if entities.is_empty() || matches_some {
        return;
    }
    let ids = entities.keys().map(String::as_str);
    let mut diagnostic = Diagnostic::warning(
        Code::PatternMatchesNothing,
        span,
        format!("{pattern} matches no {} in the inventory", kind.keyword()),
    );
    if let IdPattern::Exact(text) = pattern
        && let Some(suggestion) = suggest::closest(text, ids)
    {
        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
    }
    if diagnostic.help.is_none() {
        diagnostic = diagnostic.with_help(format!(
            "the rule still applies to a {} outside the inventory with a matching id",
            kind.keyword()
        ));
    }
    diagnostics.push(diagnostic);
}
