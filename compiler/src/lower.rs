//! Lowers a checked policy set to a decision table: every index is built here, and every
//! `where` test on inventory entities is decided here, once, instead of per request.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::eval::{EntityState, Env, RuleIndex, Truth, eval_cond};
use crate::ir::{Cond, Entity, EntityMatch, IdPattern, PolicySet, PrincipalKind, Value};
use crate::table::{Bits, DecisionTable, EntityIndex, Leftover};

pub fn lower(set: &PolicySet) -> DecisionTable {
    let rules = set.rules();
    let rule_count = rules.len() as u32;
    let words = rules.len().div_ceil(64).max(1);
    let mut table = DecisionTable {
        rule_count,
        words,
        leftovers: Vec::with_capacity(rules.len()),
        all_rules: Bits::empty(words),
        by_action: vec![Bits::empty(words); set.schema().actions.len()],
        any_principal: Bits::empty(words),
        users: FxHashMap::default(),
        groups: FxHashMap::default(),
        services: FxHashMap::default(),
        principal_patterns: Vec::new(),
        dags: entity_index(&set.inventory().dags, words),
        hosts: entity_index(&set.inventory().hosts, words),
    };
    let mut dag_filters = FilterCache::default();
    let mut host_filters = FilterCache::default();
    for (position, rule) in rules.iter().enumerate() {
        let index = position as RuleIndex;
        table.all_rules.set(index);
        match &rule.actions {
            None => table.by_action.iter_mut().for_each(|bits| bits.set(index)),
            Some(actions) => {
                for action in actions {
                    if let Some(bits) = table.by_action.get_mut(action.0 as usize) {
                        bits.set(index);
                    }
                }
            }
        }
        if rule.principals.is_empty() {
            table.any_principal.set(index);
        }
        for matcher in &rule.principals {
            let map = match matcher.kind {
                PrincipalKind::User => &mut table.users,
                PrincipalKind::Group => &mut table.groups,
                PrincipalKind::Service => &mut table.services,
            };
            match &matcher.pattern {
                IdPattern::Exact(id) => map
                    .entry(id.clone())
                    .or_insert_with(|| Bits::empty(words))
                    .set(index),
                pattern => table
                    .principal_patterns
                    .push((matcher.kind, pattern.clone(), index)),
            }
        }
        index_clause(
            &mut table.dags,
            &set.inventory().dags,
            rule.dag.as_ref(),
            index,
            &mut dag_filters,
        );
        index_clause(
            &mut table.hosts,
            &set.inventory().hosts,
            rule.host.as_ref(),
            index,
            &mut host_filters,
        );
        table.leftovers.push(Leftover {
            effect: rule.effect,
            expires: rule.expires,
            dag: rule.dag.as_ref().map(|clause| clause.filter.clone()),
            host: rule.host.as_ref().map(|clause| clause.filter.clone()),
            conditions: rule.conditions.clone(),
        });
    }
    table
}

fn entity_index(inventory: &BTreeMap<String, Entity>, words: usize) -> EntityIndex {
    EntityIndex {
        ids: inventory
            .keys()
            .enumerate()
            .map(|(position, id)| (id.clone(), position as u32))
            .collect(),
        matching: vec![Bits::empty(words); inventory.len()],
        attrs: inventory
            .values()
            .map(|entity| entity.attrs.clone())
            .collect(),
        unconstrained: Bits::empty(words),
        filter_only: Bits::empty(words),
        patterns: Vec::new(),
    }
}

/// Which inventory entities each distinct filter admits; large sets repeat filters often.
#[derive(Default)]
struct FilterCache {
    admitted: FxHashMap<String, Vec<bool>>,
}

impl FilterCache {
    fn admits(&mut self, filter: &Cond, inventory: &BTreeMap<String, Entity>) -> &[bool] {
        let key = format!("{filter:?}");
        self.admitted.entry(key).or_insert_with(|| {
            let empty: BTreeMap<String, Value> = BTreeMap::new();
            inventory
                .values()
                .map(|entity| {
                    let env = Env {
                        principal: &empty,
                        context: &empty,
                        dag: EntityState::Known(&entity.attrs),
                        host: EntityState::Known(&entity.attrs),
                    };
                    // A `where` reads only its own entity, and the checker guards every
                    // optional read with `has`, so an inventory entity never leaves a test
                    // unknown; were it to, admitting it keeps forbids in force.
                    eval_cond(filter, &env, &mut Vec::new()) != Truth::No
                })
                .collect()
        })
    }
}

fn index_clause(
    index: &mut EntityIndex,
    inventory: &BTreeMap<String, Entity>,
    clause: Option<&EntityMatch>,
    rule: RuleIndex,
    filters: &mut FilterCache,
) {
    let Some(clause) = clause else {
        index.unconstrained.set(rule);
        index.matching.iter_mut().for_each(|bits| bits.set(rule));
        return;
    };
    if clause.patterns.is_empty() {
        index.filter_only.set(rule);
    }
    for pattern in &clause.patterns {
        index.patterns.push((pattern.clone(), rule));
    }
    let admitted = clause
        .filter
        .as_ref()
        .map(|filter| filters.admits(filter, inventory).to_vec());
    let mut positions: Vec<u32> = Vec::new();
    if clause.patterns.is_empty() {
        positions.extend(0..inventory.len() as u32);
    }
    for pattern in &clause.patterns {
        match pattern {
            IdPattern::Exact(id) => positions.extend(index.ids.get(id).copied()),
            IdPattern::Prefix { prefix, .. } => positions.extend(
                inventory
                    .range(prefix.clone()..)
                    .take_while(|(id, _)| id.starts_with(prefix.as_str()))
                    .filter_map(|(id, _)| index.ids.get(id).copied()),
            ),
            other => positions.extend(
                inventory
                    .keys()
                    .enumerate()
                    .filter(|(_, id)| other.matches(id))
                    .map(|(position, _)| position as u32),
            ),
        }
    }
    for position in positions {
        let passes = admitted
            .as_ref()
            .is_none_or(|admitted| admitted.get(position as usize).copied().unwrap_or(false));
        if passes && let Some(bits) = index.matching.get_mut(position as usize) {
            bits.set(rule);
        }
    }
}
