//! Checks inventory entries (from `.gate` or JSON) against the schema.

use std::collections::BTreeMap;

use super::values::literal_attribute;
use crate::diag::{Code, Diagnostic};
use crate::ir::{Entity, EntityKind, Inventory, Schema, Value, normalize_host};
use crate::resolve::unknown_entity_kind;
use crate::source::Span;
use crate::syntax::ast::InventoryEntry;

pub(crate) fn check_inventory(
    schema: &Schema,
    entries: &[(&InventoryEntry, bool)],
    diagnostics: &mut Vec<Diagnostic>,
) -> Inventory {
    let mut inventory = Inventory::default();
    let mut first_seen: BTreeMap<(EntityKind, String), Span> = BTreeMap::new();
    for (entry, json) in entries {
        let kind = match entry.kind.text.as_str() {
            "dag" => EntityKind::Dag,
            "host" => EntityKind::Host,
            "principal" | "context" => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnknownEntityKind,
                        entry.kind.span,
                        format!(
                            "the inventory lists only DAGs and hosts, not `{}`",
                            entry.kind.text
                        ),
                    )
                    .with_help("principals and context come with each request"),
                );
                continue;
            }
            _ => {
                diagnostics.push(unknown_entity_kind(&entry.kind, &["dag", "host"]));
                continue;
            }
        };
        let id = match kind {
            EntityKind::Host => normalize_host(&entry.id.value),
            _ => entry.id.value.clone(),
        };
        if id.is_empty() {
            diagnostics.push(Diagnostic::error(
                Code::TypeMismatch,
                entry.id.span,
                "an entity id cannot be empty",
            ));
            continue;
        }
        if let Some(first) = first_seen.get(&(kind, id.clone())) {
            let note = if kind == EntityKind::Host {
                " (host names ignore case and a trailing dot)"
            } else {
                ""
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::DuplicateDeclaration,
                    entry.id.span,
                    format!(
                        "{} `{}` is listed twice{note}",
                        kind.keyword(),
                        entry.id.value
                    ),
                )
                .with_label("listed again here")
                .with_secondary(*first, "first listed here"),
            );
            continue;
        }
        first_seen.insert((kind, id.clone()), entry.id.span);
        let mut attrs = BTreeMap::new();
        let mut attr_spans: BTreeMap<&str, Span> = BTreeMap::new();
        for init in &entry.attrs {
            if let Some(first) = attr_spans.get(init.name.text.as_str()) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::DuplicateDeclaration,
                        init.name.span,
                        format!("attribute `{}` is set twice", init.name.text),
                    )
                    .with_secondary(*first, "first set here"),
                );
                continue;
            }
            attr_spans.insert(&init.name.text, init.name.span);
            let Some(def) = schema.attribute(kind, &init.name.text) else {
                super::unknown_attribute_in(
                    diagnostics,
                    schema,
                    kind,
                    &init.name.text,
                    init.name.span,
                );
                continue;
            };
            if def.builtin {
                diagnostics.push(Diagnostic::error(
                    Code::TypeMismatch,
                    init.name.span,
                    format!(
                        "`{}` is built in and comes from the entry's id",
                        init.name.text
                    ),
                ));
                continue;
            }
            let Some(value) = literal_attribute(schema, kind, def, init, *json, diagnostics) else {
                continue;
            };
            attrs.insert(init.name.text.clone(), value);
        }
        let missing: Vec<&str> = schema
            .attributes(kind)
            .iter()
            .filter(|def| {
                !def.optional && !def.builtin && !attr_spans.contains_key(def.name.as_str())
            })
            .map(|def| def.name.as_str())
            .collect();
        if !missing.is_empty() {
            let listed = missing
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let noun = if missing.len() == 1 {
                "attribute"
            } else {
                "attributes"
            };
            diagnostics.push(
                Diagnostic::error(
                    Code::MissingAttribute,
                    entry.id.span,
                    format!(
                        "{} `{}` lacks required {noun} {listed}",
                        kind.keyword(),
                        entry.id.value
                    ),
                )
                .with_help(format!(
                    "set {listed}, or declare the attribute optional (`T?`) in the schema"
                )),
            );
            continue;
        }
        // The built-in `id` is readable like any attribute; for hosts it is the normalised name.
        attrs.insert(String::from("id"), Value::String(id.clone()));
        let values = schema
            .attributes(kind)
            .iter()
            .map(|def| attrs.get(&def.name).cloned())
            .collect();
        let entity = Entity {
            id: entry.id.value.clone(),
            values,
            attrs,
            span: entry.id.span,
        };
        match kind {
            EntityKind::Host => inventory.hosts.insert(id, entity),
            _ => inventory.dags.insert(id, entity),
        };
    }
    inventory
}
