//! Compiles id patterns once: exact ids, globs (`*`, `?`, `[a-z]`) and anchored regexes.
//! Host patterns are compiled case-insensitively against normalised host names.

use std::cell::RefCell;
use std::collections::HashMap;

use regex::{Regex, RegexBuilder};

use crate::diag::{Code, Diagnostic};
use crate::ir::{IdPattern, normalize_host};
use crate::source::Span;
use crate::syntax::ast::{Pattern, PatternKind};

/// Bounds compiled automata so a hostile pattern cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdCase {
    /// DAG ids and principal ids compare exactly.
    Exact,
    /// Host names compare as DNS does.
    Host,
}

/// Compiled automata by source and case rule: large sets repeat the same patterns often,
/// and compiling a regex costs far more than checking the rest of a rule.
#[derive(Default)]
pub(crate) struct RegexCache {
    compiled: HashMap<(String, bool), Regex>,
}

impl RegexCache {
    fn build(&mut self, source: &str, case_insensitive: bool) -> Result<Regex, regex::Error> {
        let key = (source.to_owned(), case_insensitive);
        if let Some(regex) = self.compiled.get(&key) {
            return Ok(regex.clone());
        }
        let regex = RegexBuilder::new(source)
            .case_insensitive(case_insensitive)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()?;
        self.compiled.insert(key, regex.clone());
        Ok(regex)
    }
}

pub(crate) fn compile(
    pattern: &Pattern,
    case: IdCase,
    cache: &RefCell<RegexCache>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<IdPattern> {
    match &pattern.kind {
        PatternKind::Text(text) => {
            let text = match case {
                IdCase::Exact => text.clone(),
                IdCase::Host => normalize_host(text),
            };
            if !text.contains(['*', '?', '[']) {
                return Some(IdPattern::Exact(text));
            }
            if let Some(prefix) = text
                .strip_suffix('*')
                .filter(|prefix| !prefix.contains(['*', '?', '[', ']']))
            {
                return Some(IdPattern::Prefix {
                    prefix: prefix.to_owned(),
                    source: text,
                });
            }
            if let Some(suffix) = text
                .strip_prefix('*')
                .filter(|suffix| !suffix.contains(['*', '?', '[', ']']))
            {
                return Some(IdPattern::Suffix {
                    suffix: suffix.to_owned(),
                    source: text,
                });
            }
            let translated = match glob_to_regex(&text) {
                Ok(translated) => translated,
                Err((offset, message)) => {
                    // +1 skips the opening quote; escapes in ids are rare enough to ignore.
                    let start = pattern.span.start as usize + 1 + offset;
                    diagnostics.push(
                        Diagnostic::error(Code::InvalidGlob, Span::new(pattern.span.file, start, start + 1), format!("invalid glob: {message}"))
                            .with_help("globs use `*` for any run of characters, `?` for one character and `[a-z]` for a class"),
                    );
                    return None;
                }
            };
            let regex = cache
                .borrow_mut()
                .build(&translated, case == IdCase::Host)
                .ok()?;
            Some(IdPattern::Glob {
                source: text,
                regex,
            })
        }
        PatternKind::Regex {
            source,
            case_insensitive,
        } => {
            let anchored = format!("^(?:{source})$");
            if let Err(error) = regex_syntax::ast::parse::Parser::new().parse(&anchored) {
                diagnostics.push(regex_error(
                    pattern.span,
                    error.span().start.offset,
                    error.span().end.offset,
                    &error.kind().to_string(),
                ));
                return None;
            }
            let built = cache
                .borrow_mut()
                .build(&anchored, *case_insensitive || case == IdCase::Host);
            match built {
                Ok(regex) => Some(IdPattern::Regex {
                    source: source.clone(),
                    regex,
                }),
                Err(error) => {
                    let message = match error {
                        regex::Error::CompiledTooBig(_) => {
                            String::from("pattern is too large to compile")
                        }
                        other => other
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("invalid pattern")
                            .trim_start_matches("error: ")
                            .to_owned(),
                    };
                    diagnostics.push(regex_error(
                        pattern.span,
                        4,
                        anchored.len().saturating_sub(2),
                        &message,
                    ));
                    None
                }
            }
        }
    }
}

/// Maps an offset in `^(?:source)$` back to the policy file.
fn regex_error(span: Span, start: usize, end: usize, message: &str) -> Diagnostic {
    let prefix = 4; // `^(?:`
    let body_len = (span.end - span.start).saturating_sub(2) as usize;
    let local_start = start.saturating_sub(prefix).min(body_len);
    let local_end = end
        .saturating_sub(prefix)
        .clamp(local_start + 1, body_len.max(local_start + 1));
    let file_start = span.start as usize + 1 + local_start;
    let file_end = span.start as usize + 1 + local_end;
    Diagnostic::error(
        Code::InvalidRegex,
        Span::new(span.file, file_start, file_end),
        format!("invalid regular expression: {message}"),
    )
    .with_help("patterns use Rust `regex` syntax and must match the whole id")
}

/// Translates a glob into an anchored regex, or says which character is wrong.
fn glob_to_regex(glob: &str) -> Result<String, (usize, &'static str)> {
    let mut out = String::from("^");
    let mut chars = glob.char_indices().peekable();
    while let Some((offset, ch)) = chars.next() {
        match ch {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '[' => {
                out.push('[');
                if chars.peek().is_some_and(|(_, next)| *next == '!') {
                    chars.next();
                    out.push('^');
                }
                let mut members = 0;
                let mut previous: Option<char> = None;
                loop {
                    let Some((member_offset, member)) = chars.next() else {
                        return Err((offset, "`[` has no closing `]`"));
                    };
                    match member {
                        ']' if members > 0 => break,
                        ']' => return Err((member_offset, "empty character class")),
                        '-' if previous.is_some()
                            && chars.peek().is_some_and(|(_, next)| *next != ']') =>
                        {
                            let Some((end_offset, end)) = chars.next() else {
                                return Err((offset, "`[` has no closing `]`"));
                            };
                            if previous.is_some_and(|start| start > end) {
                                return Err((end_offset, "range is backwards"));
                            }
                            out.push('-');
                            out.push_str(&regex::escape(&end.to_string()));
                            previous = None;
                        }
                        _ => {
                            out.push_str(&regex::escape(&member.to_string()));
                            previous = Some(member);
                        }
                    }
                    members += 1;
                }
                out.push(']');
            }
            ']' => return Err((offset, "`]` without an opening `[`")),
            _ => out.push_str(&regex::escape(&ch.to_string())),
        }
    }
    out.push('$');
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly by design")]

    use super::*;

    /// The two commonest globs skip the automaton; they match what it would.
    #[test]
    fn prefix_and_suffix_globs_match_as_the_automaton_does() {
        let cache = RefCell::new(RegexCache::default());
        let file = crate::source::SourceSet::new().add("test.gate", "");
        let compiled = |text: &str, case| {
            let pattern = Pattern {
                kind: PatternKind::Text(text.to_owned()),
                span: Span::new(file, 0, text.len() + 2),
            };
            compile(&pattern, case, &cache, &mut Vec::new()).unwrap()
        };
        let cases = [
            (
                "etl_*",
                IdCase::Exact,
                vec!["etl_daily", "etl_", "ETL_daily", "x_etl_"],
            ),
            (
                "*@partner.example",
                IdCase::Exact,
                vec![
                    "bob@partner.example",
                    "@partner.example",
                    "bob@partner.example.com",
                    "bob@Partner.example",
                ],
            ),
            (
                "*.corp.example",
                IdCase::Host,
                vec!["db1.corp.example", "corp.example", "db1.corp.example.org"],
            ),
            ("*", IdCase::Exact, vec!["", "anything"]),
        ];
        for (text, case, ids) in cases {
            let fast = compiled(text, case);
            assert!(
                matches!(fast, IdPattern::Prefix { .. } | IdPattern::Suffix { .. }),
                "{text}"
            );
            let automaton = cache
                .borrow_mut()
                .build(&glob_to_regex(text).unwrap(), case == IdCase::Host)
                .unwrap();
            for id in ids {
                assert_eq!(
                    fast.matches(id),
                    automaton.is_match(id),
                    "{text} against {id}"
                );
            }
        }
        assert!(matches!(
            compiled("a*b", IdCase::Exact),
            IdPattern::Glob { .. }
        ));
        assert!(matches!(
            compiled("*a?", IdCase::Exact),
            IdPattern::Glob { .. }
        ));
    }

    #[test]
    fn globs_translate_and_reject_bad_classes() {
        assert_eq!(glob_to_regex("etl_*").ok().as_deref(), Some("^etl_.*$"));
        assert_eq!(glob_to_regex("a?[0-9]").ok().as_deref(), Some("^a.[0-9]$"));
        assert_eq!(glob_to_regex("a[!x]").ok().as_deref(), Some("^a[^x]$"));
        assert_eq!(glob_to_regex("a.b").ok().as_deref(), Some("^a\\.b$"));
        assert_eq!(
            glob_to_regex("a[").err(),
            Some((1, "`[` has no closing `]`"))
        );
        assert_eq!(
            glob_to_regex("a[]").err(),
            Some((2, "empty character class"))
        );
        assert_eq!(
            glob_to_regex("[z-a]").err(),
            Some((3, "range is backwards"))
        );
    }
}
