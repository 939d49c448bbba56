//! Evaluating requests: the typed request, three-valued conditions, and the reference
//! evaluator that applies the rules of meaning literally. The decision table must agree
//! with the reference evaluator on every request; property tests hold it to that.

mod cond;
mod explain;
mod reference;
mod request;

pub use cond::{EntityState, Env, Truth, eval_cond};
pub use explain::{Explanation, NearMiss, describe, explain};
pub use reference::{decide_reference, rule_truths};
pub(crate) use request::Prepared;
pub use request::{
    EntityRef, PreparedRequest, Request, RequestBuilder, RequestError, RequestParts,
};

/// Index of a rule in `PolicySet::rules()` and in the decision table.
pub type RuleIndex = u32;

/// The answer to a request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    /// The forbids that denied, or the permits that allowed; empty for a default deny.
    /// Sorted by rule index.
    pub deciding: Vec<RuleIndex>,
    /// Attributes some rule needed but the request or inventory lacked (`principal.mfa`,
    /// `dag.owner`, or `dag` when the request names no DAG). Sorted, no duplicates.
    pub missing: Vec<String>,
}

impl Decision {
    /// Empties the decision, keeping its buffers for the next request.
    pub fn clear(&mut self) {
        self.allow = false;
        self.deciding.clear();
        self.missing.clear();
    }

    pub(crate) fn add_missing(&mut self, name: &str) {
        if let Err(position) = self
            .missing
            .binary_search_by(|existing| existing.as_str().cmp(name))
        {
            self.missing.insert(position, name.to_owned());
        }
    }
}
