//! Checks `test` blocks: each expectation names a declared action and well-typed
//! principal and context attributes.

use std::collections::{BTreeMap, BTreeSet};

use super::values::literal_attribute;
use crate::diag::{Code, Diagnostic};
use crate::ir::{self, EntityKind, PrincipalKind, Schema, Value};
use crate::syntax::ast::{self, AttrInit, Outcome};

pub(crate) fn check_test(
    schema: &Schema,
    block: &ast::TestBlock,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<ir::TestCase> {
    let errors_before = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    if block.expects.is_empty() {
        diagnostics.push(
            Diagnostic::warning(
                Code::InvalidTest,
                block.name.span,
                format!("test `{}` has no expectations", block.name.value),
            )
            .with_help("add `expect allow …;` or `expect deny …;` lines"),
        );
    }
    let mut expectations = Vec::new();
    for expect in &block.expects {
        let action = match schema.action(&expect.action.text) {
            Some(id) => Some(id),
            None if schema.aliases.contains_key(&expect.action.text) => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidTest,
                        expect.action.span,
                        format!(
                            "`{}` is an alias; a request names one action",
                            expect.action.text
                        ),
                    )
                    .with_help("write one expectation per action"),
                );
                None
            }
            None => {
                diagnostics.push(crate::resolve::unknown_action(schema, &expect.action));
                None
            }
        };
        let principal_kind = match expect.principal_kind.text.as_str() {
            "user" => Some(PrincipalKind::User),
            "service" => Some(PrincipalKind::Service),
            "group" => {
                diagnostics.push(
                    Diagnostic::error(
                        Code::InvalidTest,
                        expect.principal_kind.span,
                        "a request comes from a user or a service, not a group",
                    )
                    .with_help("give the caller's groups with `in groups {\"…\"}`"),
                );
                None
            }
            _ => {
                diagnostics.push(crate::resolve::unknown_entity_kind(
                    &expect.principal_kind,
                    &["user", "service"],
                ));
                None
            }
        };
        let principal_attrs = attributes(
            schema,
            EntityKind::Principal,
            &expect.principal_attrs,
            diagnostics,
        );
        let context = attributes(schema, EntityKind::Context, &expect.context, diagnostics);
        let (Some(action), Some(principal_kind)) = (action, principal_kind) else {
            continue;
        };
        expectations.push(ir::Expectation {
            allow: expect.outcome == Outcome::Allow,
            action,
            principal_kind,
            principal_id: expect.principal_id.value.clone(),
            groups: expect
                .groups
                .iter()
                .map(|group| group.value.clone())
                .collect::<BTreeSet<_>>(),
            principal_attrs,
            dag: expect.dag.as_ref().map(|dag| dag.value.clone()),
            host: expect.host.as_ref().map(|host| host.value.clone()),
            context,
            span: expect.span,
        });
    }
    let errors_after = diagnostics
        .iter()
        .filter(|diagnostic| diagnostic.is_error())
        .count();
    (errors_after == errors_before).then(|| ir::TestCase {
        name: block.name.value.clone(),
        expectations,
        span: block.span,
    })
}

fn attributes(
    schema: &Schema,
    kind: EntityKind,
    inits: &[AttrInit],
    diagnostics: &mut Vec<Diagnostic>,
) -> BTreeMap<String, Value> {
    let mut values = BTreeMap::new();
    for init in inits {
        let Some(def) = schema.attribute(kind, &init.name.text) else {
            super::unknown_attribute_in(diagnostics, schema, kind, &init.name.text, init.name.span);
            continue;
        };
        if def.builtin && kind == EntityKind::Principal {
            diagnostics.push(Diagnostic::error(
                Code::InvalidTest,
                init.name.span,
                format!(
                    "`{}` is given by `by …` and `in groups`, not by `with`",
                    init.name.text
                ),
            ));
            continue;
        }
        if values.contains_key(&init.name.text) {
            diagnostics.push(Diagnostic::error(
                Code::DuplicateDeclaration,
                init.name.span,
                format!("attribute `{}` is set twice", init.name.text),
            ));
            continue;
        }
        let Some(value) = literal_attribute(schema, kind, def, init, false, diagnostics) else {
            continue;
        };
        values.insert(init.name.text.clone(), value);
    }
    values
}
