//! The benchmark scenario, generated from a fixed seed so every run and every engine sees
//! the same estate: principals in groups, DAGs with ids and tags, hosts with an
//! environment, and N rules — group permits on exact or prefix DAG patterns against host
//! environments, plus forbids such as "no trigger of PII DAGs on prod without MFA".

use std::fmt::Write as _;

pub mod flowgate;
pub mod http_answer;
#[cfg(feature = "compare")]
pub mod peers;

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

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list.get(self.next(list.len())).copied().unwrap_or_default()
    }
}

pub const ENVS: [&str; 3] = ["dev", "staging", "prod"];
pub const AREAS: [&str; 8] = [
    "etl", "finance", "report", "ml", "deploy", "backup", "maint", "ci",
];
pub const ACTIONS: [&str; 8] = [
    "trigger",
    "clear",
    "pause",
    "unpause",
    "view",
    "view_logs",
    "edit",
    "delete",
];
const ACTION_SETS: [&[&str]; 4] = [
    &["trigger", "view"],
    &["view"],
    &["trigger", "clear"],
    &["view", "view_logs"],
];
pub const GROUPS: usize = 200;

pub struct Dag {
    pub id: String,
    pub area: &'static str,
    /// The area, plus `pii` and `sox` on some DAGs.
    pub tags: Vec<&'static str>,
}

pub struct Host {
    pub id: String,
    pub env: &'static str,
}

/// A caller from the identity provider: fixed groups and MFA state.
pub struct User {
    pub id: String,
    pub groups: Vec<String>,
    pub mfa: bool,
}

pub enum DagPattern {
    /// `"etl_*"`
    Prefix(&'static str),
    Exact(String),
}

impl DagPattern {
    /// The pattern as a glob: `etl_*`, or the exact id.
    pub fn glob(&self) -> String {
        match self {
            DagPattern::Exact(id) => id.clone(),
            DagPattern::Prefix(area) => format!("{area}_*"),
        }
    }
}

pub enum Rule {
    Permit {
        group: String,
        actions: &'static [&'static str],
        dag: DagPattern,
        env: &'static str,
    },
    /// `forbid <action> on dag where "<tag>" in tags at host where env == <env> unless principal.mfa`
    Forbid {
        action: &'static str,
        tag: &'static str,
        env: &'static str,
    },
}

#[derive(Clone, Debug)]
pub struct Request {
    pub user: usize,
    pub action: &'static str,
    pub dag: usize,
    pub host: usize,
}

pub struct Scenario {
    pub users: Vec<User>,
    pub dags: Vec<Dag>,
    pub hosts: Vec<Host>,
    pub rules: Vec<Rule>,
    pub requests: Vec<Request>,
}

const TAGS: [&str; 4] = ["pii", "sox", "etl", "ml"];
const USERS: usize = 500;

impl Scenario {
    /// `rules` rules over `dags` DAGs and `hosts` hosts, with `requests` requests of which
    /// about half are aimed at a permit, so allows and denies both occur.
    pub fn generate(rules: usize, dags: usize, hosts: usize, requests: usize) -> Scenario {
        let mut rng = Lcg(0x5eed);
        let users: Vec<User> = (0..USERS)
            .map(|index| {
                // Round-robin first group, so every group has members.
                let mut groups = vec![format!("g{}", index % GROUPS)];
                groups.extend((0..rng.next(3)).map(|_| format!("g{}", rng.next(GROUPS))));
                groups.sort();
                groups.dedup();
                User {
                    id: format!("user{index}@corp.example"),
                    groups,
                    mfa: rng.next(2) == 0,
                }
            })
            .collect();
        let dags: Vec<Dag> = (0..dags)
            .map(|index| {
                let area = AREAS.get(index % AREAS.len()).copied().unwrap_or("etl");
                let mut tags = vec![area];
                if rng.next(5) == 0 {
                    tags.push("pii");
                }
                if rng.next(4) == 0 {
                    tags.push("sox");
                }
                Dag {
                    id: format!("{area}_{index}"),
                    area,
                    tags,
                }
            })
            .collect();
        let hosts: Vec<Host> = (0..hosts)
            .map(|index| {
                let env = ENVS.get(index % ENVS.len()).copied().unwrap_or("dev");
                Host {
                    id: format!("{env}-host-{index:03}"),
                    env,
                }
            })
            .collect();
        let rules: Vec<Rule> = (0..rules)
            .map(|index| {
                if index % 10 == 9 {
                    return Rule::Forbid {
                        action: rng.pick(&ACTIONS),
                        tag: rng.pick(&TAGS),
                        env: rng.pick(&ENVS),
                    };
                }
                let dag = dags.get(rng.next(dags.len()));
                let pattern = match dag {
                    Some(dag) if rng.next(2) == 0 => DagPattern::Exact(dag.id.clone()),
                    Some(dag) => DagPattern::Prefix(dag.area),
                    None => DagPattern::Prefix("etl"),
                };
                Rule::Permit {
                    group: format!("g{}", rng.next(GROUPS)),
                    actions: ACTION_SETS
                        .get(rng.next(ACTION_SETS.len()))
                        .copied()
                        .unwrap_or(&["view"]),
                    dag: pattern,
                    env: rng.pick(&ENVS),
                }
            })
            .collect();
        let permits: Vec<&Rule> = rules
            .iter()
            .filter(|rule| matches!(rule, Rule::Permit { .. }))
            .collect();
        let requests = (0..requests)
            .map(|index| {
                let mut request = Request {
                    user: rng.next(users.len()),
                    action: rng.pick(&ACTIONS),
                    dag: rng.next(dags.len()),
                    host: rng.next(hosts.len()),
                };
                if index % 2 == 0
                    && let Some(Rule::Permit {
                        group,
                        actions,
                        dag,
                        env,
                    }) = permits.get(rng.next(permits.len()))
                {
                    let members: Vec<usize> = (0..users.len())
                        .filter(|user| {
                            users
                                .get(*user)
                                .is_some_and(|user| user.groups.contains(group))
                        })
                        .collect();
                    request.user = members
                        .get(rng.next(members.len()))
                        .copied()
                        .unwrap_or(request.user);
                    request.action = actions.first().copied().unwrap_or("view");
                    let matching: Vec<usize> = (0..dags.len())
                        .filter(|candidate| {
                            dags.get(*candidate).is_some_and(|candidate| match dag {
                                DagPattern::Exact(id) => candidate.id == *id,
                                DagPattern::Prefix(area) => candidate.area == *area,
                            })
                        })
                        .collect();
                    request.dag = matching
                        .get(rng.next(matching.len()))
                        .copied()
                        .unwrap_or(request.dag);
                    let in_env: Vec<usize> = (0..hosts.len())
                        .filter(|host| hosts.get(*host).is_some_and(|host| host.env == *env))
                        .collect();
                    request.host = in_env
                        .get(rng.next(in_env.len()))
                        .copied()
                        .unwrap_or(request.host);
                }
                request
            })
            .collect();
        Scenario {
            users,
            dags,
            hosts,
            rules,
            requests,
        }
    }

    /// The scenario as one Flowgate policy file.
    pub fn flowgate_source(&self) -> String {
        let mut out = String::with_capacity(self.rules.len() * 110 + self.dags.len() * 60 + 1024);
        out.push_str("enum Env { dev, staging, prod }\nprincipal { mfa: Bool }\ndag { tags: Set<String> }\nhost { env: Env }\n");
        let _ = writeln!(out, "actions {{ {} }}", ACTIONS.join(", "));
        for dag in &self.dags {
            let tags: Vec<String> = dag.tags.iter().map(|tag| format!("\"{tag}\"")).collect();
            let _ = writeln!(
                out,
                "dag \"{}\" {{ tags: {{{}}} }}",
                dag.id,
                tags.join(", ")
            );
        }
        for host in &self.hosts {
            let _ = writeln!(out, "host \"{}\" {{ env: {} }}", host.id, host.env);
        }
        for (index, rule) in self.rules.iter().enumerate() {
            match rule {
                Rule::Permit {
                    group,
                    actions,
                    dag,
                    env,
                } => {
                    let pattern = format!("\"{}\"", dag.glob());
                    let _ = writeln!(
                        out,
                        "@id(\"rule-{index}\")\npermit {}\n  to group \"{group}\"\n  on dag {pattern}\n  at host where env == {env};",
                        actions.join(", ")
                    );
                }
                Rule::Forbid { action, tag, env } => {
                    let _ = writeln!(
                        out,
                        "@id(\"rule-{index}\")\nforbid {action}\n  on dag where \"{tag}\" in tags\n  at host where env == {env}\n  unless principal.mfa;"
                    );
                }
            }
        }
        out
    }
}

/// The generated estate as Flowgate source, for the front-end benchmark.
pub fn estate(rules: usize, dags: usize, hosts: usize) -> String {
    Scenario::generate(rules, dags, hosts, 0).flowgate_source()
}
