//! Answering one request from the table. The hot path copies and ANDs a few bitsets and
//! evaluates the leftover conditions of the surviving rules; with a reused [`Scratch`]
//! and [`Decision`] it allocates nothing unless an attribute is missing.

use super::bits::{and, copy, for_each, or, set_bit};
use super::{DecisionTable, EntityIndex, Leftover};
use crate::eval::{Decision, EntityRef, EntityState, Env, Request, RuleIndex, Truth, eval_cond};
use crate::ir::PrincipalKind;
use crate::syntax::ast::Effect;

/// Buffers one thread reuses across decisions.
#[derive(Debug, Default)]
pub struct Scratch {
    candidates: Vec<u64>,
    dimension: Vec<u64>,
    forbids: Vec<RuleIndex>,
    missing: Vec<String>,
}

/// How a request's DAG or host was resolved.
#[derive(Clone, Copy)]
enum Resolved {
    Absent,
    Listed(u32),
    Unlisted,
}

impl DecisionTable {
    pub fn scratch(&self) -> Scratch {
        Scratch {
            candidates: vec![0; self.words],
            dimension: vec![0; self.words],
            forbids: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// Decides `request` into `decision`, reusing both buffers.
    pub fn decide(&self, request: &Request, scratch: &mut Scratch, decision: &mut Decision) {
        decision.clear();
        let Scratch {
            candidates,
            dimension,
            forbids,
            missing,
        } = scratch;
        forbids.clear();
        candidates.resize(self.words, 0);
        dimension.resize(self.words, 0);

        let Some(by_action) = self.by_action.get(request.action.0 as usize) else {
            return;
        };
        copy(candidates, by_action.words());

        copy(dimension, self.any_principal.words());
        let own = match request.principal_kind {
            PrincipalKind::Service => self.services.get(&request.principal_id),
            PrincipalKind::User | PrincipalKind::Group => self.users.get(&request.principal_id),
        };
        if let Some(bits) = own {
            or(dimension, bits.words());
        }
        for group in &request.groups {
            if let Some(bits) = self.groups.get(group) {
                or(dimension, bits.words());
            }
        }
        for (kind, pattern, rule) in &self.principal_patterns {
            let matched = match kind {
                PrincipalKind::Group => request.groups.iter().any(|group| pattern.matches(group)),
                kind => *kind == request.principal_kind && pattern.matches(&request.principal_id),
            };
            if matched {
                set_bit(dimension, *rule);
            }
        }
        and(candidates, dimension);

        let dag = resolve(&self.dags, request.dag.as_ref(), candidates, dimension);
        let host = resolve(&self.hosts, request.host.as_ref(), candidates, dimension);
        let env = Env {
            principal: &request.principal,
            context: &request.context,
            dag: state(&self.dags, request.dag.as_ref(), dag),
            host: state(&self.hosts, request.host.as_ref(), host),
        };

        for_each(candidates, |rule| {
            let Some(leftover) = self.leftovers.get(rule as usize) else {
                return;
            };
            let truth = if leftover.is_plain() && !needs_entity_check(leftover, dag, host) {
                Truth::Yes
            } else {
                missing.clear();
                leftover_truth(leftover, request, &env, dag, host, missing)
            };
            match (leftover.effect, truth) {
                (Effect::Forbid, Truth::Yes | Truth::Unknown) => forbids.push(rule),
                (Effect::Permit, Truth::Yes) => decision.deciding.push(rule),
                _ => {}
            }
            if truth == Truth::Unknown {
                for name in missing.iter() {
                    decision.add_missing(name);
                }
            }
        });
        if forbids.is_empty() {
            decision.allow = !decision.deciding.is_empty();
        } else {
            std::mem::swap(&mut decision.deciding, forbids);
        }
    }
}

/// Narrows the candidates by one entity dimension.
fn resolve(
    index: &EntityIndex,
    named: Option<&EntityRef>,
    candidates: &mut [u64],
    dimension: &mut [u64],
) -> Resolved {
    let Some(entity) = named else {
        return Resolved::Absent;
    };
    if let Some(position) = index.ids.get(&entity.id) {
        if let Some(bits) = index.matching.get(*position as usize) {
            and(candidates, bits.words());
        }
        return Resolved::Listed(*position);
    }
    // Outside the inventory: clauses whose patterns match, or that test only attributes
    // (unknown here, so settled per rule below).
    copy(dimension, index.unconstrained.words());
    or(dimension, index.filter_only.words());
    for (pattern, rule) in &index.patterns {
        if pattern.matches(&entity.id) {
            set_bit(dimension, *rule);
        }
    }
    and(candidates, dimension);
    Resolved::Unlisted
}

fn state<'a>(
    index: &'a EntityIndex,
    named: Option<&'a EntityRef>,
    resolved: Resolved,
) -> EntityState<'a> {
    match (resolved, named) {
        (Resolved::Listed(position), _) => match index.attrs.get(position as usize) {
            Some(attrs) => EntityState::Known(attrs),
            None => EntityState::Absent,
        },
        (Resolved::Unlisted, Some(entity)) => EntityState::IdOnly(&entity.attrs),
        _ => EntityState::Absent,
    }
}

fn needs_entity_check(leftover: &Leftover, dag: Resolved, host: Resolved) -> bool {
    let open =
        |clause: &Option<Option<crate::ir::Cond>>, resolved: Resolved| match (clause, resolved) {
            (None, _) | (Some(_), Resolved::Listed(_)) => false,
            (Some(None), Resolved::Unlisted) => false,
            (Some(_), _) => true,
        };
    open(&leftover.dag, dag) || open(&leftover.host, host)
}

/// The same combination as the reference evaluator: a definite "no" anywhere wins, then
/// any unknown, else yes.
fn leftover_truth(
    leftover: &Leftover,
    request: &Request,
    env: &Env<'_>,
    dag: Resolved,
    host: Resolved,
    missing: &mut Vec<String>,
) -> Truth {
    if leftover
        .expires
        .is_some_and(|expires| expires <= request.time)
    {
        return Truth::No;
    }
    let mut result = Truth::Yes;
    let mut combine = |truth: Truth| match (result, truth) {
        (_, Truth::No) | (Truth::No, _) => result = Truth::No,
        (_, Truth::Unknown) => result = Truth::Unknown,
        _ => {}
    };
    for (clause, resolved, keyword) in [(&leftover.dag, dag, "dag"), (&leftover.host, host, "host")]
    {
        match (clause, resolved) {
            (Some(_), Resolved::Absent) => {
                if !missing.iter().any(|name| name == keyword) {
                    missing.push(keyword.to_owned());
                }
                combine(Truth::Unknown);
            }
            (Some(Some(filter)), Resolved::Unlisted) => combine(eval_cond(filter, env, missing)),
            _ => {}
        }
    }
    for condition in &leftover.conditions {
        combine(eval_cond(condition, env, missing));
    }
    result
}
