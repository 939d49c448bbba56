//! Generated policy sets for the benchmarks: a fixed seed, so every run measures the same
//! estate.

use std::fmt::Write as _;

/// A small deterministic generator; benchmarks need repeatability, not randomness.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % bound.max(1)
    }
}

const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const AREAS: [&str; 8] = [
    "etl", "finance", "report", "ml", "deploy", "backup", "maint", "ci",
];

/// Schema, inventory of `dags` DAGs and `hosts` hosts, and `rules` rules, as one `.gate` text.
pub fn estate(rules: usize, dags: usize, hosts: usize) -> String {
    let mut rng = Lcg(0x5eed);
    let mut out = String::with_capacity(rules * 110 + dags * 80 + hosts * 60 + 1024);
    out.push_str("enum Env { dev, staging, prod }\n");
    out.push_str("principal { mfa: Bool }\ndag { owner: String, tags: Set<String> }\nhost { env: Env, os: String }\ncontext { ticket: String? }\n");
    out.push_str("actions { trigger, clear, pause, unpause, view, view_logs, edit, delete }\naction operate = { trigger, clear, pause, unpause }\n");
    for index in 0..dags {
        let area = cycle(&AREAS, index);
        let pii = if rng.next(5) == 0 { ", \"pii\"" } else { "" };
        let _ = writeln!(
            out,
            "dag \"{area}_{index}\" {{ owner: \"team-{}\", tags: {{\"{area}\"{pii}}} }}",
            index % 50
        );
    }
    for index in 0..hosts {
        let env = cycle(&ENVS, index);
        let _ = writeln!(
            out,
            "host \"{env}-host-{index:03}\" {{ env: {env}, os: \"windows\" }}"
        );
    }
    for index in 0..rules {
        let group = rng.next(200);
        let dag = rng.next(dags);
        let area = cycle(&AREAS, dag);
        let dag_pattern = if rng.next(2) == 0 {
            format!("\"{area}_*\"")
        } else {
            format!("\"{area}_{dag}\"")
        };
        if index % 10 == 9 {
            let _ = writeln!(
                out,
                "@id(\"rule-{index}\")\nforbid trigger on dag where \"pii\" in tags at host where env == prod unless principal.mfa;"
            );
        } else {
            let env = cycle(&ENVS, rng.next(ENVS.len()));
            let _ = writeln!(
                out,
                "@id(\"rule-{index}\")\npermit operate, view\n  to group \"group-{group}\"\n  on dag {dag_pattern}\n  at host where env == {env};"
            );
        }
    }
    out
}

/// The element at `index` modulo the length: generated names cycle through a fixed list.
fn cycle<'a>(list: &[&'a str], index: usize) -> &'a str {
    list.get(index % list.len().max(1))
        .copied()
        .unwrap_or_default()
}
