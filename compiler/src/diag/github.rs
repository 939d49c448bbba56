//! GitHub Actions workflow commands, which show as annotations on the changed lines.

use super::{Diagnostic, Severity};
use crate::source::SourceSet;

pub fn render_github(sources: &SourceSet, diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    for diagnostic in diagnostics {
        let command = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = diagnostic.message.clone();
        if let Some(help) = &diagnostic.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        match sources.file(diagnostic.primary.span.file) {
            Some(file) => {
                let start = file.line_col(diagnostic.primary.span.start as usize);
                let end = file.line_col(diagnostic.primary.span.end as usize);
                out.push_str(&format!(
                    "::{command} file={},line={},col={},endLine={},endColumn={},title={}::{}\n",
                    escape_property(file.name()),
                    start.line,
                    start.column,
                    end.line,
                    end.column,
                    escape_property(diagnostic.code.as_str()),
                    escape_data(&message),
                ));
            }
            None => out.push_str(&format!(
                "::{command} title={}::{}\n",
                diagnostic.code.as_str(),
                escape_data(&message)
            )),
        }
    }
    out
}

fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}
