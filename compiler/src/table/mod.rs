//! The decision table: per dimension (action, principal, DAG, host) an index from value to
//! the rules that can match, with inventory attribute tests resolved when the table is
//! built. A decision ANDs four bitsets and evaluates the leftover conditions of the few
//! rules that survive. Built by `lower`, immutable, shared across threads.

mod bits;
mod decide;

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

pub(crate) use bits::Bits;
pub use decide::Scratch;

use crate::eval::RuleIndex;
use crate::ir::{Cond, IdPattern, PrincipalKind, Value};
use crate::syntax::ast::Effect;
use crate::time::Timestamp;

/// What a decision still needs of a rule after the indexes have chosen it.
#[derive(Debug)]
pub(crate) struct Leftover {
    pub(crate) effect: Effect,
    pub(crate) expires: Option<Timestamp>,
    /// `Some` when the rule has an `on` clause; the filter, if any, for DAGs outside
    /// the inventory (inventory DAGs were resolved when the table was built).
    pub(crate) dag: Option<Option<Cond>>,
    pub(crate) host: Option<Option<Cond>>,
    pub(crate) conditions: Vec<Cond>,
}

impl Leftover {
    /// True when the indexes alone decide the rule for inventory entities.
    pub(crate) fn is_plain(&self) -> bool {
        self.expires.is_none() && self.conditions.is_empty()
    }
}

/// One entity dimension (DAGs or hosts).
#[derive(Debug)]
pub(crate) struct EntityIndex {
    /// Inventory ids (normalised for hosts) to their position below.
    pub(crate) ids: FxHashMap<String, u32>,
    /// Per inventory entity: the rules whose clause matches it.
    pub(crate) matching: Vec<Bits>,
    pub(crate) attrs: Vec<BTreeMap<String, Value>>,
    /// Rules without a clause on this dimension: they match any entity, or none.
    pub(crate) unconstrained: Bits,
    /// Rules whose clause has a filter but no id pattern.
    pub(crate) filter_only: Bits,
    /// Id patterns of every clause, for entities outside the inventory.
    pub(crate) patterns: Vec<(IdPattern, RuleIndex)>,
}

#[derive(Debug)]
pub struct DecisionTable {
    pub(crate) rule_count: u32,
    pub(crate) words: usize,
    pub(crate) leftovers: Vec<Leftover>,
    pub(crate) all_rules: Bits,
    pub(crate) by_action: Vec<Bits>,
    pub(crate) any_principal: Bits,
    pub(crate) users: FxHashMap<String, Bits>,
    pub(crate) groups: FxHashMap<String, Bits>,
    pub(crate) services: FxHashMap<String, Bits>,
    /// Globs and regexes in `to` clauses, tried one by one.
    pub(crate) principal_patterns: Vec<(PrincipalKind, IdPattern, RuleIndex)>,
    pub(crate) dags: EntityIndex,
    pub(crate) hosts: EntityIndex,
}

impl DecisionTable {
    pub fn rule_count(&self) -> usize {
        self.rule_count as usize
    }

    /// Bytes the indexes occupy on the heap (bitsets and keys; rule conditions excluded).
    pub fn index_bytes(&self) -> usize {
        let maps = |map: &FxHashMap<String, Bits>| {
            map.iter()
                .map(|(key, bits)| key.len() + bits.heap_bytes() + 32)
                .sum::<usize>()
        };
        let entity = |index: &EntityIndex| {
            index.matching.iter().map(Bits::heap_bytes).sum::<usize>()
                + index.ids.keys().map(|key| key.len() + 40).sum::<usize>()
                + index.unconstrained.heap_bytes()
                + index.filter_only.heap_bytes()
        };
        self.by_action.iter().map(Bits::heap_bytes).sum::<usize>()
            + self.any_principal.heap_bytes()
            + self.all_rules.heap_bytes()
            + maps(&self.users)
            + maps(&self.groups)
            + maps(&self.services)
            + entity(&self.dags)
            + entity(&self.hosts)
    }
}
