//! Terminal rendering in the style of rustc: source line, carets, labels and help.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term;

use super::{Diagnostic, Severity};
use crate::source::SourceSet;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColorChoice {
    Ansi,
    Plain,
}

/// Renders every diagnostic, then a one-line summary such as `2 errors, 1 warning`.
pub fn render_human(sources: &SourceSet, diagnostics: &[Diagnostic], color: ColorChoice) -> String {
    let mut files = SimpleFiles::new();
    for (_, file) in sources.files() {
        files.add(file.name(), file.text());
    }
    let config = term::Config::default();
    let mut plain = String::new();
    let mut ansi = term::termcolor::Buffer::ansi();
    for diagnostic in diagnostics {
        let converted = convert(diagnostic);
        // Rendering into memory only fails when a span lies outside its file; the message
        // must still reach the reader, so fall back to a location line.
        let rendered = match color {
            ColorChoice::Plain => {
                term::emit_to_string(&mut plain, &config, &files, &converted).is_ok()
            }
            ColorChoice::Ansi => {
                term::emit_to_write_style(&mut ansi, &config, &files, &converted).is_ok()
            }
        };
        if !rendered {
            let line = format!(
                "{}[{}]: {} at {}\n",
                diagnostic.severity.as_str(),
                diagnostic.code.as_str(),
                diagnostic.message,
                sources.location(diagnostic.primary.span)
            );
            match color {
                ColorChoice::Plain => plain.push_str(&line),
                ColorChoice::Ansi => {
                    use std::io::Write as _;
                    let _ = ansi.write_all(line.as_bytes());
                }
            }
        }
    }
    let mut out = match color {
        ColorChoice::Plain => plain,
        ColorChoice::Ansi => String::from_utf8_lossy(ansi.as_slice()).into_owned(),
    };
    out.push_str(&summary(diagnostics));
    out.push('\n');
    out
}

fn convert(diagnostic: &Diagnostic) -> cs::Diagnostic<usize> {
    let severity = match diagnostic.severity {
        Severity::Error => cs::Severity::Error,
        Severity::Warning => cs::Severity::Warning,
    };
    let file_index = |label: &super::Label| label.span.file_index();
    let mut labels = vec![
        cs::Label::primary(
            file_index(&diagnostic.primary),
            diagnostic.primary.span.range(),
        )
        .with_message(diagnostic.primary.message.clone()),
    ];
    labels.extend(diagnostic.secondary.iter().map(|label| {
        cs::Label::secondary(file_index(label), label.span.range())
            .with_message(label.message.clone())
    }));
    let mut converted = cs::Diagnostic::new(severity)
        .with_code(diagnostic.code.as_str())
        .with_message(diagnostic.message.clone())
        .with_labels(labels);
    if let Some(help) = &diagnostic.help {
        converted = converted.with_notes(vec![format!("help: {help}")]);
    }
    converted
}

/// `N errors, M warnings`, or `no problems found`.
pub(crate) fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    let warnings = diagnostics.len() - errors;
    if errors == 0 && warnings == 0 {
        return String::from("no problems found");
    }
    format!(
        "{}, {}",
        plural(errors, "error"),
        plural(warnings, "warning")
    )
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        format!("1 {noun}")
    } else {
        format!("{count} {noun}s")
    }
}
