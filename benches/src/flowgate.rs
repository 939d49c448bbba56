//! Flowgate on the scenario: the engine built from the generated source, and the
//! scenario's requests in the engine's typed form.

use std::collections::{BTreeMap, BTreeSet};

use compiler::eval::{Request, RequestParts};
use compiler::ir::{PrincipalKind, Value};
use compiler::source::SourceSet;
use runtime::{Engine, EngineOptions, PolicyFiles, UnlistedEntities};

use crate::Scenario;

/// Request time: a fixed instant, so expiry and clocks never vary between runs.
pub const NOW: i64 = 1_800_000_000;

pub fn engine(scenario: &Scenario) -> Option<Engine> {
    let mut sources = SourceSet::new();
    sources.add("scenario.gate", scenario.flowgate_source());
    let files = PolicyFiles {
        sources,
        paths: Vec::new(),
    };
    Engine::from_files(
        files,
        None,
        EngineOptions {
            now: NOW,
            unlisted: UnlistedEntities::Judge,
        },
    )
    .ok()
}

pub fn requests(engine: &Engine, scenario: &Scenario) -> Vec<Request> {
    let set = engine.policy_set();
    scenario
        .requests
        .iter()
        .filter_map(|request| {
            let user = scenario.users.get(request.user)?;
            let parts = RequestParts {
                principal_id: user.id.clone(),
                principal_kind: PrincipalKind::User,
                groups: user.groups.iter().cloned().collect::<BTreeSet<_>>(),
                principal_attrs: BTreeMap::from([(String::from("mfa"), Value::Bool(user.mfa))]),
                action: set.schema().action(request.action)?,
                dag: Some(scenario.dags.get(request.dag)?.id.clone()),
                host: Some(scenario.hosts.get(request.host)?.id.clone()),
                time: NOW,
                context_attrs: BTreeMap::new(),
            };
            Request::new(set, parts).ok()
        })
        .collect()
}
