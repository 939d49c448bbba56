//! Fixture folders: adding a case means adding a file under `tests/data/`.
//! `check/ok` files must give no errors, `check/err` and `parse/err` files at least one
//! diagnostic; every rendering is snapshotted and was read by hand before acceptance.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod common;

use std::path::Path;

use compiler::analyze;
use compiler::diag::{Code, ColorChoice, render_human};
use compiler::source::SourceSet;

/// Splits a fixture at `// file: name` lines into several files, and adds the shared
/// prelude unless the fixture starts with `// no-prelude`.
fn sources_for(path: &Path) -> SourceSet {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("fixture.gate")
        .to_owned();
    let mut sources = SourceSet::new();
    if !text.starts_with("// no-prelude") {
        sources.add("prelude.gate", common::PRELUDE);
    }
    if !text.contains("// file: ") {
        sources.add(name, text);
        return sources;
    }
    let mut current: Option<(String, String)> = None;
    for line in text.split_inclusive('\n') {
        if let Some(file_name) = line.strip_prefix("// file: ") {
            if let Some((name, body)) = current.take() {
                sources.add(name, body);
            }
            current = Some((file_name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
        }
    }
    if let Some((name, body)) = current {
        sources.add(name, body);
    }
    sources
}

fn render(path: &Path) -> (String, bool, bool) {
    let sources = sources_for(path);
    let analysis = analyze(&sources, &common::options());
    let rendered = render_human(&sources, &analysis.diagnostics, ColorChoice::Plain);
    (
        rendered,
        analysis.has_errors(),
        analysis.diagnostics.is_empty(),
    )
}

#[test]
fn check_ok_fixtures_have_no_errors() {
    insta::glob!("data/check/ok/*", |path| {
        let (rendered, has_errors, _) = render(path);
        assert!(!has_errors, "{} has errors:\n{rendered}", path.display());
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn check_err_fixtures_report_problems() {
    insta::glob!("data/check/err/*", |path| {
        let (rendered, _, clean) = render(path);
        assert!(!clean, "{} reports nothing", path.display());
        insta::assert_snapshot!(rendered);
    });
}

#[test]
fn parse_err_fixtures_report_each_error() {
    insta::glob!("data/parse/err/*.gate", |path| {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut sources = SourceSet::new();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("fixture.gate");
        let file = sources.add(name, text);
        let (_, diagnostics) = compiler::check::parse_file(&sources, file);
        assert!(!diagnostics.is_empty(), "{} parses cleanly", path.display());
        insta::assert_snapshot!(render_human(&sources, &diagnostics, ColorChoice::Plain));
    });
}

/// The fixture named after a code shows that code, so every code has a reviewed rendering.
#[test]
fn every_code_has_a_fixture_that_shows_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut rendered = String::new();
    for folder in ["check/err", "check/ok", "parse/err"] {
        for entry in std::fs::read_dir(root.join(folder))
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            rendered.push_str(&if folder == "parse/err" {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let mut sources = SourceSet::new();
                let file = sources.add("x.gate", text);
                let (_, diagnostics) = compiler::check::parse_file(&sources, file);
                render_human(&sources, &diagnostics, ColorChoice::Plain)
            } else {
                render(&path).0
            });
        }
    }
    rendered.push_str(&invalid_utf8_rendering());
    let missing: Vec<&str> = Code::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !rendered.contains(&format!("[{code}]")))
        .collect();
    assert!(missing.is_empty(), "codes with no fixture: {missing:?}");
}

fn invalid_utf8_rendering() -> String {
    let mut sources = common::with_prelude();
    sources.add_bytes("latin1.gate", b"// caf\xe9\npermit view;\n");
    let analysis = analyze(&sources, &common::options());
    render_human(&sources, &analysis.diagnostics, ColorChoice::Plain)
}

#[test]
fn invalid_utf8_names_the_byte_offset() {
    let rendered = invalid_utf8_rendering();
    assert!(rendered.contains("invalid byte at offset 6"), "{rendered}");
    insta::assert_snapshot!(rendered);
}
