//! `flowgate check`: diagnostics for a policy set in the chosen format.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use compiler::CheckOptions;
use compiler::diag::{self, ColorChoice};

use crate::exit;

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// Policy directories or files (default: `policies/`).
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Exit 1 on warnings too.
    #[arg(long)]
    deny_warnings: bool,
    /// Colour for the human format.
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Check as of this time (RFC 3339) instead of now, for `@expires`.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

pub(crate) fn run(args: &CheckArgs) -> anyhow::Result<u8> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("policies")]
    } else {
        args.paths.clone()
    };
    let now = crate::fmt::now(args.now.as_deref())?;
    let files = runtime::read_policy_paths(&paths).context("cannot load the policy set")?;
    let analysis = compiler::analyze(&files.sources, &CheckOptions::at(now));
    let sources = &files.sources;
    let rendered = match args.format {
        Format::Human => {
            let color = match args.color {
                Color::Always => ColorChoice::Ansi,
                Color::Never => ColorChoice::Plain,
                Color::Auto
                    if std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none() =>
                {
                    ColorChoice::Ansi
                }
                Color::Auto => ColorChoice::Plain,
            };
            let mut text = diag::render_human(sources, &analysis.diagnostics, color);
            if let Some(set) = &analysis.policy_set {
                text = text.replacen(
                    "no problems found",
                    &format!(
                        "no problems found: {} rules, {} DAGs, {} hosts, {} tests in {} files",
                        set.rules().len(),
                        set.inventory().dags.len(),
                        set.inventory().hosts.len(),
                        set.tests().len(),
                        sources.len()
                    ),
                    1,
                );
            }
            text
        }
        Format::Json => diag::render_json(sources, &analysis.diagnostics) + "\n",
        Format::Sarif => {
            diag::render_sarif(sources, &analysis.diagnostics, env!("CARGO_PKG_VERSION")) + "\n"
        }
        Format::Github => diag::render_github(sources, &analysis.diagnostics),
    };
    print!("{rendered}");
    let has_warnings = analysis
        .diagnostics
        .iter()
        .any(|diagnostic| !diagnostic.is_error());
    Ok(
        if analysis.has_errors() || (args.deny_warnings && has_warnings) {
            exit::PROBLEMS
        } else {
            exit::CLEAN
        },
    )
}
