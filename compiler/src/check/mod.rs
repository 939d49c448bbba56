//! Type-checks a whole policy set against its schema and builds the typed IR. The
//! invariant: a [`PolicySet`] exists only when no error was found, and then every value,
//! pattern and condition in it is well-typed, so evaluation cannot fail.

mod contradiction;
mod expr;
mod inventory;
mod patterns;
mod rules;
mod tests;
mod values;

use std::collections::BTreeMap;

use crate::diag::{self, Code, Diagnostic};
use crate::ir::{BuiltinsRead, EntityKind, PolicySet, Schema};
use crate::resolve::resolve;
use crate::source::{FileId, SourceSet, Span};
use crate::suggest;
use crate::syntax::{self, Comment, ast};
use crate::time::Timestamp;

/// What the checker needs from outside: the clock, passed in so checking stays pure.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub now: Timestamp,
    /// Rules expiring within this many days get a `rule-expires-soon` warning.
    pub expiry_warning_days: i64,
}

impl CheckOptions {
    pub fn at(now: Timestamp) -> CheckOptions {
        CheckOptions {
            now,
            expiry_warning_days: 14,
        }
    }
}

/// One file's syntax tree and comments, kept for the formatter and the editor.
pub struct ParsedFile {
    pub file: FileId,
    pub ast: ast::File,
    pub comments: Vec<Comment>,
}

pub struct Analysis {
    pub files: Vec<ParsedFile>,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Present only when there are no errors.
    pub policy_set: Option<PolicySet>,
}

impl Analysis {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses one `.gate` or inventory `.json` file.
pub fn parse_file(sources: &SourceSet, file: FileId) -> (ParsedFile, Vec<Diagnostic>) {
    let Some(source) = sources.file(file) else {
        return (
            ParsedFile {
                file,
                ast: ast::File { items: Vec::new() },
                comments: Vec::new(),
            },
            Vec::new(),
        );
    };
    let mut diagnostics = Vec::new();
    if let Some(offset) = source.invalid_utf8_at() {
        diagnostics.push(
            Diagnostic::error(
                Code::InvalidUtf8,
                Span::new(file, offset, offset),
                format!("file is not valid UTF-8: invalid byte at offset {offset}"),
            )
            .with_help("policy files must be UTF-8 text; the rest of the file was not read"),
        );
    }
    if source.is_json() {
        let parsed = syntax::json::parse_inventory_json(file, source.text());
        diagnostics.extend(parsed.diagnostics);
        let items = parsed
            .entries
            .into_iter()
            .map(ast::Item::Inventory)
            .collect();
        return (
            ParsedFile {
                file,
                ast: ast::File { items },
                comments: Vec::new(),
            },
            diagnostics,
        );
    }
    let parsed = syntax::parse(file, source.text());
    diagnostics.extend(parsed.diagnostics);
    (
        ParsedFile {
            file,
            ast: parsed.file,
            comments: parsed.comments,
        },
        diagnostics,
    )
}

/// Parses and checks every file of a policy set.
pub fn analyze(sources: &SourceSet, options: &CheckOptions) -> Analysis {
    let mut diagnostics = Vec::new();
    let mut files = Vec::new();
    for (file, _) in sources.files() {
        let (parsed, file_diagnostics) = parse_file(sources, file);
        diagnostics.extend(file_diagnostics);
        files.push(parsed);
    }
    let asts: Vec<&ast::File> = files.iter().map(|parsed| &parsed.ast).collect();
    let resolved = resolve(&asts, &mut diagnostics);
    if !resolved.has_schema {
        let span = sources
            .files()
            .next()
            .map_or(Span::new(FileId::first(), 0, 0), |(file, _)| {
                Span::new(file, 0, 0)
            });
        diagnostics.push(
            Diagnostic::error(Code::MissingSchema, span, "the policy set declares no actions")
                .with_help("add a schema file with `actions { trigger, view, … }` and the attributes of `principal`, `dag`, `host` and `context`"),
        );
    }
    let schema = resolved.schema;

    let mut entries = Vec::new();
    for parsed in &files {
        let json = sources.file(parsed.file).is_some_and(|file| file.is_json());
        for item in &parsed.ast.items {
            if let ast::Item::Inventory(entry) = item {
                entries.push((entry, json));
            }
        }
    }
    let inventory = inventory::check_inventory(&schema, &entries, &mut diagnostics);

    let ctx = rules::RuleContext {
        schema: &schema,
        inventory: &inventory,
        sources,
        options,
        regexes: Default::default(),
    };
    let mut checked_rules = Vec::new();
    let mut ids: BTreeMap<String, Span> = BTreeMap::new();
    let mut test_names: BTreeMap<String, Span> = BTreeMap::new();
    let mut checked_tests = Vec::new();
    for item in files.iter().flat_map(|parsed| parsed.ast.items.iter()) {
        match item {
            ast::Item::Rule(rule) => {
                if let Some(annotation) = rule
                    .annotations
                    .iter()
                    .find(|annotation| annotation.key.text == "id")
                    && let Some(value) = &annotation.value
                {
                    if let Some(first) = ids.get(&value.value) {
                        diagnostics.push(
                                Diagnostic::error(Code::DuplicateId, value.span, format!("rule id `{}` is used twice", value.value))
                                    .with_label("used again here")
                                    .with_secondary(*first, "first used here")
                                    .with_help("every `@id` names one rule, so decisions and audit logs stay unambiguous"),
                            );
                    } else {
                        ids.insert(value.value.clone(), value.span);
                    }
                }
                if let Some(rule) = rules::check_rule(&ctx, rule, &mut diagnostics) {
                    checked_rules.push(rule);
                }
            }
            ast::Item::Test(block) => {
                if let Some(first) = test_names.get(&block.name.value) {
                    diagnostics.push(
                        Diagnostic::error(
                            Code::DuplicateDeclaration,
                            block.name.span,
                            format!("test `{}` is declared twice", block.name.value),
                        )
                        .with_secondary(*first, "first declared here"),
                    );
                } else {
                    test_names.insert(block.name.value.clone(), block.name.span);
                }
                if let Some(test) = tests::check_test(&schema, block, &mut diagnostics) {
                    checked_tests.push(test);
                }
            }
            _ => {}
        }
    }

    diag::sort(&mut diagnostics);
    diagnostics.dedup();
    let policy_set = (!diagnostics.iter().any(Diagnostic::is_error)).then(|| PolicySet {
        schema,
        inventory,
        builtins_read: BuiltinsRead::of(&checked_rules),
        rules: checked_rules,
        tests: checked_tests,
    });
    Analysis {
        files,
        diagnostics,
        policy_set,
    }
}

pub(crate) fn unknown_attribute_in(
    diagnostics: &mut Vec<Diagnostic>,
    schema: &Schema,
    kind: EntityKind,
    name: &str,
    span: Span,
) {
    let attributes = schema.attributes(kind);
    let mut diagnostic = Diagnostic::error(
        Code::UnknownAttribute,
        span,
        format!("`{}` has no attribute `{name}`", kind.keyword()),
    )
    .with_label("not declared in the schema");
    diagnostic = match suggest::closest(name, attributes.iter().map(|attr| attr.name.as_str())) {
        Some(suggestion) => diagnostic.with_help(format!("did you mean `{suggestion}`?")),
        None => diagnostic.with_help(format!(
            "declare it in the `{}` block of the schema",
            kind.keyword()
        )),
    };
    diagnostics.push(diagnostic);
}
