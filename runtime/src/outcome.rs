//! What a decision came to, borrowed from the engine and the decision rather than copied
//! out of them: the sidecar writes answers and log lines from it on every decision, and an
//! [`Answer`] (owned strings) is built only for callers that keep one.

use std::borrow::Cow;

use compiler::eval::{Decision, Request, RuleIndex};

use crate::engine::Engine;
use crate::wire::Answer;

/// The reason a deny gives when no rule decided it.
const NO_PERMIT: &str = "no rule permits this request";
/// The reason a decision the log refused gives.
const UNRECORDED: &str = "the decision log is full; denied so that no decision goes unrecorded";

#[derive(Clone)]
pub(crate) struct Outcome<'a> {
    engine: &'a Engine,
    pub(crate) allow: bool,
    deciding: &'a [RuleIndex],
    pub(crate) missing: &'a [String],
    /// Why a deny has no deciding rule.
    pub(crate) reason: Option<Cow<'a, str>>,
    pub(crate) policy_version: &'a str,
}

impl<'a> Outcome<'a> {
    pub(crate) fn decided(engine: &'a Engine, request: &Request, decision: &'a Decision) -> Self {
        let reason = match engine.unlisted_denial(request) {
            Some(reason) => Some(Cow::Owned(reason)),
            None => (!decision.allow && decision.deciding.is_empty())
                .then_some(Cow::Borrowed(NO_PERMIT)),
        };
        Outcome {
            engine,
            allow: decision.allow,
            deciding: &decision.deciding,
            missing: &decision.missing,
            reason,
            policy_version: engine.version_label(),
        }
    }

    /// `allow` or `deny`.
    pub(crate) fn decision(&self) -> &'static str {
        if self.allow { "allow" } else { "deny" }
    }

    /// Ids of the deciding rules: `@id`, else `file:line`.
    pub(crate) fn deciding(&self) -> impl Iterator<Item = &'a str> + 'a {
        let engine = self.engine;
        self.deciding.iter().map(|index| engine.rule_id(*index))
    }

    /// `"decision":…,"deciding":[…],"missing":[…]`, the fields answers and decision-log
    /// lines both carry, in that order.
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "only the server writes raw JSON")
    )]
    pub(crate) fn write_verdict(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"\"decision\":");
        crate::json_text::string(out, self.decision());
        out.extend_from_slice(b",\"deciding\":");
        crate::json_text::strings(out, self.deciding());
        out.extend_from_slice(b",\"missing\":");
        crate::json_text::strings(out, self.missing.iter().map(String::as_str));
    }

    /// A deny that says the log refused the decision: what a caller gets when the
    /// decision could not be recorded.
    #[cfg_attr(
        not(feature = "server"),
        allow(dead_code, reason = "only the server keeps a decision log")
    )]
    pub(crate) fn unrecorded(&mut self) {
        self.allow = false;
        self.deciding = &[];
        self.reason = Some(Cow::Borrowed(UNRECORDED));
    }

    pub(crate) fn to_answer(&self) -> Answer {
        Answer {
            decision: self.decision(),
            deciding: self.deciding().map(str::to_owned).collect(),
            missing: self.missing.to_vec(),
            reason: self.reason.as_deref().map(str::to_owned),
            policy_version: self.policy_version.to_owned(),
        }
    }
}
