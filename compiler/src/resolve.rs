//! Collects the schema from every file: enums, entity attribute blocks, actions and
//! aliases, in any order across files, reporting duplicates and unknown names.

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic};
use crate::ir::{
    ActionId, AttrDef, EntityKind, EnumDef, EnumId, PRINCIPAL_KIND_ENUM, Schema, Type,
};
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{self, Item, TypeExprKind};
use crate::time::WEEKDAYS;

/// The schema plus where each name was declared, for later stages' messages.
pub(crate) struct Resolved {
    pub(crate) schema: Schema,
    pub(crate) has_schema: bool,
}

const BUILTIN_TYPES: &[&str] = &["String", "Bool", "Int", "Time", "Date", "Set"];

pub(crate) fn resolve(files: &[&ast::File], diagnostics: &mut Vec<Diagnostic>) -> Resolved {
    let mut schema = Schema {
        enums: vec![
            EnumDef {
                name: String::from("PrincipalKind"),
                values: vec![String::from("user"), String::from("service")],
            },
            EnumDef {
                name: String::from("Weekday"),
                values: WEEKDAYS.iter().map(|day| (*day).to_owned()).collect(),
            },
        ],
        ..Schema::default()
    };
    let mut enum_spans: BTreeMap<String, Span> = BTreeMap::new();
    let items: Vec<&Item> = files.iter().flat_map(|file| file.items.iter()).collect();

    // Enums first: attribute types refer to them from any file.
    for item in &items {
        let Item::Enum(decl) = item else { continue };
        if let Some(first) = enum_spans.get(&decl.name.text) {
            diagnostics.push(duplicate(&decl.name, *first, "enum"));
            continue;
        }
        if BUILTIN_TYPES.contains(&decl.name.text.as_str())
            || schema.enums.iter().any(|def| def.name == decl.name.text)
        {
            diagnostics.push(Diagnostic::error(
                Code::DuplicateDeclaration,
                decl.name.span,
                format!(
                    "`{}` is a built-in type and cannot be redeclared",
                    decl.name.text
                ),
            ));
            continue;
        }
        let mut values: Vec<String> = Vec::new();
        let mut value_spans: BTreeMap<&str, Span> = BTreeMap::new();
        for value in &decl.values {
            if let Some(first) = value_spans.get(value.text.as_str()) {
                diagnostics.push(duplicate(value, *first, "enum value"));
                continue;
            }
            value_spans.insert(&value.text, value.span);
            values.push(value.text.clone());
        }
        enum_spans.insert(decl.name.text.clone(), decl.name.span);
        schema.enums.push(EnumDef {
            name: decl.name.text.clone(),
            values,
        });
    }

    let mut action_spans: BTreeMap<String, Span> = BTreeMap::new();
    let mut has_actions = false;
    for item in &items {
        let Item::Actions(decl) = item else { continue };
        has_actions = true;
        for name in &decl.names {
            if let Some(first) = action_spans.get(&name.text) {
                diagnostics.push(duplicate(name, *first, "action"));
                continue;
            }
            action_spans.insert(name.text.clone(), name.span);
            schema.actions.push(name.text.clone());
        }
    }

    for item in &items {
        let Item::Alias(decl) = item else { continue };
        if let Some(first) = action_spans.get(&decl.name.text) {
            diagnostics.push(duplicate(&decl.name, *first, "action or alias"));
            continue;
        }
        action_spans.insert(decl.name.text.clone(), decl.name.span);
        let mut members: Vec<ActionId> = Vec::new();
        for name in &decl.actions {
            match schema.action(&name.text) {
                Some(id) => members.push(id),
                None => diagnostics.push(unknown_action(&schema, name)),
            }
        }
        schema.aliases.insert(decl.name.text.clone(), members);
    }

    let mut entity_spans: BTreeMap<EntityKind, Span> = BTreeMap::new();
    for kind in EntityKind::ALL {
        schema.entities.insert(kind, builtin_attributes(kind));
    }
    for item in &items {
        let Item::Entity(decl) = item else { continue };
        let Some(kind) = EntityKind::from_keyword(&decl.kind.text) else {
            diagnostics.push(unknown_entity_kind(
                &decl.kind,
                &["principal", "dag", "host", "context"],
            ));
            continue;
        };
        if let Some(first) = entity_spans.get(&kind) {
            diagnostics.push(duplicate(&decl.kind, *first, "schema block"));
            continue;
        }
        entity_spans.insert(kind, decl.kind.span);
        let mut field_spans: BTreeMap<&str, Span> = BTreeMap::new();
        for field in &decl.fields {
            if let Some(first) = field_spans.get(field.name.text.as_str()) {
                diagnostics.push(duplicate(&field.name, *first, "attribute"));
                continue;
            }
            field_spans.insert(&field.name.text, field.name.span);
            let Some((ty, optional)) = resolve_field_type(&schema, &field.ty, diagnostics) else {
                continue;
            };
            let accepted = !optional && builtin_accepts(&schema, kind, &field.name.text, &ty);
            let Some(attrs) = schema.entities.get_mut(&kind) else {
                continue;
            };
            if let Some(builtin) = attrs.iter().find(|attr| attr.name == field.name.text) {
                if !accepted {
                    let expected = describe_builtin(&builtin.ty);
                    diagnostics.push(
                        Diagnostic::error(
                            Code::TypeMismatch,
                            field.ty.span,
                            format!(
                                "built-in attribute `{}.{}` has type `{expected}`",
                                kind.keyword(),
                                field.name.text
                            ),
                        )
                        .with_help(format!(
                            "declare it as `{}: {expected}` or leave it out",
                            field.name.text
                        )),
                    );
                }
                continue;
            }
            attrs.push(AttrDef {
                name: field.name.text.clone(),
                ty,
                optional,
                builtin: false,
            });
        }
    }

    let has_schema = has_actions;
    Resolved { schema, has_schema }
}

/// Built-ins every request or inventory entry carries.
fn builtin_attributes(kind: EntityKind) -> Vec<AttrDef> {
    let builtin = |name: &str, ty: Type| AttrDef {
        name: name.to_owned(),
        ty,
        optional: false,
        builtin: true,
    };
    match kind {
        EntityKind::Principal => vec![
            builtin("id", Type::String),
            builtin("kind", Type::Enum(PRINCIPAL_KIND_ENUM)),
            builtin("groups", Type::Set(Box::new(Type::String))),
        ],
        EntityKind::Dag | EntityKind::Host => vec![builtin("id", Type::String)],
        EntityKind::Context => vec![builtin("time", Type::Time)],
    }
}

/// A schema may restate a built-in for readers, as long as the type agrees. The principal's
/// `kind` may name a declared enum with exactly the values `user` and `service`; the
/// built-in type stays in force either way.
fn builtin_accepts(schema: &Schema, kind: EntityKind, name: &str, declared: &Type) -> bool {
    let Some(builtin) = schema.attribute(kind, name) else {
        return true;
    };
    if builtin.ty == *declared {
        return true;
    }
    match declared {
        Type::Enum(id) if builtin.ty == Type::Enum(PRINCIPAL_KIND_ENUM) => {
            schema.enum_def(*id).is_some_and(|def| {
                let mut values: Vec<&str> = def.values.iter().map(String::as_str).collect();
                values.sort_unstable();
                values == ["service", "user"]
            })
        }
        _ => false,
    }
}

fn describe_builtin(ty: &Type) -> &'static str {
    match ty {
        Type::String => "String",
        Type::Time => "Time",
        Type::Set(_) => "Set<String>",
        _ => "an enum of `user` and `service`",
    }
}

fn resolve_field_type(
    schema: &Schema,
    ty: &ast::TypeExpr,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(Type, bool)> {
    match &ty.kind {
        TypeExprKind::Optional(inner) => {
            if matches!(inner.kind, TypeExprKind::Optional(_)) {
                diagnostics.push(Diagnostic::error(
                    Code::UnknownType,
                    ty.span,
                    "a type can be optional only once",
                ));
                return None;
            }
            resolve_type(schema, inner, diagnostics).map(|ty| (ty, true))
        }
        _ => resolve_type(schema, ty, diagnostics).map(|ty| (ty, false)),
    }
}

fn resolve_type(
    schema: &Schema,
    ty: &ast::TypeExpr,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Type> {
    match &ty.kind {
        TypeExprKind::Named(name) => match name.text.as_str() {
            "String" => Some(Type::String),
            "Bool" => Some(Type::Bool),
            "Int" => Some(Type::Int),
            "Time" => Some(Type::Time),
            "Date" => Some(Type::Date),
            other => {
                if let Some(index) = schema.enums.iter().position(|def| def.name == other) {
                    return Some(Type::Enum(EnumId(index as u32)));
                }
                let mut candidates: Vec<&str> = BUILTIN_TYPES.to_vec();
                candidates.extend(schema.enums.iter().map(|def| def.name.as_str()));
                let mut diagnostic = Diagnostic::error(
                    Code::UnknownType,
                    name.span,
                    format!("unknown type `{other}`"),
                )
                .with_label("not a built-in type or a declared enum");
                if let Some(suggestion) = suggest::closest(other, candidates) {
                    diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
                } else {
                    diagnostic = diagnostic.with_help("types are `String`, `Bool`, `Int`, `Time`, `Date`, `Set<T>`, `T?` and enums declared with `enum`");
                }
                diagnostics.push(diagnostic);
                None
            }
        },
        TypeExprKind::Set(element) => {
            if matches!(
                element.kind,
                TypeExprKind::Optional(_) | TypeExprKind::Set(_)
            ) {
                diagnostics.push(Diagnostic::error(
                    Code::UnknownType,
                    element.span,
                    "set elements are plain values: not optional, not sets",
                ));
                return None;
            }
            resolve_type(schema, element, diagnostics).map(|ty| Type::Set(Box::new(ty)))
        }
        TypeExprKind::Optional(_) => {
            diagnostics.push(
                Diagnostic::error(
                    Code::UnknownType,
                    ty.span,
                    "only an attribute's own type can be optional",
                )
                .with_help("write `name: T?`"),
            );
            None
        }
    }
}

fn duplicate(name: &ast::Name, first: Span, what: &str) -> Diagnostic {
    Diagnostic::error(
        Code::DuplicateDeclaration,
        name.span,
        format!("{what} `{}` is declared twice", name.text),
    )
    .with_label("declared again here")
    .with_secondary(first, "first declared here")
}

pub(crate) fn unknown_action(schema: &Schema, name: &ast::Name) -> Diagnostic {
    let candidates = schema
        .actions
        .iter()
        .map(String::as_str)
        .chain(schema.aliases.keys().map(String::as_str));
    let mut diagnostic = Diagnostic::error(
        Code::UnknownAction,
        name.span,
        format!("unknown action `{}`", name.text),
    )
    .with_label("not declared in `actions` or as an alias");
    if let Some(suggestion) = suggest::closest(&name.text, candidates) {
        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
    } else if !schema.actions.is_empty() {
        diagnostic =
            diagnostic.with_help(format!("declared actions: {}", schema.actions.join(", ")));
    }
    diagnostic
}

pub(crate) fn unknown_entity_kind(name: &ast::Name, expected: &[&str]) -> Diagnostic {
    let listed = suggest::one_of(expected.iter().copied());
    let mut diagnostic = Diagnostic::error(
        Code::UnknownEntityKind,
        name.span,
        format!("unknown entity kind `{}`", name.text),
    )
    .with_label(format!("expected {listed}"));
    if let Some(suggestion) = suggest::closest(&name.text, expected.iter().copied()) {
        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
    }
    diagnostic
}
