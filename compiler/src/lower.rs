//! Lowers a checked policy set to a decision table: every index is built here, and every
//! `where` test on inventory entities is decided here, once, instead of per request.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::eval::{EntityState, Env, RuleIndex, Truth, eval_cond};
use crate::ir::{Cond, Entity, EntityMatch, IdPattern, PolicySet, PrincipalKind, Value};
use crate::table::{
    BitMatrix, Bits, DecisionTable, EntityIndex, Leftover, NameIndex, WordKinds, WordLists,
};

pub fn lower(set: &PolicySet) -> DecisionTable {
    let rules = set.rules();
    let rule_count = rules.len() as u32;
    let words = rules.len().div_ceil(64).max(1);
    let rule_of = slot_order(rules);
    let action_count = set.schema().actions.len();
    let mut by_action = vec![Bits::empty(words); action_count];
    let mut any_principal = vec![Bits::empty(words); action_count];
    let mut users: FxHashMap<String, Bits> = FxHashMap::default();
    let mut groups: FxHashMap<String, Bits> = FxHashMap::default();
    let mut services: FxHashMap<String, Bits> = FxHashMap::default();
    let mut principal_patterns = Vec::new();
    let mut dags = entity_index(&set.inventory().dags, words);
    let mut hosts = entity_index(&set.inventory().hosts, words);
    // Inventory ids in position order (the inventory's sorted order), for prefix runs.
    let dag_ids: Vec<&str> = set.inventory().dags.keys().map(String::as_str).collect();
    let host_ids: Vec<&str> = set.inventory().hosts.keys().map(String::as_str).collect();
    let mut leftovers = Vec::with_capacity(rules.len());
    let mut classes: FxHashMap<String, u32> = FxHashMap::default();
    let mut class_of = Vec::with_capacity(rules.len());
    let mut kinds = vec![WordKinds::default(); words];
    let mut dag_filters = FilterCache::default();
    let mut host_filters = FilterCache::default();
    for (slot, rule_index) in rule_of.iter().enumerate() {
        let Some(rule) = rules.get(*rule_index as usize) else {
            continue;
        };
        let slot = slot as u32;
        let actions: Vec<usize> = match &rule.actions {
            None => (0..action_count).collect(),
            Some(actions) => actions.iter().map(|action| action.0 as usize).collect(),
        };
        for action in &actions {
            if let Some(bits) = by_action.get_mut(*action) {
                bits.set(slot);
            }
            if rule.principals.is_empty()
                && let Some(bits) = any_principal.get_mut(*action)
            {
                bits.set(slot);
            }
        }
        for matcher in &rule.principals {
            let map = match matcher.kind {
                PrincipalKind::User => &mut users,
                PrincipalKind::Group => &mut groups,
                PrincipalKind::Service => &mut services,
            };
            match &matcher.pattern {
                IdPattern::Exact(id) => map
                    .entry(id.clone())
                    .or_insert_with(|| Bits::empty(words))
                    .set(slot),
                pattern => principal_patterns.push((matcher.kind, pattern.clone(), slot)),
            }
        }
        index_clause(
            &mut dags,
            &set.inventory().dags,
            &dag_ids,
            rule.dag.as_ref(),
            slot,
            &mut dag_filters,
        );
        index_clause(
            &mut hosts,
            &set.inventory().hosts,
            &host_ids,
            rule.host.as_ref(),
            slot,
            &mut host_filters,
        );
        let leftover = Leftover {
            effect: rule.effect,
            expires: rule.expires,
            dag: rule.dag.as_ref().map(|clause| clause.filter.clone()),
            host: rule.host.as_ref().map(|clause| clause.filter.clone()),
            conditions: rule.conditions.clone(),
        };
        if let Some(kind) = kinds.get_mut((slot / 64) as usize) {
            let bit = 1 << (slot % 64);
            if leftover.is_plain() {
                kind.plain |= bit;
            }
            if leftover.effect == crate::syntax::ast::Effect::Forbid {
                kind.forbid |= bit;
            }
        }
        let key = format!(
            "{:?}|{:?}|{:?}|{:?}",
            leftover.expires, leftover.dag, leftover.host, leftover.conditions
        );
        let next = classes.len() as u32;
        class_of.push(*classes.entry(key).or_insert(next));
        leftovers.push(leftover);
    }
    // Each key's rules, then split by action: a decision reads only its action's words.
    let mut key_rules: Vec<Bits> = Vec::new();
    let mut number = |map: FxHashMap<String, Bits>| -> NameIndex {
        let numbered: Vec<(String, u32)> = map
            .into_iter()
            .map(|(key, bits)| {
                key_rules.push(bits);
                (key, key_rules.len() as u32 - 1)
            })
            .collect();
        NameIndex::new(numbered.iter().map(|(key, number)| (key.as_str(), *number)))
    };
    let (users, groups, services) = (number(users), number(groups), number(services));
    let mut candidates = WordLists::default();
    for rules in &key_rules {
        // Only the key's non-zero words: lowering stays linear in keys times actions.
        let own: Vec<(u32, u64)> = non_zero(rules.words()).collect();
        for action in &by_action {
            candidates.push(own.iter().map(|(position, word)| {
                let allowed = action.words().get(*position as usize).copied().unwrap_or(0);
                (*position, word & allowed)
            }));
        }
    }
    for bits in &any_principal {
        candidates.push(non_zero(bits.words()));
    }
    // Distinguishes tables, so a request prepared for one is never read by another.
    static TABLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    DecisionTable {
        id: TABLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        candidates,
        key_count: key_rules.len(),
        action_count,
        rule_count,
        words,
        rule_of,
        leftovers,
        class_count: classes.len(),
        class_of,
        kinds,
        by_action,
        users,
        groups,
        services,
        principal_patterns,
        dags,
        hosts,
    }
}

fn non_zero(words: &[u64]) -> impl Iterator<Item = (u32, u64)> + '_ {
    words
        .iter()
        .enumerate()
        .filter(|(_, word)| **word != 0)
        .map(|(position, word)| (position as u32, *word))
}

/// The table's numbering: rules sharing their first principal key are adjacent, and rules
/// naming no principal are grouped by their first action, so each key's rules occupy a
/// word or two of every bitset.
fn slot_order(rules: &[crate::ir::Rule]) -> Vec<RuleIndex> {
    let key = |rule: &crate::ir::Rule| -> (u8, String, u32) {
        let first_action = rule
            .actions
            .as_ref()
            .and_then(|actions| actions.iter().next())
            .map_or(0, |action| action.0);
        match rule.principals.first() {
            None => (0, String::new(), first_action),
            Some(matcher) => match &matcher.pattern {
                IdPattern::Exact(id) => {
                    (1, format!("{}:{id}", matcher.kind.keyword()), first_action)
                }
                _ => (2, String::new(), first_action),
            },
        }
    };
    let mut order: Vec<(RuleIndex, (u8, String, u32))> = rules
        .iter()
        .enumerate()
        .map(|(index, rule)| (index as RuleIndex, key(rule)))
        .collect();
    order.sort_by(|left, right| left.1.cmp(&right.1).then(left.0.cmp(&right.0)));
    order.into_iter().map(|(index, _)| index).collect()
}

fn entity_index(inventory: &BTreeMap<String, Entity>, words: usize) -> EntityIndex {
    EntityIndex {
        ids: NameIndex::new(
            inventory
                .keys()
                .enumerate()
                .map(|(position, id)| (id.as_str(), position as u32)),
        ),
        matching: BitMatrix::new(inventory.len(), words),
        attrs: inventory
            .values()
            .map(|entity| entity.values.clone())
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
            let empty: [Option<Value>; 0] = [];
            inventory
                .values()
                .map(|entity| {
                    let env = Env {
                        principal: &empty,
                        context: &empty,
                        dag: EntityState::Known(&entity.values),
                        host: EntityState::Known(&entity.values),
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
    sorted_ids: &[&str],
    clause: Option<&EntityMatch>,
    slot: u32,
    filters: &mut FilterCache,
) {
    let Some(clause) = clause else {
        index.unconstrained.set(slot);
        index.matching.set_all(slot);
        return;
    };
    if clause.patterns.is_empty() {
        index.filter_only.set(slot);
    }
    for pattern in &clause.patterns {
        index.patterns.push((pattern.clone(), slot));
    }
    let admitted = clause
        .filter
        .as_ref()
        .map(|filter| filters.admits(filter, inventory));
    let mut positions: Vec<u32> = Vec::new();
    if clause.patterns.is_empty() {
        positions.extend(0..inventory.len() as u32);
    }
    for pattern in &clause.patterns {
        match pattern {
            IdPattern::Exact(id) => positions.extend(index.ids.get(id)),
            IdPattern::Prefix { prefix, .. } => {
                // Positions follow the inventory's sorted order, so the ids with a prefix
                // are one run of positions.
                let start = sorted_ids.partition_point(|id| *id < prefix.as_str());
                let run = sorted_ids
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|id| id.starts_with(prefix.as_str()))
                    .count();
                positions.extend(start as u32..(start + run) as u32);
            }
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
        if passes {
            index.matching.set(position as usize, slot);
        }
    }
}
