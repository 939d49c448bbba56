//! Machine-readable diagnostics: one JSON document with every problem and its place.

use serde::Serialize;

use super::{Diagnostic, Label};
use crate::source::SourceSet;

/// Wire form, versioned so tools that parse it can tell formats apart.
#[derive(Serialize)]
struct Report<'a> {
    version: u32,
    diagnostics: Vec<JsonDiagnostic<'a>>,
}

#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    code: &'static str,
    severity: &'static str,
    message: &'a str,
    location: JsonLocation<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related: Vec<JsonLocation<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonLocation<'a> {
    file: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

pub fn render_json(sources: &SourceSet, diagnostics: &[Diagnostic]) -> String {
    let report = Report {
        version: 1,
        diagnostics: diagnostics
            .iter()
            .map(|diagnostic| JsonDiagnostic {
                code: diagnostic.code.as_str(),
                severity: diagnostic.severity.as_str(),
                message: &diagnostic.message,
                location: location(sources, &diagnostic.primary),
                related: diagnostic
                    .secondary
                    .iter()
                    .map(|label| location(sources, label))
                    .collect(),
                help: diagnostic.help.as_deref(),
            })
            .collect(),
    };
    serde_json::to_string_pretty(&report).unwrap_or_default()
}

fn location<'a>(sources: &'a SourceSet, label: &'a Label) -> JsonLocation<'a> {
    let (file, start, end) = match sources.file(label.span.file) {
        Some(file) => (
            file.name(),
            file.line_col(label.span.start as usize),
            file.line_col(label.span.end as usize),
        ),
        None => ("", Default::default(), Default::default()),
    };
    JsonLocation {
        file,
        line: start.line,
        column: start.column,
        end_line: end.line,
        end_column: end.column,
        message: &label.message,
    }
}
