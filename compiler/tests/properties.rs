//! Property tests: the formatter is idempotent and preserves the tree and every comment;
//! the parser and checker never panic, whatever bytes or tokens they are fed.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

mod common;

use compiler::source::SourceSet;
use compiler::{CheckOptions, analyze};
use proptest::prelude::*;
use regex::Regex;

/// The tree's debug form with every span erased, so trees compare "up to spans".
fn shape(text: &str) -> Option<String> {
    let mut sources = SourceSet::new();
    let file = sources.add("x.gate", text);
    let (parsed, diagnostics) = compiler::check::parse_file(&sources, file);
    if diagnostics.iter().any(|diagnostic| diagnostic.is_error()) {
        return None;
    }
    let spans = Regex::new(r"Span \{ file: FileId\(\d+\), start: \d+, end: \d+ \}").ok()?;
    Some(
        spans
            .replace_all(&format!("{:?}", parsed.ast), "_")
            .into_owned(),
    )
}

fn format(text: &str) -> String {
    let mut sources = SourceSet::new();
    let file = sources.add("x.gate", text);
    let (parsed, _) = compiler::check::parse_file(&sources, file);
    compiler::fmt::format_file(text, &parsed.ast, &parsed.comments)
}

fn comments(text: &str) -> Vec<String> {
    let mut found: Vec<String> = compiler::syntax::lex(compiler::source::FileId::first(), text)
        .comments
        .into_iter()
        .map(|comment| comment.text)
        .collect();
    found.sort();
    found
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "env", "owner", "tags", "site", "prod", "dev", "mfa", "x1",
    ])
    .prop_map(str::to_owned)
}

fn string_literal() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "\"etl_*\"",
        "\"a b\"",
        "\"q\\\"uote\"",
        "\"prod-sql-01\"",
        "\"\"",
        "\"tab\\t\"",
        "\"é\"",
    ])
    .prop_map(str::to_owned)
}

fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        name(),
        string_literal(),
        (0i64..100).prop_map(|n| n.to_string()),
        Just(String::from("true")),
        Just(String::from("-3")),
        Just(String::from("principal.mfa")),
        Just(String::from("context.time.hour")),
        (name(), name()).prop_map(|(a, b)| format!("{{{a}, {b}}}")),
        name().prop_map(|a| format!("has {a}")),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["==", "!=", "<", ">=", "in"]),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            (
                inner.clone(),
                prop::sample::select(vec!["&&", "||"]),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("{l} {op} {r}")),
            inner.clone().prop_map(|e| format!("!({e})")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.prop_map(
                |e| format!("context has {e}").replace("context has (", "context has x && (")
            ),
        ]
    })
}

fn comment() -> impl Strategy<Value = String> {
    prop::option::of(
        prop::sample::select(vec!["// why", "// a note: keep", "//"]).prop_map(str::to_owned),
    )
    .prop_map(|comment| comment.unwrap_or_default())
}

fn rule() -> impl Strategy<Value = String> {
    (
        prop::option::of(name()),
        prop::sample::select(vec!["permit", "forbid"]),
        prop::sample::select(vec!["*", "view", "trigger, clear", "operate"]),
        prop::option::of(string_literal()),
        prop::option::of((string_literal(), prop::option::of(expr()))),
        prop::option::of(expr()),
        prop::option::of(expr()),
        comment(),
        comment(),
    )
        .prop_map(|(id, effect, actions, to, on, at, when, lead, trail)| {
            let mut text = String::new();
            if !lead.is_empty() {
                text.push_str(&lead);
                text.push('\n');
            }
            if let Some(id) = id {
                text.push_str(&format!("@id(\"{id}\") "));
            }
            text.push_str(&format!("{effect} {actions}"));
            if let Some(to) = to {
                text.push_str(&format!(" to group {to}, user /a.*/i"));
            }
            if let Some((pattern, filter)) = on {
                text.push_str(&format!("\n   on dag {pattern}"));
                if let Some(filter) = filter {
                    text.push_str(&format!(" where {filter}"));
                }
            }
            if let Some(at) = at {
                text.push_str(&format!(" at host where {at}"));
            }
            if let Some(when) = when {
                text.push_str(&format!("\n unless {when}"));
            }
            text.push(';');
            if !trail.is_empty() {
                text.push(' ');
                text.push_str(&trail);
            }
            text.push('\n');
            text
        })
}

fn declaration() -> impl Strategy<Value = String> {
    prop_oneof![
        (name(), name(), comment()).prop_map(|(a, b, c)| format!("enum E{a} {{ {a}, {b} }} {c}\n")),
        (name(), comment()).prop_map(|(a, c)| format!("host {{\n  {a}: Set<String>, {c}\n  b: Env?\n}}\n")),
        (string_literal(), expr()).prop_map(|(id, value)| format!("dag {id} {{ owner: {value}, tags: {{\"a\"}} }}\n")),
        Just(String::from("actions { view, trigger }\naction operate = { trigger, clear };\n")),
        (string_literal(), comment()).prop_map(|(id, c)| format!(
            "test {id} {{ {c}\n  expect allow view by user {id} in groups {{\"g\"}} with {{ mfa: true }} on dag \"d\" at host \"h\" context {{ ticket: \"T\" }};\n}}\n"
        )),
    ]
}

fn policy_file() -> impl Strategy<Value = String> {
    prop::collection::vec(prop_oneof![rule(), declaration()], 0..6)
        .prop_map(|items| items.join("\n"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn format_preserves_the_tree_and_comments(text in policy_file()) {
        let Some(original) = shape(&text) else { return Ok(()) };
        let formatted = format(&text);
        prop_assert_eq!(shape(&formatted), Some(original), "formatted:\n{}", formatted);
        prop_assert_eq!(format(&formatted), formatted.clone(), "not idempotent");
        prop_assert_eq!(comments(&formatted), comments(&text));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut sources = common::with_prelude();
        sources.add_bytes("fuzz.gate", &bytes);
        sources.add_bytes("fuzz.json", &bytes);
        let _ = analyze(&sources, &CheckOptions::at(0));
    }

    #[test]
    fn token_soup_never_panics(tokens in prop::collection::vec(prop::sample::select(vec![
        "permit", "forbid", "@id(\"x\")", "@expires(\"2020-01-01T00:00:00Z\")", "to", "group", "user", "\"etl_*\"", "/a(b/", "/x/i",
        "on", "dag", "at", "host", "where", "when", "unless", "env", "prod", "==", "!=", "<", "in", "has", "&&", "||",
        "!", "(", ")", "{", "}", ",", ";", ":", ".", "principal", "context", "time", "hour", "test", "expect", "allow",
        "deny", "by", "groups", "with", "enum", "actions", "action", "=", "Set", "<", ">", "?", "42", "-", "\"[\"", "*", "\n",
    ]), 0..80)) {
        let text = tokens.join(" ");
        let mut sources = common::with_prelude();
        sources.add("soup.gate", text.clone());
        let analysis = analyze(&sources, &CheckOptions::at(0));
        // A file that checks must also format without losing its tree.
        if !analysis.has_errors()
            && let Some(original) = shape(&text) {
                prop_assert_eq!(shape(&format(&text)), Some(original));
            }
    }
}
