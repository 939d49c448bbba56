//! `flowgate fmt`: rewrites `.gate` files in the canonical layout, or lists those that
//! differ with `--check`. A file with syntax errors is left untouched.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;
use compiler::diag::{self, ColorChoice};

use crate::exit;

#[derive(Args)]
pub(crate) struct FmtArgs {
    /// Files or directories to format (default: `policies/`).
    paths: Vec<PathBuf>,
    /// Change nothing; list files that are not formatted and exit 1 if any.
    #[arg(long)]
    check: bool,
}

pub(crate) fn run(args: &FmtArgs) -> anyhow::Result<u8> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("policies")]
    } else {
        args.paths.clone()
    };
    let files = runtime::read_policy_paths(&paths).context("cannot load files to format")?;
    let mut code = exit::CLEAN;
    for (file, source) in files.sources.files() {
        if source.is_json() {
            continue;
        }
        let (parsed, diagnostics) = compiler::check::parse_file(&files.sources, file);
        if diagnostics.iter().any(|diagnostic| diagnostic.is_error()) {
            let errors: Vec<_> = diagnostics
                .into_iter()
                .filter(|diagnostic| diagnostic.is_error())
                .collect();
            eprint!(
                "{}",
                diag::render_human(&files.sources, &errors, ColorChoice::Plain)
            );
            eprintln!(
                "{}: not formatted: fix the syntax errors first",
                source.name()
            );
            code = exit::PROBLEMS;
            continue;
        }
        let formatted = compiler::fmt::format_file(source.text(), &parsed.ast, &parsed.comments);
        if formatted == source.text() {
            continue;
        }
        if args.check {
            println!("{}", source.name());
            code = exit::PROBLEMS;
        } else {
            std::fs::write(Path::new(source.name()), formatted)
                .with_context(|| format!("cannot write {}", source.name()))?;
            println!("formatted {}", source.name());
        }
    }
    Ok(code)
}

/// The clock, read here at the edge; `--now` pins it for reproducible runs.
pub(crate) fn now(pinned: Option<&str>) -> anyhow::Result<i64> {
    match pinned {
        Some(text) => compiler::time::parse_rfc3339(text)
            .ok_or_else(|| anyhow!("`--now {text}` is not an RFC 3339 time")),
        None => {
            let elapsed = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX))
        }
    }
}
