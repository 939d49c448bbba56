//! Loading an engine for the subcommands that decide: a set that fails the checker is
//! reported like `flowgate check` reports it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use compiler::diag::{self, ColorChoice};
use runtime::{Engine, EngineError, EngineOptions};

/// The engine, or the exit code after the checker's errors were printed.
pub(crate) fn engine(dir: Option<&Path>, now: i64) -> anyhow::Result<Result<Engine, u8>> {
    let dir = dir.map_or_else(|| PathBuf::from("policies"), Path::to_path_buf);
    let options = EngineOptions {
        now,
        unlisted: runtime::UnlistedEntities::Judge,
    };
    match Engine::load(&dir, options) {
        Ok(engine) => Ok(Ok(engine)),
        Err(EngineError::Invalid {
            sources,
            diagnostics,
        }) => {
            eprint!(
                "{}",
                diag::render_human(&sources, &diagnostics, ColorChoice::Plain)
            );
            Ok(Err(crate::exit::PROBLEMS))
        }
        Err(EngineError::Load(error)) => Err(error).context("cannot load the policy set"),
    }
}
