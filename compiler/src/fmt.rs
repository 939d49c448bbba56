//! The canonical layout of a `.gate` file. Depends only on the syntax layer. Every comment
//! is kept: own-line comments stay before the line they preceded, trailing comments stay
//! at the end of their line.

use crate::source::Span;
use crate::syntax::Comment;
use crate::syntax::ast::*;

const INDENT: &str = "  ";
const MAX_WIDTH: usize = 120;

/// Formats one parsed file. The caller must refuse files with syntax errors: the tree of
/// such a file lacks the declarations that failed to parse.
pub fn format_file(text: &str, file: &File, comments: &[Comment]) -> String {
    let mut printer = Printer {
        text,
        comments,
        next_comment: 0,
        out: String::new(),
        last_end: None,
    };
    for item in &file.items {
        let start = item_start(item);
        printer.flush_before(start, "");
        printer.blank_line_if_gap(start);
        printer.item(item);
        printer.last_end = Some(item.span().end);
    }
    printer.flush_before(u32::MAX, "");
    while printer.out.ends_with("\n\n") {
        printer.out.pop();
    }
    if printer.out.starts_with('\n') {
        printer.out = printer.out.trim_start_matches('\n').to_owned();
    }
    printer.out
}

fn item_start(item: &Item) -> u32 {
    match item {
        Item::Rule(rule) => rule
            .annotations
            .first()
            .map_or(rule.span.start, |annotation| {
                annotation.span.start.min(rule.span.start)
            }),
        other => other.span().start,
    }
}

struct Printer<'a> {
    text: &'a str,
    comments: &'a [Comment],
    next_comment: usize,
    out: String,
    /// Source offset where the last top-level thing written ended.
    last_end: Option<u32>,
}

impl Printer<'_> {
    /// Keeps one blank line where the author left one or more between top-level things.
    fn blank_line_if_gap(&mut self, start: u32) {
        let Some(end) = self.last_end else { return };
        let gap = self.text.get(end as usize..start as usize).unwrap_or("");
        if gap.matches('\n').count() >= 2 && !self.out.ends_with("\n\n") && !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    /// Emits, each on its own line, the comments that start before `position`.
    fn flush_before(&mut self, position: u32, indent: &str) {
        while let Some(comment) = self.comments.get(self.next_comment) {
            if comment.span.start >= position {
                break;
            }
            if comment.trailing
                && self.out.ends_with('\n')
                && !self.out.is_empty()
                && self.line_holds_code_before(comment.span)
            {
                // A trailing comment whose line we already closed: keep it on that line.
                self.out.pop();
                self.out.push(' ');
                self.out.push_str(&comment.text);
                self.out.push('\n');
            } else {
                if indent.is_empty() {
                    self.blank_line_if_gap(comment.span.start);
                }
                self.out.push_str(indent);
                self.out.push_str(&comment.text);
                self.out.push('\n');
                if indent.is_empty() {
                    self.last_end = Some(comment.span.end);
                }
            }
            self.next_comment += 1;
        }
    }

    fn line_holds_code_before(&self, span: Span) -> bool {
        let line_start = self
            .text
            .get(..span.start as usize)
            .and_then(|prefix| prefix.rfind('\n'))
            .map_or(0, |index| index + 1);
        self.text
            .get(line_start..span.start as usize)
            .is_some_and(|prefix| !prefix.trim().is_empty())
    }

    /// Appends the trailing comment that sits on the same source line as `end`, if any.
    fn trailing(&mut self, end: u32) {
        let Some(comment) = self.comments.get(self.next_comment) else {
            return;
        };
        if !comment.trailing || comment.span.start < end {
            return;
        }
        // Only whitespace may separate the comment from the code it trails.
        let between = self
            .text
            .get(end as usize..comment.span.start as usize)
            .unwrap_or("\n");
        if between.contains('\n') || !between.trim().is_empty() {
            return;
        }
        self.out.push(' ');
        self.out.push_str(&comment.text);
        self.next_comment += 1;
    }

    fn has_comment_within(&self, span: Span) -> bool {
        self.comments
            .iter()
            .any(|comment| comment.span.start > span.start && comment.span.start < span.end)
    }

    /// One line of output: its leading comments, the text, its trailing comment.
    fn line(&mut self, indent: &str, span: Span, text: &str) {
        self.flush_before(span.start, indent);
        self.out.push_str(indent);
        self.out.push_str(text);
        self.trailing(span.end);
        self.out.push('\n');
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Enum(decl) => {
                let header = format!("enum {}", decl.name.text);
                let entries: Vec<(Span, String)> = decl
                    .values
                    .iter()
                    .map(|value| (value.span, value.text.clone()))
                    .collect();
                self.braced(&header, decl.span, &entries, "");
            }
            Item::Entity(decl) => {
                let entries: Vec<(Span, String)> = decl
                    .fields
                    .iter()
                    .map(|field| {
                        (
                            field.span,
                            format!("{}: {}", field.name.text, type_expr(&field.ty)),
                        )
                    })
                    .collect();
                self.braced(&decl.kind.text, decl.span, &entries, "");
            }
            Item::Actions(decl) => {
                let entries: Vec<(Span, String)> = decl
                    .names
                    .iter()
                    .map(|name| (name.span, name.text.clone()))
                    .collect();
                self.braced("actions", decl.span, &entries, "");
            }
            Item::Alias(decl) => {
                let header = format!("action {} =", decl.name.text);
                let entries: Vec<(Span, String)> = decl
                    .actions
                    .iter()
                    .map(|name| (name.span, name.text.clone()))
                    .collect();
                self.braced(&header, decl.span, &entries, "");
            }
            Item::Inventory(entry) => {
                let header = format!("{} {}", entry.kind.text, string(&entry.id.value));
                let entries: Vec<(Span, String)> = entry
                    .attrs
                    .iter()
                    .map(|attr| {
                        (
                            attr.span,
                            format!("{}: {}", attr.name.text, expr(&attr.value)),
                        )
                    })
                    .collect();
                self.braced(&header, entry.span, &entries, "");
            }
            Item::Rule(rule) => self.rule(rule),
            Item::Test(block) => self.test(block),
        }
    }

    /// `header { a, b }` on one line when it fits and holds no comment, else one entry a line.
    fn braced(&mut self, header: &str, span: Span, entries: &[(Span, String)], indent: &str) {
        let joined = entries
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let one_line = if entries.is_empty() {
            format!("{header} {{}}")
        } else {
            format!("{header} {{ {joined} }}")
        };
        if !self.has_comment_within(span) && indent.len() + one_line.len() <= MAX_WIDTH {
            self.line(indent, span, &one_line);
            return;
        }
        let inner = format!("{indent}{INDENT}");
        self.out.push_str(indent);
        self.out.push_str(header);
        self.out.push_str(" {");
        self.trailing(span.start);
        self.out.push('\n');
        for (entry_span, text) in entries {
            self.flush_before(entry_span.start, &inner);
            self.out.push_str(&inner);
            self.out.push_str(text);
            self.out.push(',');
            self.trailing(entry_span.end);
            self.out.push('\n');
        }
        let close = Span {
            file: span.file,
            start: span.end.saturating_sub(1),
            end: span.end,
        };
        self.flush_before(close.start, &inner);
        self.out.push_str(indent);
        self.out.push_str("}\n");
        self.trailing_on_previous_line(span.end);
    }

    /// A trailing comment after a closing brace joins the line just written.
    fn trailing_on_previous_line(&mut self, end: u32) {
        if self.out.ends_with('\n') {
            self.out.pop();
            self.trailing(end);
            self.out.push('\n');
        }
    }

    fn rule(&mut self, rule: &Rule) {
        for annotation in &rule.annotations {
            let text = match &annotation.value {
                Some(value) => format!("@{}({})", annotation.key.text, string(&value.value)),
                None => format!("@{}", annotation.key.text),
            };
            self.line("", annotation.span, &text);
        }
        let actions = match &rule.actions {
            ActionSpec::All(_) => String::from("*"),
            ActionSpec::Named(names) => names
                .iter()
                .map(|name| name.text.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let mut lines: Vec<(Span, String)> = Vec::new();
        let header_end = match &rule.actions {
            ActionSpec::All(span) => *span,
            ActionSpec::Named(names) => names.last().map_or(rule.effect_span, |name| name.span),
        };
        lines.push((
            rule.effect_span.to(header_end),
            format!("{} {actions}", rule.effect.keyword()),
        ));
        if let (Some(first), Some(last)) = (rule.principals.first(), rule.principals.last()) {
            let listed = rule
                .principals
                .iter()
                .map(|matcher| format!("{} {}", matcher.kind.text, pattern(&matcher.pattern)))
                .collect::<Vec<_>>()
                .join(", ");
            lines.push((first.span.to(last.span), format!("{INDENT}to {listed}")));
        }
        for constraint in [&rule.dag, &rule.host].into_iter().flatten() {
            let mut text = format!(
                "{INDENT}{} {}",
                constraint.keyword.text, constraint.kind.text
            );
            if !constraint.patterns.is_empty() {
                text.push(' ');
                text.push_str(
                    &constraint
                        .patterns
                        .iter()
                        .map(pattern)
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            if let Some(filter) = &constraint.filter {
                text.push_str(" where ");
                text.push_str(&expr(filter));
            }
            lines.push((constraint.span, text));
        }
        for condition in &rule.conditions {
            let keyword = match condition.kind {
                ConditionKind::When => "when",
                ConditionKind::Unless => "unless",
            };
            lines.push((
                condition.span,
                format!("{INDENT}{keyword} {}", expr(&condition.expr)),
            ));
        }
        let count = lines.len();
        for (index, (span, mut text)) in lines.into_iter().enumerate() {
            if index + 1 == count {
                text.push(';');
            }
            let end = if index + 1 == count {
                rule.span.end
            } else {
                span.end
            };
            self.line("", Span { end, ..span }, &text);
        }
    }

    fn test(&mut self, block: &TestBlock) {
        self.out.push_str("test ");
        self.out.push_str(&string(&block.name.value));
        self.out.push_str(" {");
        self.trailing(block.name.span.end);
        self.out.push('\n');
        for expectation in &block.expects {
            self.line(INDENT, expectation.span, &expectation_text(expectation));
        }
        self.flush_before(block.span.end.saturating_sub(1), INDENT);
        self.out.push_str("}\n");
        self.trailing_on_previous_line(block.span.end);
    }
}

fn expectation_text(expectation: &Expectation) -> String {
    let outcome = match expectation.outcome {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny ",
    };
    let mut text = format!(
        "expect {outcome} {} by {} {}",
        expectation.action.text,
        expectation.principal_kind.text,
        string(&expectation.principal_id.value)
    );
    if !expectation.groups.is_empty() {
        let groups = expectation
            .groups
            .iter()
            .map(|group| string(&group.value))
            .collect::<Vec<_>>()
            .join(", ");
        text.push_str(&format!(" in groups {{{groups}}}"));
    }
    if !expectation.principal_attrs.is_empty() {
        text.push_str(&format!(
            " with {}",
            attr_block(&expectation.principal_attrs)
        ));
    }
    if let Some(dag) = &expectation.dag {
        text.push_str(&format!(" on dag {}", string(&dag.value)));
    }
    if let Some(host) = &expectation.host {
        text.push_str(&format!(" at host {}", string(&host.value)));
    }
    if !expectation.context.is_empty() {
        text.push_str(&format!(" context {}", attr_block(&expectation.context)));
    }
    text.push(';');
    text
}

fn attr_block(attrs: &[AttrInit]) -> String {
    let inner = attrs
        .iter()
        .map(|attr| format!("{}: {}", attr.name.text, expr(&attr.value)))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{ {inner} }}")
}

fn type_expr(ty: &TypeExpr) -> String {
    match &ty.kind {
        TypeExprKind::Named(name) => name.text.clone(),
        TypeExprKind::Set(element) => format!("Set<{}>", type_expr(element)),
        TypeExprKind::Optional(inner) => format!("{}?", type_expr(inner)),
    }
}

fn pattern(pattern: &Pattern) -> String {
    match &pattern.kind {
        PatternKind::Text(text) => string(text),
        PatternKind::Regex {
            source,
            case_insensitive,
        } => format!("/{source}/{}", if *case_insensitive { "i" } else { "" }),
    }
}

/// A string literal that reads back as the same value.
pub fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for ch in value.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            ch if ch.is_control() => out.push_str(&format!("\\u{{{:x}}}", ch as u32)),
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}

pub fn expr(expr: &Expr) -> String {
    match &expr.kind {
        ExprKind::Bool(flag) => flag.to_string(),
        ExprKind::Int(number) => number.to_string(),
        ExprKind::Str(text) => string(text),
        ExprKind::Ident(word) => word.clone(),
        ExprKind::Field { base, name } => format!("{}.{}", self::expr(base), name.text),
        ExprKind::Set(elements) => format!(
            "{{{}}}",
            elements
                .iter()
                .map(self::expr)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Not(inner) => format!("!{}", self::expr(inner)),
        ExprKind::Binary { op, left, right } => {
            format!("{} {} {}", self::expr(left), op.symbol(), self::expr(right))
        }
        ExprKind::Has {
            target: Some(target),
            attr,
        } => format!("{} has {}", self::expr(target), attr.text),
        ExprKind::Has { target: None, attr } => format!("has {}", attr.text),
        ExprKind::Paren(inner) => format!("({})", self::expr(inner)),
        ExprKind::Error => String::new(),
    }
}
