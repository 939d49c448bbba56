//! `flowgate test`: runs every `test` block, with coverage, JSON and JUnit output.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use runtime::testing::{TestReport, render_json, render_junit, run_tests};

use crate::exit;

#[derive(Args)]
pub(crate) struct TestArgs {
    /// Policy directory (default: `policies/`).
    dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Also write JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Report which rules no test exercised and which never decided a test.
    #[arg(long)]
    coverage: bool,
    /// Request time for expectations without `context { time: … }` (default: now).
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

pub(crate) fn run(args: &TestArgs) -> anyhow::Result<u8> {
    let now = crate::fmt::now(args.now.as_deref())?;
    let engine = match crate::load::engine(args.dir.as_deref(), now)? {
        Ok(engine) => engine,
        Err(code) => return Ok(code),
    };
    let report = run_tests(&engine, now);
    if let Some(path) = &args.junit {
        std::fs::write(path, render_junit(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    match args.format {
        Format::Json => println!("{}", render_json(&report)),
        Format::Human => print!("{}", human(&report, args.coverage)),
    }
    Ok(if report.failed() == 0 {
        exit::CLEAN
    } else {
        exit::PROBLEMS
    })
}

fn human(report: &TestReport, coverage: bool) -> String {
    let mut out = String::new();
    for result in &report.results {
        let expected = if result.expected_allow {
            "allow"
        } else {
            "deny"
        };
        if result.passed {
            out.push_str(&format!(
                "ok    {} {}: expect {expected} {}\n",
                result.location, result.test, result.description
            ));
            continue;
        }
        let actual = if result.decision.allow {
            "allow"
        } else {
            "deny"
        };
        let mut why = match (&result.error, result.deciding.is_empty()) {
            (Some(error), _) => error.clone(),
            (None, true) => String::from("no rule decided"),
            (None, false) => format!("decided by {}", result.deciding.join(", ")),
        };
        if !result.decision.missing.is_empty() {
            why.push_str(&format!("; missing {}", result.decision.missing.join(", ")));
        }
        out.push_str(&format!(
            "FAIL  {} {}: expect {expected} {}\n      got {actual} ({why})\n",
            result.location, result.test, result.description
        ));
    }
    if coverage {
        let unexercised: Vec<_> = report
            .coverage
            .iter()
            .filter(|rule| rule.exercised == 0)
            .collect();
        let undecided: Vec<_> = report
            .coverage
            .iter()
            .filter(|rule| rule.decided == 0)
            .collect();
        let covered = report.coverage.len() - unexercised.len();
        out.push_str(&format!(
            "\ncoverage: {covered} of {} rules exercised by a test\n",
            report.coverage.len()
        ));
        for rule in &report.coverage {
            out.push_str(&format!(
                "  {:<32} exercised {:>3}  decided {:>3}  {}\n",
                rule.id, rule.exercised, rule.decided, rule.location
            ));
        }
        if !unexercised.is_empty() {
            out.push_str("not exercised by any test:\n");
            unexercised
                .iter()
                .for_each(|rule| out.push_str(&format!("  {} ({})\n", rule.id, rule.location)));
        }
        if !undecided.is_empty() {
            out.push_str("never decided a test:\n");
            undecided
                .iter()
                .for_each(|rule| out.push_str(&format!("  {} ({})\n", rule.id, rule.location)));
        }
    }
    out.push_str(&format!(
        "{} passed, {} failed\n",
        report.passed(),
        report.failed()
    ));
    out
}
