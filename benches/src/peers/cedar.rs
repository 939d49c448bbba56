//! Cedar: `principal in Group::"g"` over a user→group hierarchy, `resource` is the DAG,
//! the host an entity in `context`; forbids with `unless { principal.mfa }`.

use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, PolicySet, Request, RestrictedExpression,
};
use serde_json::json;

use super::Peer;
use crate::{DagPattern, Rule, Scenario};

pub struct Cedar {
    authorizer: Authorizer,
    policies: PolicySet,
    entities: Entities,
    requests: Vec<Request>,
}

pub fn policies(scenario: &Scenario) -> String {
    let mut out = String::new();
    for index in 0..scenario.rules.len() {
        out.push_str(&policy(scenario, index));
    }
    out
}

/// Rule `index` as one Cedar policy, annotated with its id.
pub fn policy(scenario: &Scenario, index: usize) -> String {
    let mut out = String::new();
    let Some(rule) = scenario.rules.get(index) else {
        return out;
    };
    let _ = match rule {
        Rule::Permit {
            group,
            actions,
            dag,
            env,
        } => {
            let actions: Vec<String> = actions
                .iter()
                .map(|action| format!("Action::\"{action}\""))
                .collect();
            let (resource, test) = match dag {
                DagPattern::Exact(id) => (format!("resource == Dag::\"{id}\""), String::new()),
                DagPattern::Prefix(area) => (
                    String::from("resource"),
                    format!(" && resource.dag_id like \"{area}_*\""),
                ),
            };
            writeln!(
                out,
                "@id(\"rule-{index}\")\npermit(principal in Group::\"{group}\", action in [{}], {resource})\nwhen {{ context.host.env == \"{env}\"{test} }};",
                actions.join(", ")
            )
        }
        Rule::Forbid { action, tag, env } => writeln!(
            out,
            "@id(\"rule-{index}\")\nforbid(principal, action == Action::\"{action}\", resource)\nwhen {{ resource.tags.contains(\"{tag}\") && context.host.env == \"{env}\" }}\nunless {{ principal.mfa }};"
        ),
    };
    out
}

/// Users, groups, DAGs and hosts as Cedar entities in their JSON form.
pub fn entities(scenario: &Scenario) -> serde_json::Value {
    let mut all = Vec::new();
    for group in 0..crate::GROUPS {
        all.push(json!({"uid": {"type": "Group", "id": format!("g{group}")}, "attrs": {}, "parents": []}));
    }
    for user in &scenario.users {
        let parents: Vec<_> = user
            .groups
            .iter()
            .map(|group| json!({"type": "Group", "id": group}))
            .collect();
        all.push(json!({"uid": {"type": "User", "id": user.id}, "attrs": {"mfa": user.mfa}, "parents": parents}));
    }
    for dag in &scenario.dags {
        all.push(json!({"uid": {"type": "Dag", "id": dag.id}, "attrs": {"dag_id": dag.id, "tags": dag.tags}, "parents": []}));
    }
    for host in &scenario.hosts {
        all.push(json!({"uid": {"type": "Host", "id": host.id}, "attrs": {"env": host.env}, "parents": []}));
    }
    serde_json::Value::Array(all)
}

fn uid(kind: &str, id: &str) -> Option<cedar_policy::EntityUid> {
    cedar_policy::EntityUid::from_str(&format!("{kind}::{}", serde_json::to_string(id).ok()?)).ok()
}

impl Cedar {
    pub fn build(scenario: &Scenario) -> Option<Cedar> {
        let policies = PolicySet::from_str(&policies(scenario)).ok()?;
        let entities = Entities::from_json_value(entities(scenario), None).ok()?;
        Some(Cedar {
            authorizer: Authorizer::new(),
            policies,
            entities,
            requests: Vec::new(),
        })
    }

    /// Requests in Cedar's form, built before timing as a caller would build them once.
    pub fn prepare(&mut self, scenario: &Scenario) -> Option<()> {
        for request in &scenario.requests {
            let user = scenario.users.get(request.user)?;
            let host = scenario.hosts.get(request.host)?;
            let dag = scenario.dags.get(request.dag)?;
            let context = Context::from_pairs([(
                String::from("host"),
                RestrictedExpression::new_entity_uid(uid("Host", &host.id)?),
            )])
            .ok()?;
            let built = Request::new(
                uid("User", &user.id)?,
                uid("Action", request.action)?,
                uid("Dag", &dag.id)?,
                context,
                None,
            )
            .ok()?;
            self.requests.push(built);
        }
        Some(())
    }
}

impl Peer for Cedar {
    fn decide(&mut self, request: usize) -> bool {
        self.requests.get(request).is_some_and(|request| {
            self.authorizer
                .is_authorized(request, &self.policies, &self.entities)
                .decision()
                == Decision::Allow
        })
    }
}
