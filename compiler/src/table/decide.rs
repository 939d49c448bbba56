//! Answering one request from the table. The principal selects a few words of candidate
//! rules; each is ANDed with the action, DAG and host bitsets; the leftover conditions of
//! the surviving rules are evaluated. With a reused [`Scratch`] and [`Decision`] it
//! allocates nothing unless an attribute is missing.

use super::bits::{SparseBits, copy, for_each, or, set_bit};
use super::{DecisionTable, EntityIndex, Leftover};
use crate::eval::{
    Decision, EntityRef, EntityState, Env, Prepared, PreparedRequest, Request, RuleIndex, Truth,
    eval_cond,
};
use crate::ir::PrincipalKind;
use crate::syntax::ast::Effect;

/// Buffers one thread reuses across decisions.
#[derive(Debug, Default)]
pub struct Scratch {
    /// Candidate words by position; only the positions in `touched` are non-zero.
    candidates: Vec<u64>,
    touched: Vec<u32>,
    /// The principal's keys and pattern slots, for a request not prepared for the table.
    keys: Vec<u32>,
    pattern_slots: Vec<u32>,
    /// A DAG or host dimension computed for an entity outside the inventory.
    dag_dimension: Vec<u64>,
    host_dimension: Vec<u64>,
    forbids: Vec<RuleIndex>,
    missing: Vec<String>,
    /// Per leftover class: the decision it was last evaluated for, and the result.
    memo: Vec<(u32, Truth)>,
    generation: u32,
}

/// How a request's DAG or host was resolved.
#[derive(Clone, Copy)]
enum Resolved {
    Absent,
    Listed(u32),
    Unlisted,
}

impl EntityIndex {
    /// The inventory position of a named entity; `None` when it is outside the inventory
    /// or none is named.
    fn position(&self, named: Option<&EntityRef>) -> Option<u32> {
        named.and_then(|entity| self.ids.get(&entity.id).copied())
    }
}

impl DecisionTable {
    /// Resolves a request's names against this table once, so that deciding it (any
    /// number of times) compares no strings. Another table decides a request prepared
    /// here as if it were not prepared: with lookups, and the same answer.
    pub fn prepare(&self, mut request: Request) -> PreparedRequest {
        let mut keys = Vec::new();
        let mut pattern_slots = Vec::new();
        self.principal_keys_of(&request, &mut keys, &mut pattern_slots);
        request.prepared = Some(Prepared {
            table: self.id,
            keys: keys.into(),
            pattern_slots: pattern_slots.into(),
            dag: self.dags.position(request.dag.as_ref()),
            host: self.hosts.position(request.host.as_ref()),
        });
        PreparedRequest(request)
    }

    /// The principal keys the request matches (its own id, then its groups) and the slots
    /// of the `to` patterns that admit it.
    fn principal_keys_of(&self, request: &Request, keys: &mut Vec<u32>, slots: &mut Vec<u32>) {
        keys.clear();
        slots.clear();
        let own_map = match request.principal_kind {
            PrincipalKind::Service => &self.services,
            PrincipalKind::User | PrincipalKind::Group => &self.users,
        };
        // Most sets grant to groups only; skip hashing the caller's id then.
        if !own_map.is_empty()
            && let Some(key) = own_map.get(&request.principal_id)
        {
            keys.push(*key);
        }
        if !self.groups.is_empty() {
            keys.extend(
                request
                    .groups
                    .iter()
                    .filter_map(|group| self.groups.get(group).copied()),
            );
        }
        for (kind, pattern, slot) in &self.principal_patterns {
            let matched = match kind {
                PrincipalKind::Group => request.groups.iter().any(|group| pattern.matches(group)),
                kind => *kind == request.principal_kind && pattern.matches(&request.principal_id),
            };
            if matched {
                slots.push(*slot);
            }
        }
    }

    pub fn scratch(&self) -> Scratch {
        Scratch {
            candidates: vec![0; self.words],
            ..Scratch::default()
        }
    }

    /// Decides `request` into `decision`, reusing both buffers.
    pub fn decide(&self, request: &Request, scratch: &mut Scratch, decision: &mut Decision) {
        decision.clear();
        let Scratch {
            candidates,
            touched,
            keys: keys_buffer,
            pattern_slots: slots_buffer,
            dag_dimension,
            host_dimension,
            forbids,
            missing,
            memo,
            generation,
        } = scratch;
        forbids.clear();
        if memo.len() != self.class_count {
            memo.clear();
            memo.resize(self.class_count, (0, Truth::No));
        }
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            // After 2^32 decisions the counter wraps; forget every memo once.
            memo.iter_mut().for_each(|entry| entry.0 = 0);
            *generation = 1;
        }
        let generation = *generation;
        if candidates.len() != self.words {
            candidates.clear();
            candidates.resize(self.words, 0);
        }
        touched.clear();
        let action = request.action.0 as usize;
        let Some(by_action) = self.by_action.get(action) else {
            return;
        };

        let mut gather = |bits: &SparseBits| {
            for (position, word) in bits.entries() {
                if let Some(slot) = candidates.get_mut(*position as usize) {
                    if *slot == 0 {
                        touched.push(*position);
                    }
                    *slot |= word;
                }
            }
        };
        if let Some(bits) = self.any_principal.get(action) {
            gather(bits);
        }
        // A request prepared for this table carries its keys; otherwise look them up.
        let prepared = request
            .prepared
            .as_ref()
            .filter(|prepared| prepared.table == self.id);
        let (keys, pattern_slots, dag_position, host_position) = match prepared {
            Some(prepared) => (
                &prepared.keys[..],
                &prepared.pattern_slots[..],
                prepared.dag,
                prepared.host,
            ),
            None => {
                self.principal_keys_of(request, keys_buffer, slots_buffer);
                (
                    &keys_buffer[..],
                    &slots_buffer[..],
                    self.dags.position(request.dag.as_ref()),
                    self.hosts.position(request.host.as_ref()),
                )
            }
        };
        for key in keys {
            if let Some(bits) = self.principal_keys.get(*key as usize) {
                gather(bits);
            }
        }
        for slot in pattern_slots {
            let position = *slot / 64;
            if candidates
                .get(position as usize)
                .is_some_and(|word| *word == 0)
            {
                touched.push(position);
            }
            set_bit(candidates, *slot);
        }

        let dag = resolve(
            &self.dags,
            request.dag.as_ref(),
            dag_position,
            dag_dimension,
            self.words,
        );
        let host = resolve(
            &self.hosts,
            request.host.as_ref(),
            host_position,
            host_dimension,
            self.words,
        );
        let dag_bits = dimension(&self.dags, dag, dag_dimension);
        let host_bits = dimension(&self.hosts, host, host_dimension);
        let env = Env {
            principal: &request.principal,
            context: &request.context,
            dag: state(&self.dags, request.dag.as_ref(), dag),
            host: state(&self.hosts, request.host.as_ref(), host),
        };

        // With an absent or unlisted DAG or host, plain rules with a clause on it still
        // need the per-rule check.
        let entity_checks_needed =
            !matches!(dag, Resolved::Listed(_)) || !matches!(host, Resolved::Listed(_));
        for position in touched.iter() {
            let index = *position as usize;
            let Some(slot) = candidates.get_mut(index) else {
                continue;
            };
            let mut word = *slot & by_action.words().get(index).copied().unwrap_or(0);
            *slot = 0;
            if let Some(bits) = dag_bits {
                word &= bits.get(index).copied().unwrap_or(0);
            }
            if let Some(bits) = host_bits {
                word &= bits.get(index).copied().unwrap_or(0);
            }
            // Plain rules need no leftover evaluation when the entities are listed (or
            // the rule has no clause on them): settle them from two bitsets.
            let word_index = index;
            let plain = self.plain.words().get(word_index).copied().unwrap_or(0);
            let forbid = self.forbid.words().get(word_index).copied().unwrap_or(0);
            let settled = if entity_checks_needed {
                0
            } else {
                word & plain
            };
            for_each(&[settled], |bit| {
                let slot = *position * 64 + bit;
                let rule = self.rule_of.get(slot as usize).copied().unwrap_or(slot);
                if forbid & (1 << bit) != 0 {
                    forbids.push(rule);
                } else {
                    decision.deciding.push(rule);
                }
            });
            for_each(&[word & !settled], |bit| {
                let slot = *position * 64 + bit;
                let Some(leftover) = self.leftovers.get(slot as usize) else {
                    return;
                };
                let rule = self.rule_of.get(slot as usize).copied().unwrap_or(slot);
                let class = self
                    .class_of
                    .get(slot as usize)
                    .and_then(|class| memo.get_mut(*class as usize));
                let truth = if leftover.is_plain() && !needs_entity_check(leftover, dag, host) {
                    Truth::Yes
                } else if let Some(entry) = class.as_ref().filter(|entry| entry.0 == generation) {
                    // Same conditions as a rule already evaluated for this request; its
                    // missing attributes, if any, are recorded already.
                    entry.1
                } else {
                    missing.clear();
                    let truth = leftover_truth(leftover, request, &env, dag, host, missing);
                    if let Some(entry) = class {
                        *entry = (generation, truth);
                    }
                    if truth == Truth::Unknown {
                        for name in missing.iter() {
                            decision.add_missing(name);
                        }
                    }
                    truth
                };
                match (leftover.effect, truth) {
                    (Effect::Forbid, Truth::Yes | Truth::Unknown) => forbids.push(rule),
                    (Effect::Permit, Truth::Yes) => decision.deciding.push(rule),
                    _ => {}
                }
            });
        }
        if forbids.is_empty() {
            decision.allow = !decision.deciding.is_empty();
        } else {
            std::mem::swap(&mut decision.deciding, forbids);
        }
        // Slots are not policy order; answers list rules in policy order.
        decision.deciding.sort_unstable();
    }
}

/// Finds the request's entity; for one outside the inventory, computes which rules' id
/// patterns admit it (attribute tests are settled per rule later).
fn resolve(
    index: &EntityIndex,
    named: Option<&EntityRef>,
    position: Option<u32>,
    dimension: &mut Vec<u64>,
    words: usize,
) -> Resolved {
    let Some(entity) = named else {
        return Resolved::Absent;
    };
    if let Some(position) = position {
        return Resolved::Listed(position);
    }
    dimension.resize(words, 0);
    copy(dimension, index.unconstrained.words());
    or(dimension, index.filter_only.words());
    for (pattern, slot) in &index.patterns {
        if pattern.matches(&entity.id) {
            set_bit(dimension, *slot);
        }
    }
    Resolved::Unlisted
}

/// The bitset that narrows candidates on this dimension; `None` narrows nothing.
fn dimension<'a>(
    index: &'a EntityIndex,
    resolved: Resolved,
    computed: &'a [u64],
) -> Option<&'a [u64]> {
    match resolved {
        Resolved::Absent => None,
        Resolved::Listed(position) => index
            .matching
            .get(position as usize)
            .map(|bits| bits.words()),
        Resolved::Unlisted => Some(computed),
    }
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
        (Resolved::Unlisted, Some(entity)) => EntityState::IdOnly(&entity.values),
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
