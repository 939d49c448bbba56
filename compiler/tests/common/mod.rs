//! What the integration tests share: the fixture prelude and a fixed clock.

#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

use compiler::CheckOptions;
use compiler::source::SourceSet;

/// A small schema and inventory that fixtures and examples build on.
pub(crate) const PRELUDE: &str = include_str!("../data/prelude.gate");

/// The instant tests check `@expires` against, so results never depend on the clock.
pub(crate) const NOW: &str = "2026-11-22T12:00:00Z";

pub(crate) fn options() -> CheckOptions {
    CheckOptions::at(compiler::time::parse_rfc3339(NOW).unwrap_or_default())
}

/// A source set holding the prelude, ready for the files a test adds.
pub(crate) fn with_prelude() -> SourceSet {
    let mut sources = SourceSet::new();
    sources.add("prelude.gate", PRELUDE);
    sources
}
