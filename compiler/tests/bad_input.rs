//! Hostile and broken input: every case gets a clear diagnostic at a place, never a panic.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod common;

use compiler::diag::Code;
use compiler::{CheckOptions, analyze};

fn codes_for(name: &str, text: &str) -> Vec<(Code, String)> {
    let mut sources = common::with_prelude();
    sources.add(name, text);
    let analysis = analyze(&sources, &CheckOptions::at(0));
    analysis
        .diagnostics
        .iter()
        .map(|diagnostic| (diagnostic.code, sources.location(diagnostic.primary.span)))
        .collect()
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for depth in [200, 5_000] {
        let parens = format!(
            "permit view when {}true{};\npermit view;\n",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let nots = format!("permit view when {}true;\n", "!".repeat(depth));
        let chain = format!(
            "permit view when {};\n",
            vec!["principal.mfa"; depth].join(" && ")
        );
        let sets = format!("permit view when {}\n", "{".repeat(depth));
        let types = format!(
            "principal {{ x: {}String{} }}\n",
            "Set<".repeat(depth),
            ">".repeat(depth)
        );
        for text in [parens, nots, chain, sets, types] {
            let found = codes_for("deep.gate", &text);
            assert!(
                found
                    .iter()
                    .any(|(code, place)| *code == Code::NestingTooDeep
                        && place.starts_with("deep.gate:1:")),
                "{found:?}"
            );
        }
    }
}

#[test]
fn unterminated_literals_leave_the_rest_checked() {
    let found = codes_for(
        "open.gate",
        "permit view on dag \"etl_daily;\npermit triger;\npermit view on dag /etl_(.*;\n",
    );
    let codes: Vec<Code> = found.iter().map(|(code, _)| *code).collect();
    assert!(codes.contains(&Code::UnterminatedString), "{found:?}");
    assert!(codes.contains(&Code::UnterminatedRegex), "{found:?}");
    assert!(
        found.contains(&(Code::UnknownAction, String::from("open.gate:2:8"))),
        "{found:?}"
    );
}

#[test]
fn each_syntax_error_is_reported_and_later_rules_still_checked() {
    let text = "permit view on dag \"a\" at host \"b\"\npermit view to group;\nforbid view when principal.mfa = true;\npermit triger;\n";
    let found = codes_for("several.gate", text);
    let syntax: Vec<&String> = found
        .iter()
        .filter(|(code, _)| *code == Code::SyntaxError)
        .map(|(_, place)| place)
        .collect();
    assert_eq!(
        syntax,
        [
            "several.gate:1:35",
            "several.gate:2:21",
            "several.gate:3:32"
        ]
    );
    assert!(
        found.contains(&(Code::UnknownAction, String::from("several.gate:4:8"))),
        "{found:?}"
    );
}

#[test]
fn empty_and_whitespace_files_warn() {
    assert_eq!(
        codes_for("empty.gate", "").first().map(|(code, _)| *code),
        Some(Code::EmptyFile)
    );
    assert_eq!(
        codes_for("blank.gate", "\n  \n")
            .first()
            .map(|(code, _)| *code),
        Some(Code::EmptyFile)
    );
}

#[test]
fn a_ten_megabyte_file_is_checked_in_full() {
    let mut text = String::with_capacity(10 << 20);
    let mut index = 0;
    while text.len() < 10 << 20 {
        text.push_str(&format!("@id(\"rule-{index}\")\npermit trigger, view to group \"team-{index}\" on dag \"etl_*\" at host where env == prod;\n"));
        index += 1;
    }
    text.push_str("permit triger;\n");
    let found = codes_for("big.gate", &text);
    assert_eq!(found.len(), 1, "{:?}", found.first());
    assert_eq!(
        found.first().map(|(code, _)| *code),
        Some(Code::UnknownAction)
    );
}

#[test]
fn invalid_utf8_points_at_the_first_bad_byte() {
    let mut sources = common::with_prelude();
    sources.add_bytes("bad.gate", b"permit view;\n// \xff\xfe\n");
    let analysis = analyze(&sources, &CheckOptions::at(0));
    let first = analysis.diagnostics.first();
    assert_eq!(
        first.map(|diagnostic| diagnostic.code),
        Some(Code::InvalidUtf8)
    );
    assert_eq!(
        first
            .map(|diagnostic| sources.location(diagnostic.primary.span))
            .as_deref(),
        Some("bad.gate:2:4")
    );
    assert!(first.is_some_and(|diagnostic| diagnostic.message.contains("offset 16")));
}

#[test]
fn a_set_that_checks_carries_typed_rules() {
    let mut sources = common::with_prelude();
    sources.add(
        "rules.gate",
        "@id(\"a\") permit operate to group \"g\" on dag \"etl_*\" at host \"PROD-SQL-01.\";\n",
    );
    let analysis = analyze(&sources, &CheckOptions::at(0));
    let set = analysis.policy_set.as_ref();
    let rule = set.and_then(|set| set.rules().first());
    assert_eq!(rule.map(|rule| rule.id.as_str()), Some("a"));
    assert_eq!(
        rule.and_then(|rule| rule.actions.as_ref())
            .map(|actions| actions.len()),
        Some(4)
    );
    let host = rule
        .and_then(|rule| rule.host.as_ref())
        .and_then(|host| host.patterns.first());
    assert!(
        host.is_some_and(|pattern| pattern.matches("prod-sql-01")),
        "host patterns are normalised"
    );
    assert_eq!(set.map(|set| set.inventory().hosts.len()), Some(2));
}
