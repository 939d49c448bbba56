//! SARIF 2.1.0, the format GitHub code scanning reads to annotate pull requests.

use serde_json::{Value, json};

use super::{Code, Diagnostic, Label, Severity};
use crate::source::SourceSet;

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

pub fn render_sarif(sources: &SourceSet, diagnostics: &[Diagnostic], tool_version: &str) -> String {
    let mut used: Vec<Code> = diagnostics
        .iter()
        .map(|diagnostic| diagnostic.code)
        .collect();
    used.sort();
    used.dedup();
    let rules: Vec<Value> = used
        .iter()
        .map(|code| {
            json!({
                "id": code.as_str(),
                "name": code.as_str(),
                "shortDescription": { "text": code.as_str().replace('-', " ") },
                "helpUri": format!("spec/diagnostics/{}.md", code.as_str()),
            })
        })
        .collect();
    let results: Vec<Value> = diagnostics
        .iter()
        .map(|diagnostic| {
            let mut text = diagnostic.message.clone();
            if let Some(help) = &diagnostic.help {
                text.push_str("\nhelp: ");
                text.push_str(help);
            }
            let mut result = json!({
                "ruleId": diagnostic.code.as_str(),
                "ruleIndex": used.iter().position(|code| *code == diagnostic.code).unwrap_or(0),
                "level": match diagnostic.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                },
                "message": { "text": text },
                "locations": [location(sources, &diagnostic.primary, None)],
            });
            if !diagnostic.secondary.is_empty() {
                let related: Vec<Value> = diagnostic
                    .secondary
                    .iter()
                    .enumerate()
                    .map(|(index, label)| location(sources, label, Some(index)))
                    .collect();
                if let Some(object) = result.as_object_mut() {
                    object.insert(String::from("relatedLocations"), Value::Array(related));
                }
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "flowgate",
                "version": tool_version,
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }],
    });
    serde_json::to_string_pretty(&log).unwrap_or_default()
}

fn location(sources: &SourceSet, label: &Label, id: Option<usize>) -> Value {
    let Some(file) = sources.file(label.span.file) else {
        return json!({});
    };
    let start = file.line_col(label.span.start as usize);
    let end = file.line_col(label.span.end as usize);
    let mut value = json!({
        "physicalLocation": {
            "artifactLocation": { "uri": file.name().replace('\\', "/") },
            "region": {
                "startLine": start.line,
                "startColumn": start.column,
                "endLine": end.line,
                "endColumn": end.column,
            },
        },
    });
    if let Some(object) = value.as_object_mut() {
        if let Some(id) = id {
            object.insert(String::from("id"), json!(id));
        }
        if !label.message.is_empty() {
            object.insert(String::from("message"), json!({ "text": label.message }));
        }
    }
    value
}
