//! The reference evaluator: walks every rule and applies the rules of meaning literally.
//! It is the oracle the decision table is tested against, so it stays small and plain.

use super::cond::{EntityState, Env, Truth, eval_cond};
use super::request::{EntityRef, Request};
use super::{Decision, RuleIndex};
use crate::ir::{Entity, EntityMatch, PolicySet, PrincipalKind, Rule};
use crate::syntax::ast::Effect;

pub fn decide_reference(set: &PolicySet, request: &Request) -> Decision {
    let mut forbids: Vec<RuleIndex> = Vec::new();
    let mut permits: Vec<RuleIndex> = Vec::new();
    let mut decision = Decision::default();
    for (index, (rule, (truth, missing))) in set
        .rules()
        .iter()
        .zip(rule_truths(set, request))
        .enumerate()
    {
        let index = index as RuleIndex;
        match (rule.effect, truth) {
            (Effect::Forbid, Truth::Yes | Truth::Unknown) => forbids.push(index),
            (Effect::Permit, Truth::Yes) => permits.push(index),
            _ => {}
        }
        if truth == Truth::Unknown {
            for name in &missing {
                decision.add_missing(name);
            }
        }
    }
    decision.allow = forbids.is_empty() && !permits.is_empty();
    decision.deciding = if !forbids.is_empty() {
        forbids
    } else if decision.allow {
        permits
    } else {
        Vec::new()
    };
    decision
}

/// How each rule, in order, applies to the request, with the attributes that left it
/// unknown. Test coverage reads this too.
pub fn rule_truths(set: &PolicySet, request: &Request) -> Vec<(Truth, Vec<String>)> {
    let env = env_for(set, request);
    set.rules()
        .iter()
        .map(|rule| {
            let mut missing = Vec::new();
            let truth = rule_truth(rule, request, &env, &mut missing);
            (truth, missing)
        })
        .collect()
}

/// Where a request's attribute values come from: the request, and the inventory for
/// listed DAGs and hosts.
pub(crate) fn env_for<'a>(set: &'a PolicySet, request: &'a Request) -> Env<'a> {
    let inventory = set.inventory();
    Env {
        principal: &request.principal,
        context: &request.context,
        dag: state(request.dag.as_ref(), |id| inventory.dags.get(id)),
        host: state(request.host.as_ref(), |id| inventory.hosts.get(id)),
    }
}

fn state<'a>(
    named: Option<&'a EntityRef>,
    inventory: impl Fn(&str) -> Option<&'a Entity>,
) -> EntityState<'a> {
    match named {
        None => EntityState::Absent,
        Some(entity) => match inventory(&entity.id) {
            Some(known) => EntityState::Known(&known.values),
            None => EntityState::IdOnly(&entity.values),
        },
    }
}

/// A rule matches when every part does; one definite "no" wins over unknowns.
fn rule_truth(rule: &Rule, request: &Request, env: &Env<'_>, missing: &mut Vec<String>) -> Truth {
    if rule.expires.is_some_and(|expires| expires <= request.time) {
        return Truth::No;
    }
    if rule
        .actions
        .as_ref()
        .is_some_and(|actions| !actions.contains(&request.action))
    {
        return Truth::No;
    }
    if !rule.principals.is_empty()
        && !rule
            .principals
            .iter()
            .any(|matcher| principal_matches(matcher, request))
    {
        return Truth::No;
    }
    let mut parts = Vec::new();
    if let Some(constraint) = &rule.dag {
        parts.push(entity_truth(
            constraint,
            request.dag.as_ref(),
            "dag",
            env,
            missing,
        ));
    }
    if let Some(constraint) = &rule.host {
        parts.push(entity_truth(
            constraint,
            request.host.as_ref(),
            "host",
            env,
            missing,
        ));
    }
    for condition in &rule.conditions {
        parts.push(eval_cond(condition, env, missing));
    }
    if parts.contains(&Truth::No) {
        missing.clear();
        Truth::No
    } else if parts.contains(&Truth::Unknown) {
        Truth::Unknown
    } else {
        Truth::Yes
    }
}

fn principal_matches(matcher: &crate::ir::PrincipalMatch, request: &Request) -> bool {
    match matcher.kind {
        PrincipalKind::User => {
            request.principal_kind == PrincipalKind::User
                && matcher.pattern.matches(&request.principal_id)
        }
        PrincipalKind::Service => {
            request.principal_kind == PrincipalKind::Service
                && matcher.pattern.matches(&request.principal_id)
        }
        PrincipalKind::Group => request
            .groups
            .iter()
            .any(|group| matcher.pattern.matches(group)),
    }
}

fn entity_truth(
    constraint: &EntityMatch,
    named: Option<&EntityRef>,
    keyword: &str,
    env: &Env<'_>,
    missing: &mut Vec<String>,
) -> Truth {
    let Some(entity) = named else {
        if !missing.iter().any(|name| name == keyword) {
            missing.push(keyword.to_owned());
        }
        return Truth::Unknown;
    };
    if !constraint.patterns.is_empty()
        && !constraint
            .patterns
            .iter()
            .any(|pattern| pattern.matches(&entity.id))
    {
        return Truth::No;
    }
    match &constraint.filter {
        None => Truth::Yes,
        Some(filter) => eval_cond(filter, env, missing),
    }
}
