//! The decision table agrees with the reference evaluator on the effect, the deciding rules
//! and the missing attributes, for random policy sets and random requests.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

use std::collections::{BTreeMap, BTreeSet};

use compiler::eval::{Decision, Request, RequestParts, decide_reference};
use compiler::ir::{PrincipalKind, Value};
use compiler::source::SourceSet;
use compiler::{CheckOptions, analyze};
use proptest::prelude::*;

const SCHEMA: &str = r#"
enum Env { dev, staging, prod }
principal { mfa: Bool, level: Int, dept: String? }
dag { owner: String, tags: Set<String>, tier: Int? }
host { env: Env, os: String, site: String? }
context { ticket: String?, severity: Int? }
actions { trigger, clear, view, edit }
action operate = { trigger, clear }
"#;

const DAGS: &[&str] = &["etl_a", "etl_b", "rep_x", "ml_1", "ml_22"];
const HOSTS: &[&str] = &["prod-1", "prod-2", "stg-1", "dev-1"];
/// Requests also name entities outside the inventory and case variants of hosts.
const REQUEST_DAGS: &[&str] = &[
    "etl_a", "etl_b", "rep_x", "ml_1", "ml_22", "etl_zz", "ml_3", "Etl_a",
];
const REQUEST_HOSTS: &[&str] = &["prod-1", "PROD-1.", "Stg-1", "dev-1", "prod-9", "other"];
const BASE_TIME: i64 = 1_800_000_000;

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(list.to_vec())
}

fn dag_entry() -> impl Strategy<Value = String> {
    (
        pick(DAGS),
        pick(&["a", "b"]),
        prop::sample::subsequence(vec!["pii", "sox", "ml"], 0..3),
        prop::option::of(0i64..4),
    )
        .prop_map(|(id, owner, tags, tier)| {
            let tags = tags
                .iter()
                .map(|tag| format!("\"{tag}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let tier = tier
                .map(|tier| format!(", tier: {tier}"))
                .unwrap_or_default();
            format!("dag \"{id}\" {{ owner: \"{owner}\", tags: {{{tags}}}{tier} }}\n")
        })
}

fn host_entry() -> impl Strategy<Value = String> {
    (
        pick(HOSTS),
        pick(&["dev", "staging", "prod"]),
        pick(&["windows", "linux"]),
        prop::option::of(pick(&["ams", "fra"])),
    )
        .prop_map(|(id, env, os, site)| {
            let site = site
                .map(|site| format!(", site: \"{site}\""))
                .unwrap_or_default();
            format!("host \"{id}\" {{ env: {env}, os: \"{os}\"{site} }}\n")
        })
}

fn condition() -> impl Strategy<Value = String> {
    let leaf = pick(&[
        "principal.mfa",
        "principal.level >= 2",
        "principal has dept && principal.dept == \"ops\"",
        "context has ticket",
        "context.time.hour < 12",
        "context.time.weekday in {sat, sun}",
        "dag.owner == \"a\"",
        "\"pii\" in dag.tags",
        "dag has tier && dag.tier > 1",
        "host.env == prod",
        "host.os != \"linux\"",
        "context has severity && context.severity > 2",
        "dag.id == \"etl_zz\"",
        "principal.kind == service",
        "\"g1\" in principal.groups",
    ])
    .prop_map(str::to_owned);
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("({left} && {right})")),
            (inner.clone(), inner.clone()).prop_map(|(left, right)| format!("({left} || {right})")),
            inner.prop_map(|cond| format!("!({cond})")),
        ]
    })
}

fn dag_filter() -> impl Strategy<Value = String> {
    pick(&[
        "\"pii\" in tags",
        "owner == \"a\"",
        "has tier && tier >= 2",
        "!(\"sox\" in tags)",
        "id == \"etl_zz\" || owner == \"b\"",
    ])
    .prop_map(str::to_owned)
}

fn host_filter() -> impl Strategy<Value = String> {
    pick(&[
        "env == prod",
        "env in {dev, staging}",
        "has site && site == \"ams\"",
        "os == \"windows\" && env != dev",
    ])
    .prop_map(str::to_owned)
}

fn rule() -> impl Strategy<Value = String> {
    let to = prop::option::of(prop::collection::vec(
        pick(&[
            "group \"g1\"",
            "group \"g2\"",
            "group \"g*\"",
            "user \"u1\"",
            "user /u[0-9]/",
            "service \"s1\"",
            "service \"s*\"",
        ]),
        1..3,
    ));
    let on = prop::option::of((
        prop::collection::vec(
            pick(&[
                "\"etl_a\"",
                "\"etl_*\"",
                "/ml_[0-9]+/",
                "\"etl_zz\"",
                "\"rep_?\"",
            ]),
            0..2,
        ),
        prop::option::of(dag_filter()),
    ));
    let at = prop::option::of((
        prop::collection::vec(
            pick(&["\"prod-1\"", "\"PROD-*\"", "\"stg-1.\"", "/dev-[0-9]/"]),
            0..2,
        ),
        prop::option::of(host_filter()),
    ));
    (
        pick(&["permit", "permit", "forbid"]),
        pick(&["*", "trigger", "operate", "view, edit", "clear"]),
        to,
        on,
        at,
        prop::collection::vec((any::<bool>(), condition()), 0..3),
        prop::option::of(prop_oneof![Just(BASE_TIME - 3600), Just(BASE_TIME + 3600)]),
    )
        .prop_map(|(effect, actions, to, on, at, conditions, expires)| {
            let mut text = String::new();
            if let Some(expires) = expires {
                text.push_str(&format!(
                    "@expires(\"{}\")\n",
                    compiler::time::format_rfc3339(expires)
                ));
            }
            text.push_str(&format!("{effect} {actions}"));
            if let Some(to) = to {
                text.push_str(&format!(" to {}", to.join(", ")));
            }
            for (keyword, kind, clause) in [("on", "dag", on), ("at", "host", at)] {
                if let Some((patterns, filter)) = clause {
                    if patterns.is_empty() && filter.is_none() {
                        continue;
                    }
                    text.push_str(&format!(" {keyword} {kind} {}", patterns.join(", ")));
                    if let Some(filter) = filter {
                        text.push_str(&format!(" where {filter}"));
                    }
                }
            }
            for (unless, condition) in conditions {
                text.push_str(if unless { " unless " } else { " when " });
                text.push_str(&condition);
            }
            text.push_str(";\n");
            text
        })
}

#[derive(Debug, Clone)]
struct RequestSpec {
    action: &'static str,
    service: bool,
    id: &'static str,
    groups: Vec<&'static str>,
    mfa: Option<bool>,
    level: Option<i64>,
    dept: Option<&'static str>,
    dag: Option<&'static str>,
    host: Option<&'static str>,
    time_offset: i64,
    ticket: bool,
    severity: Option<i64>,
}

fn request_spec() -> impl Strategy<Value = RequestSpec> {
    (
        (
            pick(&["trigger", "clear", "view", "edit"]),
            any::<bool>(),
            pick(&["u1", "u7", "s1", "s2", "x"]),
        ),
        prop::sample::subsequence(vec!["g1", "g2", "g3", "gx"], 0..3),
        (
            prop::option::of(any::<bool>()),
            prop::option::of(0i64..4),
            prop::option::of(pick(&["ops", "dev"])),
        ),
        (
            prop::option::of(pick(REQUEST_DAGS)),
            prop::option::of(pick(REQUEST_HOSTS)),
        ),
        (-7200i64..7200, any::<bool>(), prop::option::of(0i64..5)),
    )
        .prop_map(
            |(
                (action, service, id),
                groups,
                (mfa, level, dept),
                (dag, host),
                (time_offset, ticket, severity),
            )| RequestSpec {
                action,
                service,
                id,
                groups,
                mfa,
                level,
                dept,
                dag,
                host,
                time_offset,
                ticket,
                severity,
            },
        )
}

fn build(set: &compiler::ir::PolicySet, spec: &RequestSpec) -> Request {
    let mut principal_attrs = BTreeMap::new();
    if let Some(mfa) = spec.mfa {
        principal_attrs.insert(String::from("mfa"), Value::Bool(mfa));
    }
    if let Some(level) = spec.level {
        principal_attrs.insert(String::from("level"), Value::Int(level));
    }
    if let Some(dept) = spec.dept {
        principal_attrs.insert(String::from("dept"), Value::String(dept.to_owned()));
    }
    let mut context_attrs = BTreeMap::new();
    if spec.ticket {
        context_attrs.insert(String::from("ticket"), Value::String(String::from("INC-1")));
    }
    if let Some(severity) = spec.severity {
        context_attrs.insert(String::from("severity"), Value::Int(severity));
    }
    Request::new(
        set,
        RequestParts {
            principal_id: spec.id.to_owned(),
            principal_kind: if spec.service {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            },
            groups: spec
                .groups
                .iter()
                .map(|group| (*group).to_owned())
                .collect::<BTreeSet<_>>(),
            principal_attrs,
            action: set.schema().action(spec.action).expect("declared action"),
            dag: spec.dag.map(str::to_owned),
            host: spec.host.map(str::to_owned),
            time: BASE_TIME + spec.time_offset,
            context_attrs,
        },
    )
    .expect("generated requests fit the schema")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn table_agrees_with_reference(
        dags in prop::collection::vec(dag_entry(), 0..5),
        hosts in prop::collection::vec(host_entry(), 0..4),
        rules in prop::collection::vec(rule(), 1..12),
        requests in prop::collection::vec(request_spec(), 1..16),
    ) {
        let mut sources = SourceSet::new();
        sources.add("schema.gate", SCHEMA);
        // Duplicate inventory ids are a checker error; keep the first of each.
        let mut seen = BTreeSet::new();
        let inventory: String = dags.iter().chain(hosts.iter()).filter(|entry| seen.insert(entry.split('{').next().unwrap_or_default().to_owned())).cloned().collect();
        sources.add("inventory.gate", inventory);
        sources.add("rules.gate", rules.concat());
        let analysis = analyze(&sources, &CheckOptions::at(BASE_TIME - 10 * 86_400));
        let rendered = compiler::diag::render_human(&sources, &analysis.diagnostics, compiler::diag::ColorChoice::Plain);
        let set = analysis.policy_set.as_ref();
        prop_assert!(set.is_some(), "generator produced an invalid set:\n{}\n{}", rules.concat(), rendered);
        let set = set.unwrap();
        let table = compiler::lower::lower(set);
        // A second table of the same set: a request prepared for it must be decided by
        // `table` as if unprepared.
        let other = compiler::lower::lower(set);
        let mut scratch = table.scratch();
        let mut decision = Decision::default();
        for spec in &requests {
            let request = build(set, spec);
            let expected = decide_reference(set, &request);
            table.decide(&request, &mut scratch, &mut decision);
            prop_assert_eq!(&decision, &expected, "request {:?}\nrules:\n{}", spec, rules.concat());
            let prepared = table.prepare(request.clone());
            table.decide(&prepared, &mut scratch, &mut decision);
            prop_assert_eq!(&decision, &expected, "prepared request {:?}\nrules:\n{}", spec, rules.concat());
            let elsewhere = other.prepare(request);
            table.decide(&elsewhere, &mut scratch, &mut decision);
            prop_assert_eq!(&decision, &expected, "request prepared elsewhere {:?}\nrules:\n{}", spec, rules.concat());
        }
    }
}
