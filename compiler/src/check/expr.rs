//! Types conditions and values against the schema and lowers them to `ir::Cond`/`ir::Term`.
//! Tracks which optional attributes a `has` has proven present, so `context.ticket` is
//! only readable behind `context has ticket`.

use std::collections::{BTreeSet, HashSet};

use crate::diag::{Code, Diagnostic};
use crate::ir::{
    AttrPath, CmpOp, Cond, EntityKind, Schema, Term, TimePart, Type, Value, WEEKDAY_ENUM,
};
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{BinaryOp, Expr, ExprKind};
use crate::time;

/// What bare names mean where the expression stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// `on dag where …`: bare names are the entity's attributes or enum values.
    Where(EntityKind),
    /// `when`/`unless`: attributes are written `principal.x`, `context.x`, …
    Condition,
    /// Inventory and test values: literals only. JSON files spell enums and times as strings.
    Literal { json: bool },
}

type Facts = HashSet<AttrPath>;

pub(crate) struct ExprChecker<'a> {
    pub(crate) schema: &'a Schema,
    pub(crate) scope: Scope,
    pub(crate) diagnostics: &'a mut Vec<Diagnostic>,
}

impl ExprChecker<'_> {
    pub(crate) fn condition(&mut self, expr: &Expr) -> Option<Cond> {
        self.cond(expr, &Facts::new())
    }

    fn error(&mut self, code: Code, span: Span, message: String) -> &mut Diagnostic {
        self.diagnostics
            .push_mut(Diagnostic::error(code, span, message))
    }

    fn cond(&mut self, expr: &Expr, facts: &Facts) -> Option<Cond> {
        match &expr.kind {
            ExprKind::Paren(inner) => self.cond(inner, facts),
            ExprKind::Not(inner) => Some(Cond::Not(Box::new(self.cond(inner, facts)?))),
            ExprKind::Binary {
                op: BinaryOp::And,
                left,
                right,
            } => {
                let left_cond = self.cond(left, facts);
                let mut right_facts = facts.clone();
                right_facts.extend(self.facts_when(left, true));
                let right_cond = self.cond(right, &right_facts);
                Some(flatten(Cond::And(vec![left_cond?, right_cond?])))
            }
            ExprKind::Binary {
                op: BinaryOp::Or,
                left,
                right,
            } => {
                let left_cond = self.cond(left, facts);
                let mut right_facts = facts.clone();
                right_facts.extend(self.facts_when(left, false));
                let right_cond = self.cond(right, &right_facts);
                Some(flatten(Cond::Or(vec![left_cond?, right_cond?])))
            }
            ExprKind::Binary {
                op: BinaryOp::In,
                left,
                right,
            } => self.membership(left, right, facts),
            ExprKind::Binary { op, left, right } => self.comparison(*op, left, right, facts),
            ExprKind::Has { target, attr } => {
                let path = self.has_path(target.as_deref(), attr, expr.span, true)?;
                Some(Cond::Has(path))
            }
            ExprKind::Error => None,
            _ => {
                let (term, ty) = self.term(expr, Some(&Type::Bool), facts)?;
                if ty != Type::Bool {
                    let shown = self.schema.display_type(&ty);
                    self.error(
                        Code::TypeMismatch,
                        expr.span,
                        format!("expected a condition, found a value of type `{shown}`"),
                    )
                    .help = Some(String::from(
                        "compare it with `==`, `in` or another operator",
                    ));
                    return None;
                }
                Some(Cond::Bool(term))
            }
        }
    }

    /// Attributes a `has` proves present when `expr` evaluates to `outcome`.
    fn facts_when(&mut self, expr: &Expr, outcome: bool) -> Facts {
        let mut facts = Facts::new();
        match &expr.kind {
            ExprKind::Paren(inner) => facts = self.facts_when(inner, outcome),
            ExprKind::Not(inner) => facts = self.facts_when(inner, !outcome),
            ExprKind::Has { target, attr } if outcome => {
                if let Some(path) = self.has_path(target.as_deref(), attr, expr.span, false) {
                    facts.insert(path);
                }
            }
            ExprKind::Binary {
                op: BinaryOp::And,
                left,
                right,
            } if outcome => {
                facts = self.facts_when(left, true);
                facts.extend(self.facts_when(right, true));
            }
            ExprKind::Binary {
                op: BinaryOp::Or,
                left,
                right,
            } if !outcome => {
                facts = self.facts_when(left, false);
                facts.extend(self.facts_when(right, false));
            }
            _ => {}
        }
        facts
    }

    fn has_path(
        &mut self,
        target: Option<&Expr>,
        attr: &crate::syntax::ast::Name,
        span: Span,
        report: bool,
    ) -> Option<AttrPath> {
        let entity = match (target.map(|target| &target.kind), self.scope) {
            (None, Scope::Where(kind)) => kind,
            (Some(ExprKind::Ident(word)), _) if EntityKind::from_keyword(word).is_some() => {
                EntityKind::from_keyword(word)?
            }
            _ => {
                if report {
                    self.error(
                        Code::SyntaxError,
                        span,
                        String::from(
                            "`has` tests an attribute of `principal`, `dag`, `host` or `context`",
                        ),
                    )
                    .help = Some(String::from("write, for example, `context has ticket`"));
                }
                return None;
            }
        };
        if self.schema.attribute(entity, &attr.text).is_none() {
            if report {
                self.unknown_attribute(entity, &attr.text, attr.span);
            }
            return None;
        }
        self.schema.path(entity, &attr.text)
    }

    fn unknown_attribute(&mut self, entity: EntityKind, name: &str, span: Span) {
        let attributes = self.schema.attributes(entity);
        let suggestion = suggest::closest(name, attributes.iter().map(|attr| attr.name.as_str()));
        let listed = attributes
            .iter()
            .map(|attr| format!("`{}`", attr.name))
            .collect::<Vec<_>>()
            .join(", ");
        let diagnostic = self.error(
            Code::UnknownAttribute,
            span,
            format!("`{}` has no attribute `{name}`", entity.keyword()),
        );
        diagnostic.help = Some(match suggestion {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => format!("`{}` has {listed}", entity.keyword()),
        });
    }

    /// True for operands whose type comes from the other side: bare enum values, strings
    /// that may be times or dates, and set literals.
    fn is_flexible(&self, expr: &Expr) -> bool {
        match &expr.kind {
            ExprKind::Paren(inner) => self.is_flexible(inner),
            ExprKind::Ident(word) => !self.is_attribute_name(word),
            ExprKind::Str(_) | ExprKind::Set(_) => true,
            _ => false,
        }
    }

    fn is_attribute_name(&self, word: &str) -> bool {
        match self.scope {
            Scope::Where(kind) => self.schema.attribute(kind, word).is_some(),
            _ => false,
        }
    }

    fn comparison(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        facts: &Facts,
    ) -> Option<Cond> {
        let swap = self.is_flexible(left) && !self.is_flexible(right);
        let (first, second) = if swap { (right, left) } else { (left, right) };
        let (first_term, first_ty) = self.term(first, None, facts)?;
        let (second_term, second_ty) = self.term(second, Some(&first_ty), facts)?;
        if first_ty != second_ty {
            self.mismatch(first, &first_ty, second, &second_ty);
            return None;
        }
        let cmp = match op {
            BinaryOp::Eq => CmpOp::Eq,
            BinaryOp::NotEq => CmpOp::NotEq,
            BinaryOp::Less => CmpOp::Less,
            BinaryOp::LessEq => CmpOp::LessEq,
            BinaryOp::Greater => CmpOp::Greater,
            BinaryOp::GreaterEq => CmpOp::GreaterEq,
            BinaryOp::And | BinaryOp::Or | BinaryOp::In => return None,
        };
        if !matches!(cmp, CmpOp::Eq | CmpOp::NotEq)
            && !matches!(first_ty, Type::Int | Type::Time | Type::Date)
        {
            let shown = self.schema.display_type(&first_ty);
            self.error(
                Code::TypeMismatch,
                left.span.to(right.span),
                format!(
                    "`{}` compares numbers, times and dates, not `{shown}`",
                    op.symbol()
                ),
            );
            return None;
        }
        let (left_term, right_term) = if swap {
            (second_term, first_term)
        } else {
            (first_term, second_term)
        };
        Some(Cond::Compare {
            op: cmp,
            left: left_term,
            right: right_term,
        })
    }

    fn membership(&mut self, element: &Expr, set: &Expr, facts: &Facts) -> Option<Cond> {
        let set_first = !self.is_flexible(set) || self.is_flexible(element);
        if set_first {
            let (set_term, set_ty) = self.term(set, None, facts)?;
            let Type::Set(element_ty) = &set_ty else {
                let shown = self.schema.display_type(&set_ty);
                self.error(
                    Code::TypeMismatch,
                    set.span,
                    format!("`in` needs a set on its right, found `{shown}`"),
                )
                .help = Some(String::from("compare single values with `==`"));
                return None;
            };
            let (element_term, found) = self.term(element, Some(element_ty), facts)?;
            if found != **element_ty {
                self.mismatch_in(element, &found, set, element_ty);
                return None;
            }
            Some(Cond::In {
                element: element_term,
                set: set_term,
            })
        } else {
            let (element_term, element_ty) = self.term(element, None, facts)?;
            let expected = Type::Set(Box::new(element_ty.clone()));
            let (set_term, set_ty) = self.term(set, Some(&expected), facts)?;
            if set_ty != expected {
                let shown = self.schema.display_type(&set_ty);
                self.error(
                    Code::TypeMismatch,
                    set.span,
                    format!("`in` needs a set on its right, found `{shown}`"),
                );
                return None;
            }
            Some(Cond::In {
                element: element_term,
                set: set_term,
            })
        }
    }

    fn mismatch(&mut self, first: &Expr, first_ty: &Type, second: &Expr, second_ty: &Type) {
        let first_shown = self.schema.display_type(first_ty);
        let second_shown = self.schema.display_type(second_ty);
        let help = match (first_ty, &second.kind) {
            (Type::Enum(_), ExprKind::Str(text)) => {
                Some(format!("enum values are written without quotes: `{text}`"))
            }
            _ => None,
        };
        let message = format!("cannot compare `{first_shown}` with `{second_shown}`");
        let diagnostic = self.error(Code::TypeMismatch, second.span, message);
        diagnostic.primary.message = format!("this is `{second_shown}`");
        diagnostic.secondary.push(crate::diag::Label {
            span: first.span,
            message: format!("this is `{first_shown}`"),
        });
        diagnostic.help = help;
    }

    fn mismatch_in(&mut self, element: &Expr, found: &Type, set: &Expr, expected: &Type) {
        let found_shown = self.schema.display_type(found);
        let expected_shown = self.schema.display_type(expected);
        let diagnostic = self.error(
            Code::TypeMismatch,
            element.span,
            format!("the set holds `{expected_shown}` values, but this is `{found_shown}`"),
        );
        diagnostic.secondary.push(crate::diag::Label {
            span: set.span,
            message: format!("a set of `{expected_shown}`"),
        });
    }

    /// Types a value. `expected` guides bare enum values, time and date strings and set
    /// literals; the caller still compares the returned type with what it needs.
    pub(crate) fn term(
        &mut self,
        expr: &Expr,
        expected: Option<&Type>,
        facts: &Facts,
    ) -> Option<(Term, Type)> {
        match &expr.kind {
            ExprKind::Paren(inner) => self.term(inner, expected, facts),
            ExprKind::Bool(flag) => Some((Term::Literal(Value::Bool(*flag)), Type::Bool)),
            ExprKind::Int(number) => Some((Term::Literal(Value::Int(*number)), Type::Int)),
            ExprKind::Str(text) => self.string_literal(text, expr.span, expected),
            ExprKind::Ident(word) => self.ident(word, expr.span, expected, facts),
            ExprKind::Field { .. } => self.field(expr, facts),
            ExprKind::Set(elements) => self.set_literal(elements, expr.span, expected, facts),
            ExprKind::Error => None,
            ExprKind::Not(_) | ExprKind::Binary { .. } | ExprKind::Has { .. } => {
                if matches!(self.scope, Scope::Literal { .. }) {
                    self.error(
                        Code::TypeMismatch,
                        expr.span,
                        String::from("expected a value, found a condition"),
                    );
                    return None;
                }
                if expected.is_some_and(|ty| *ty != Type::Bool) {
                    self.error(
                        Code::TypeMismatch,
                        expr.span,
                        String::from("expected a value, found a condition"),
                    );
                    return None;
                }
                self.error(
                    Code::TypeMismatch,
                    expr.span,
                    String::from("a condition cannot be compared as a value"),
                )
                .help = Some(String::from("combine conditions with `&&`, `||` and `!`"));
                None
            }
        }
    }

    fn string_literal(
        &mut self,
        text: &str,
        span: Span,
        expected: Option<&Type>,
    ) -> Option<(Term, Type)> {
        match expected {
            Some(Type::Time) => match time::parse_rfc3339(text) {
                Some(stamp) => Some((Term::Literal(Value::Time(stamp)), Type::Time)),
                None => {
                    self.error(Code::TypeMismatch, span, format!("`{text}` is not a time"))
                        .help = Some(String::from(
                        "write times in RFC 3339, such as `\"2027-01-31T18:00:00Z\"`",
                    ));
                    None
                }
            },
            Some(Type::Date) => match time::parse_date(text) {
                Some(days) => Some((Term::Literal(Value::Date(days)), Type::Date)),
                None => {
                    self.error(Code::TypeMismatch, span, format!("`{text}` is not a date"))
                        .help = Some(String::from("write dates as `\"YYYY-MM-DD\"`"));
                    None
                }
            },
            Some(Type::Enum(id)) if matches!(self.scope, Scope::Literal { json: true }) => {
                self.enum_value(*id, text, span)
            }
            _ => Some((Term::Literal(Value::String(text.to_owned())), Type::String)),
        }
    }

    fn enum_value(
        &mut self,
        id: crate::ir::EnumId,
        word: &str,
        span: Span,
    ) -> Option<(Term, Type)> {
        let def = self.schema.enum_def(id)?;
        if let Some(index) = def.values.iter().position(|value| value == word) {
            return Some((Term::Literal(Value::Enum(id, index as u32)), Type::Enum(id)));
        }
        let name = def.name.clone();
        let suggestion =
            suggest::closest(word, def.values.iter().map(String::as_str)).map(str::to_owned);
        let listed = suggest::one_of(def.values.iter().map(String::as_str));
        let diagnostic = self.error(
            Code::UnknownEnumValue,
            span,
            format!("`{word}` is not a value of `{name}`"),
        );
        diagnostic.primary.message = format!("expected one of {listed}");
        if let Some(suggestion) = suggestion {
            diagnostic.help = Some(format!("did you mean `{suggestion}`?"));
        }
        None
    }

    fn ident(
        &mut self,
        word: &str,
        span: Span,
        expected: Option<&Type>,
        facts: &Facts,
    ) -> Option<(Term, Type)> {
        if let Scope::Where(kind) = self.scope
            && self.schema.attribute(kind, word).is_some()
        {
            return self.attribute(kind, word, span, facts);
        }
        if EntityKind::from_keyword(word).is_some() && !matches!(self.scope, Scope::Literal { .. })
        {
            self.error(
                Code::TypeMismatch,
                span,
                format!("`{word}` is an entity, not a value"),
            )
            .help = Some(format!("name one of its attributes, such as `{word}.id`"));
            return None;
        }
        match expected {
            Some(Type::Enum(id)) => self.enum_value(*id, word, span),
            Some(Type::Set(element)) if matches!(**element, Type::Enum(_)) => {
                // `env in prod` reads as a typo for `env == prod`.
                self.error(
                    Code::TypeMismatch,
                    span,
                    format!("`in` needs a set on its right, found `{word}`"),
                )
                .help = Some(format!("write `{{{word}}}` or compare with `==`"));
                None
            }
            _ => {
                match self.scope {
                    Scope::Where(kind) => self.unknown_attribute(kind, word, span),
                    Scope::Condition => {
                        let owner = self
                            .schema
                            .enums
                            .iter()
                            .find(|def| def.values.iter().any(|value| value == word))
                            .map(|def| def.name.clone());
                        let diagnostic = self.error(
                            Code::UnknownAttribute,
                            span,
                            format!("unknown name `{word}`"),
                        );
                        diagnostic.help = Some(match owner {
                            Some(owner) => format!(
                                "`{word}` is a value of `{owner}`; compare it with an attribute of that type"
                            ),
                            None => String::from(
                                "attributes are written with their entity: `principal.x`, `dag.x`, `host.x`, `context.x`",
                            ),
                        });
                    }
                    Scope::Literal { .. } => {
                        let shown = expected.map_or_else(
                            || String::from("a value"),
                            |ty| format!("a `{}`", self.schema.display_type(ty)),
                        );
                        let help = matches!(expected, Some(Type::String))
                            .then(|| format!("strings are quoted: `\"{word}\"`"));
                        let diagnostic = self.error(
                            Code::TypeMismatch,
                            span,
                            format!("expected {shown}, found the name `{word}`"),
                        );
                        diagnostic.help = help;
                    }
                }
                None
            }
        }
    }

    fn attribute(
        &mut self,
        entity: EntityKind,
        name: &str,
        span: Span,
        facts: &Facts,
    ) -> Option<(Term, Type)> {
        let Some(def) = self.schema.attribute(entity, name) else {
            self.unknown_attribute(entity, name, span);
            return None;
        };
        let path = self.schema.path(entity, name)?;
        if def.optional && !facts.contains(&path) {
            let ty = self.schema.display_type(&def.ty);
            let guard = match self.scope {
                Scope::Where(_) => format!("has {name}"),
                _ => format!("{} has {name}", entity.keyword()),
            };
            let diagnostic = self.error(
                Code::OptionalWithoutHas,
                span,
                format!("`{path}` is optional and may be absent"),
            );
            diagnostic.primary.message = format!("declared `{ty}?`");
            diagnostic.help = Some(format!("test it first: `{guard} && …`"));
            return None;
        }
        Some((Term::Attr(path), def.ty.clone()))
    }

    fn field(&mut self, expr: &Expr, facts: &Facts) -> Option<(Term, Type)> {
        let mut chain = Vec::new();
        let mut cursor = expr;
        while let ExprKind::Field { base, name } = &cursor.kind {
            chain.push(name);
            cursor = base;
        }
        chain.reverse();
        let ExprKind::Ident(root) = &cursor.kind else {
            self.error(
                Code::TypeMismatch,
                expr.span,
                String::from("only attributes have fields"),
            );
            return None;
        };
        let (entity, attr_names): (EntityKind, &[&crate::syntax::ast::Name]) =
            match EntityKind::from_keyword(root) {
                Some(entity) => (entity, &chain),
                None => match self.scope {
                    Scope::Where(kind) if self.schema.attribute(kind, root).is_some() => {
                        let (term, ty) = self.attribute(kind, root, cursor.span, facts)?;
                        return self.time_part(term, ty, &chain);
                    }
                    _ => {
                        let listed = "`principal`, `dag`, `host` or `context`";
                        let diagnostic = self.error(
                            Code::UnknownEntityKind,
                            cursor.span,
                            format!("unknown entity `{root}`"),
                        );
                        diagnostic.help = Some(
                            match suggest::closest(root, ["principal", "dag", "host", "context"]) {
                                Some(suggestion) => format!("did you mean `{suggestion}`?"),
                                None => format!("attributes belong to {listed}"),
                            },
                        );
                        return None;
                    }
                },
            };
        if matches!(self.scope, Scope::Literal { .. }) {
            self.error(
                Code::TypeMismatch,
                expr.span,
                String::from("expected a value, found an attribute"),
            );
            return None;
        }
        if let Scope::Where(kind) = self.scope
            && kind != entity
        {
            let diagnostic = self.error(
                Code::UnknownAttribute,
                expr.span,
                format!(
                    "a `where` on `{}` can only test the {}'s own attributes",
                    kind.keyword(),
                    kind.keyword()
                ),
            );
            diagnostic.help = Some(String::from(
                "move this test into the rule's `when` condition",
            ));
            return None;
        }
        let (first, rest) = attr_names.split_first()?;
        let (term, ty) = self.attribute(entity, &first.text, first.span, facts)?;
        self.time_part(term, ty, rest)
    }

    fn time_part(
        &mut self,
        term: Term,
        ty: Type,
        rest: &[&crate::syntax::ast::Name],
    ) -> Option<(Term, Type)> {
        let Some((part_name, beyond)) = rest.split_first() else {
            return Some((term, ty));
        };
        let shown = self.schema.display_type(&ty);
        let Term::Attr(path) = term else { return None };
        if ty != Type::Time {
            self.error(
                Code::UnknownAttribute,
                part_name.span,
                format!(
                    "`{path}` is `{shown}` and has no field `{}`",
                    part_name.text
                ),
            );
            return None;
        }
        let Some(part) = TimePart::from_name(&part_name.text) else {
            let diagnostic = self.error(
                Code::UnknownAttribute,
                part_name.span,
                format!("a `Time` has no field `{}`", part_name.text),
            );
            diagnostic.help = Some(
                match suggest::closest(&part_name.text, ["hour", "minute", "weekday", "date"]) {
                    Some(suggestion) => format!("did you mean `{suggestion}`?"),
                    None => String::from(
                        "a `Time` has `hour`, `minute`, `weekday` and `date` (all in UTC)",
                    ),
                },
            );
            return None;
        };
        if let Some(extra) = beyond.first() {
            self.error(
                Code::UnknownAttribute,
                extra.span,
                format!("`{}` has no field `{}`", part_name.text, extra.text),
            );
            return None;
        }
        let part_ty = match part {
            TimePart::Hour | TimePart::Minute => Type::Int,
            TimePart::Weekday => Type::Enum(WEEKDAY_ENUM),
            TimePart::Date => Type::Date,
        };
        Some((Term::TimePart(path, part), part_ty))
    }

    fn set_literal(
        &mut self,
        elements: &[Expr],
        span: Span,
        expected: Option<&Type>,
        facts: &Facts,
    ) -> Option<(Term, Type)> {
        let mut element_ty = match expected {
            Some(Type::Set(element)) => Some((**element).clone()),
            _ => None,
        };
        let mut values = BTreeSet::new();
        let mut failed = false;
        // Type fixed elements first so `{prod, "x"}` reports the string, not the name.
        let mut order: Vec<&Expr> = elements
            .iter()
            .filter(|element| !self.is_flexible(element))
            .collect();
        order.extend(elements.iter().filter(|element| self.is_flexible(element)));
        for element in order {
            let Some((term, ty)) = self.term(element, element_ty.as_ref(), facts) else {
                failed = true;
                continue;
            };
            let Term::Literal(value) = term else {
                self.error(
                    Code::TypeMismatch,
                    element.span,
                    String::from("set literals hold values, not attributes"),
                );
                failed = true;
                continue;
            };
            if matches!(ty, Type::Set(_)) {
                self.error(
                    Code::TypeMismatch,
                    element.span,
                    String::from("sets cannot contain sets"),
                );
                failed = true;
                continue;
            }
            match &element_ty {
                Some(expected_ty) if *expected_ty != ty => {
                    let expected_shown = self.schema.display_type(expected_ty);
                    let shown = self.schema.display_type(&ty);
                    self.error(
                        Code::TypeMismatch,
                        element.span,
                        format!("expected a `{expected_shown}` in this set, found `{shown}`"),
                    );
                    failed = true;
                }
                Some(_) => {
                    values.insert(value);
                }
                None => {
                    element_ty = Some(ty);
                    values.insert(value);
                }
            }
        }
        if failed {
            return None;
        }
        let Some(element_ty) = element_ty else {
            self.error(
                Code::TypeMismatch,
                span,
                String::from("cannot tell the type of this empty set"),
            )
            .help = Some(String::from(
                "compare it with an attribute, or leave the test out",
            ));
            return None;
        };
        Some((
            Term::Literal(Value::Set(values)),
            Type::Set(Box::new(element_ty)),
        ))
    }
}

/// `(a && b) && c` becomes one `And` of three, which later passes read more easily.
fn flatten(cond: Cond) -> Cond {
    match cond {
        Cond::And(parts) => Cond::And(
            parts
                .into_iter()
                .flat_map(|part| match part {
                    Cond::And(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        Cond::Or(parts) => Cond::Or(
            parts
                .into_iter()
                .flat_map(|part| match part {
                    Cond::Or(inner) => inner,
                    other => vec![other],
                })
                .collect(),
        ),
        other => other,
    }
}
