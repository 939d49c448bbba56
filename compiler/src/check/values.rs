//! Attribute values given as literals: inventory entries and a test's principal and context.

use super::expr::{ExprChecker, Scope};
use crate::diag::{Code, Diagnostic};
use crate::ir::{AttrDef, EntityKind, Schema, Term, Type, Value};
use crate::syntax::ast::AttrInit;

/// Checks `name: value` against the attribute's declared type. JSON inventories spell
/// enum values and times as strings, hence `json`.
pub(crate) fn literal_attribute(
    schema: &Schema,
    kind: EntityKind,
    def: &AttrDef,
    init: &AttrInit,
    json: bool,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Value> {
    let mut checker = ExprChecker {
        schema,
        scope: Scope::Literal { json },
        diagnostics,
    };
    let Some((Term::Literal(value), ty)) =
        checker.term(&init.value, Some(&def.ty), &Default::default())
    else {
        return None;
    };
    if ty == def.ty {
        return Some(value);
    }
    let expected = schema.display_type(&def.ty);
    let found = schema.display_type(&ty);
    let mut diagnostic = Diagnostic::error(
        Code::TypeMismatch,
        init.value.span,
        format!(
            "`{}.{}` is `{expected}`, found `{found}`",
            kind.keyword(),
            init.name.text
        ),
    );
    if matches!(def.ty, Type::Set(_)) && !matches!(ty, Type::Set(_)) {
        diagnostic = diagnostic.with_help("write a set in braces: `{\"a\", \"b\"}`");
    }
    diagnostics.push(diagnostic);
    None
}
