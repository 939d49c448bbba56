//! Keeps `spec/` true to the code: a page per diagnostic code, examples that parse, check
//! and produce the codes they document, and a grammar that names the parser's keywords.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use compiler::diag::Code;
use compiler::source::SourceSet;
use compiler::{CheckOptions, analyze};

fn spec_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// The bodies of the fenced blocks with the given info string.
fn blocks(markdown: &str, info: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{info}") => current = Some(String::new()),
            Some(body) if line.trim_start() == "```" => {
                found.push(std::mem::take(body));
                current = None;
            }
            Some(body) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    found
}

#[test]
fn every_code_has_exactly_one_page() {
    let pages: BTreeSet<String> = std::fs::read_dir(spec_dir().join("diagnostics"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()?
                .strip_suffix(".md")
                .map(str::to_owned)
        })
        .collect();
    let codes: BTreeSet<String> = Code::ALL
        .iter()
        .map(|code| code.as_str().to_owned())
        .collect();
    assert_eq!(pages, codes);
}

#[test]
fn diagnostic_examples_produce_their_code() {
    for code in Code::ALL {
        let page = read(&spec_dir().join(format!("diagnostics/{}.md", code.as_str())));
        for example in blocks(&page, "gate-error") {
            let mut sources = common::with_prelude();
            sources.add("example.gate", example.clone());
            let analysis = analyze(&sources, &common::options());
            assert!(
                analysis
                    .diagnostics
                    .iter()
                    .any(|diagnostic| diagnostic.code == *code),
                "the example on the `{}` page does not produce it:\n{example}",
                code.as_str()
            );
        }
    }
}

#[test]
fn language_examples_check_together() {
    let page = read(&spec_dir().join("language.md"));
    let examples = blocks(&page, "gate");
    assert!(examples.len() >= 5, "the reference lost its examples");
    let mut sources = SourceSet::new();
    for (index, example) in examples.iter().enumerate() {
        sources.add(format!("example-{index}.gate"), example.clone());
    }
    let analysis = analyze(&sources, &CheckOptions::at(0));
    assert!(
        !analysis.has_errors(),
        "{}",
        compiler::diag::render_human(
            &sources,
            &analysis.diagnostics,
            compiler::diag::ColorChoice::Plain
        )
    );
}

#[test]
fn grammar_names_exactly_the_parsers_keywords() {
    let page = read(&spec_dir().join("language.md"));
    let grammar = blocks(&page, "ebnf").join("\n");
    let quoted: BTreeSet<&str> = grammar
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|word| word.chars().all(|ch| ch.is_ascii_alphabetic()))
        .collect();
    let keywords: BTreeSet<&str> = compiler::syntax::KEYWORDS.iter().copied().collect();
    assert_eq!(quoted, keywords);
}
