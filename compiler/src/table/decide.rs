//! Answering one request from the table. The principal's keys and the action select a
//! few words of candidate rules; each word is ANDed with the DAG's and host's rows; the
//! leftover conditions of the surviving rules are evaluated. With a reused [`Scratch`]
//! and [`Decision`] it allocates nothing unless an attribute is missing.

use super::bits::{copy, for_each, or, set_bit};
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
        named.and_then(|entity| self.ids.get(&entity.id))
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
            keys.push(key);
        }
        if !self.groups.is_empty() {
            keys.extend(
                request
                    .groups
                    .iter()
                    .filter_map(|group| self.groups.get(group)),
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
        Scratch::default()
    }

    /// Decides `request` into `decision`, reusing both buffers.
    pub fn decide(&self, request: &Request, scratch: &mut Scratch, decision: &mut Decision) {
        decision.clear();
        let Scratch {
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
        let action = request.action.0 as usize;
        let Some(by_action) = self.by_action.get(action) else {
            return;
        };

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
        let mut pass = Pass {
            table: self,
            request,
            env: Env {
                principal: &request.principal,
                context: &request.context,
                dag: state(&self.dags, request.dag.as_ref(), dag),
                host: state(&self.hosts, request.host.as_ref(), host),
            },
            dag,
            host,
            dag_row: dimension(&self.dags, dag, dag_dimension),
            host_row: dimension(&self.hosts, host, host_dimension),
            // With an absent or unlisted DAG or host, plain rules with a clause on it
            // still need the per-rule check.
            settle_plain: matches!(dag, Resolved::Listed(_)) && matches!(host, Resolved::Listed(_)),
            memo,
            generation: *generation,
            missing,
            forbids,
            decision,
        };

        // A rule reached through two keys (a user and one of their groups, say) is seen
        // twice; its memo entry makes the second visit cheap and the dedup below drops
        // the repeat.
        let any_principal = self.key_count * self.action_count + action;
        for (position, word) in self.candidates.get(any_principal) {
            pass.visit(*position, *word);
        }
        for key in keys {
            let list = *key as usize * self.action_count + action;
            for (position, word) in self.candidates.get(list) {
                pass.visit(*position, *word);
            }
        }
        for slot in pattern_slots {
            let position = *slot / 64;
            let word = by_action
                .words()
                .get(position as usize)
                .copied()
                .unwrap_or(0)
                & (1 << (*slot % 64));
            pass.visit(position, word);
        }

        let Pass {
            forbids, decision, ..
        } = pass;
        if forbids.is_empty() {
            decision.allow = !decision.deciding.is_empty();
        } else {
            std::mem::swap(&mut decision.deciding, forbids);
        }
        // Slots are not policy order; answers list rules in policy order, once each.
        decision.deciding.sort_unstable();
        decision.deciding.dedup();
    }
}

/// One decision in progress: what it has resolved, and where it collects its answer.
struct Pass<'a> {
    table: &'a DecisionTable,
    request: &'a Request,
    env: Env<'a>,
    dag: Resolved,
    host: Resolved,
    /// The rows that narrow candidates; `None` narrows nothing.
    dag_row: Option<&'a [u64]>,
    host_row: Option<&'a [u64]>,
    /// Plain rules need no leftover evaluation when both entities are listed (or the
    /// rule has no clause on them): they are settled from the bitsets alone.
    settle_plain: bool,
    memo: &'a mut Vec<(u32, Truth)>,
    generation: u32,
    missing: &'a mut Vec<String>,
    forbids: &'a mut Vec<RuleIndex>,
    decision: &'a mut Decision,
}

impl Pass<'_> {
    /// Judges the candidate rules in one word of slots.
    #[inline]
    fn visit(&mut self, position: u32, candidates: u64) {
        let index = position as usize;
        let mut word = candidates;
        if let Some(row) = self.dag_row {
            word &= row.get(index).copied().unwrap_or(0);
        }
        if let Some(row) = self.host_row {
            word &= row.get(index).copied().unwrap_or(0);
        }
        if word == 0 {
            return;
        }
        let table = self.table;
        let kinds = table.kinds.get(index).copied().unwrap_or_default();
        let settled = if self.settle_plain {
            word & kinds.plain
        } else {
            0
        };
        let rule_of = |bit: u32| {
            let slot = position * 64 + bit;
            table.rule_of.get(slot as usize).copied().unwrap_or(slot)
        };
        for_each(&[settled & kinds.forbid], |bit| {
            self.forbids.push(rule_of(bit))
        });
        for_each(&[settled & !kinds.forbid], |bit| {
            self.decision.deciding.push(rule_of(bit));
        });
        for_each(&[word & !settled], |bit| {
            self.judge_leftover(position * 64 + bit)
        });
    }

    #[inline(never)]
    fn judge_leftover(&mut self, slot: u32) {
        let table = self.table;
        let Some(leftover) = table.leftovers.get(slot as usize) else {
            return;
        };
        let rule = table.rule_of.get(slot as usize).copied().unwrap_or(slot);
        let generation = self.generation;
        let class = table
            .class_of
            .get(slot as usize)
            .and_then(|class| self.memo.get_mut(*class as usize));
        let truth = if leftover.is_plain() && !needs_entity_check(leftover, self.dag, self.host) {
            Truth::Yes
        } else if let Some(entry) = class.as_ref().filter(|entry| entry.0 == generation) {
            // Same conditions as a rule already evaluated for this request; its missing
            // attributes, if any, are recorded already.
            entry.1
        } else {
            self.missing.clear();
            let truth = leftover_truth(
                leftover,
                self.request,
                &self.env,
                self.dag,
                self.host,
                self.missing,
            );
            if let Some(entry) = class {
                *entry = (generation, truth);
            }
            if truth == Truth::Unknown {
                for name in self.missing.iter() {
                    self.decision.add_missing(name);
                }
            }
            truth
        };
        match (leftover.effect, truth) {
            (Effect::Forbid, Truth::Yes | Truth::Unknown) => self.forbids.push(rule),
            (Effect::Permit, Truth::Yes) => self.decision.deciding.push(rule),
            _ => {}
        }
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
        Resolved::Listed(position) => index.matching.row(position as usize),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, reason = "tests fail loudly by design")]

    use std::collections::{BTreeMap, BTreeSet};

    use crate::eval::{Decision, Request, RequestParts};
    use crate::ir::PrincipalKind;
    use crate::source::SourceSet;
    use crate::{CheckOptions, analyze};

    #[test]
    fn a_clone_of_a_prepared_request_stays_prepared() {
        let mut sources = SourceSet::new();
        sources.add(
            "set.gate",
            "actions { view }\ndag \"etl\" {}\npermit view to group \"ops\" on dag \"etl\";\n",
        );
        let set = analyze(&sources, &CheckOptions::at(0))
            .policy_set
            .expect("the set checks");
        let table = crate::lower::lower(&set);
        let request = Request::new(
            &set,
            RequestParts {
                principal_id: String::from("alice"),
                principal_kind: PrincipalKind::User,
                groups: BTreeSet::from([String::from("ops")]),
                principal_attrs: BTreeMap::new(),
                action: set.schema().action("view").expect("declared"),
                dag: Some(String::from("etl")),
                host: None,
                time: 0,
                context_attrs: BTreeMap::new(),
            },
        )
        .expect("the request fits");
        let prepared = table.prepare(request);
        let copy = prepared.clone();
        assert_eq!(copy.prepared, prepared.prepared);
        assert!(copy.prepared.is_some());
        let mut decision = Decision::default();
        table.decide(&copy, &mut table.scratch(), &mut decision);
        assert!(decision.allow);
        assert_eq!(decision.deciding, [0]);
    }
}
