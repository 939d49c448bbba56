//! The decision table: per dimension (action, principal, DAG, host) an index from value to
//! the rules that can match, with inventory attribute tests resolved when the table is
//! built. Rules are renumbered so that the rules of one principal key (and, for rules that
//! name no principal, one action) are adjacent; a decision reads the few words its
//! principal and action select, ANDs each with the DAG's and host's row, and evaluates the
//! leftover conditions of the rules that survive. Built by `lower`, immutable, shared
//! across threads.

mod bits;
mod decide;
mod names;

pub(crate) use bits::{BitMatrix, Bits, WordLists};
pub use decide::Scratch;
pub(crate) use names::NameIndex;

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
    pub(crate) ids: NameIndex,
    /// Per inventory entity (a row each): the rules whose clause matches it.
    pub(crate) matching: BitMatrix,
    /// Per inventory entity: attribute values by schema position.
    pub(crate) attrs: Vec<Vec<Option<Value>>>,
    /// Rules without a clause on this dimension: they match any entity, or none.
    pub(crate) unconstrained: Bits,
    /// Rules whose clause has a filter but no id pattern.
    pub(crate) filter_only: Bits,
    /// Id patterns of every clause (by slot), for entities outside the inventory.
    pub(crate) patterns: Vec<(IdPattern, u32)>,
}

/// Indexes below count rules in the table's own order ("slots"); `rule_of` maps a slot
/// back to the rule's position in the policy set.
#[derive(Debug)]
pub struct DecisionTable {
    /// Unique per table built in this process, so a request prepared for one table is
    /// never read by another.
    pub(crate) id: u64,
    pub(crate) rule_count: u32,
    pub(crate) words: usize,
    pub(crate) rule_of: Vec<RuleIndex>,
    pub(crate) leftovers: Vec<Leftover>,
    /// Per slot: which class of identical leftovers the rule belongs to. Many rules share
    /// their conditions, and one decision evaluates each class at most once.
    pub(crate) class_of: Vec<u32>,
    pub(crate) class_count: usize,
    /// Per word of slots: which rules the indexes decide alone (no expiry, no
    /// conditions), and which are forbids; side by side, as a decision reads both.
    pub(crate) kinds: Vec<WordKinds>,
    pub(crate) by_action: Vec<Bits>,
    pub(crate) action_count: usize,
    /// Candidate words per list: list `key * action_count + action` holds the rules of
    /// principal key `key` (a user, group or service id) that grant or deny `action`; the
    /// lists after the keys' hold, per action, the rules without a `to` clause.
    pub(crate) candidates: WordLists,
    pub(crate) key_count: usize,
    pub(crate) users: NameIndex,
    pub(crate) groups: NameIndex,
    pub(crate) services: NameIndex,
    /// Globs and regexes in `to` clauses, tried one by one.
    pub(crate) principal_patterns: Vec<(PrincipalKind, IdPattern, u32)>,
    pub(crate) dags: EntityIndex,
    pub(crate) hosts: EntityIndex,
}

/// One word's worth of slots: rules settled by the indexes alone, and forbids.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct WordKinds {
    pub(crate) plain: u64,
    pub(crate) forbid: u64,
}

impl DecisionTable {
    pub fn rule_count(&self) -> usize {
        self.rule_count as usize
    }

    /// Bytes the indexes occupy on the heap (bitsets and keys; rule conditions excluded).
    pub fn index_bytes(&self) -> usize {
        let entity = |index: &EntityIndex| {
            index.matching.heap_bytes()
                + index.ids.heap_bytes()
                + index.unconstrained.heap_bytes()
                + index.filter_only.heap_bytes()
        };
        self.by_action.iter().map(Bits::heap_bytes).sum::<usize>()
            + self.candidates.heap_bytes()
            + self.rule_of.len() * 4
            + self.kinds.len() * std::mem::size_of::<WordKinds>()
            + self.users.heap_bytes()
            + self.groups.heap_bytes()
            + self.services.heap_bytes()
            + entity(&self.dags)
            + entity(&self.hosts)
    }
}
