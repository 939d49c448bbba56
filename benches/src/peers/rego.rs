//! Rego on regorus, written the way an OPA user indexes grants: permits keyed by group and
//! forbids keyed by action in `data`, DAG and host attributes in `data`, the caller in
//! `input`.

use std::collections::BTreeMap;

use regorus::{Engine, Value};
use serde_json::json;

use super::Peer;
use crate::{DagPattern, Rule, Scenario};

const POLICY: &str = r#"
package flowgate

default allow := false

allow if {
    not deny
    permitted
}

permitted if {
    some group in input.groups
    some grant in data.grants[group]
    input.action in grant.actions
    data.hosts[input.host].env == grant.env
    dag_matches(grant)
}

dag_matches(grant) if grant.exact == input.dag

dag_matches(grant) if {
    grant.prefix != ""
    startswith(input.dag, grant.prefix)
}

deny if {
    some forbid in data.forbids[input.action]
    forbid.tag in data.dags[input.dag].tags
    data.hosts[input.host].env == forbid.env
    not input.mfa
}
"#;

pub struct Rego {
    engine: Engine,
    inputs: Vec<Value>,
}

fn data(scenario: &Scenario) -> serde_json::Value {
    let mut grants: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    let mut forbids: BTreeMap<&str, Vec<serde_json::Value>> = BTreeMap::new();
    for rule in &scenario.rules {
        match rule {
            Rule::Permit {
                group,
                actions,
                dag,
                env,
            } => {
                let (exact, prefix) = match dag {
                    DagPattern::Exact(id) => (id.clone(), String::new()),
                    DagPattern::Prefix(area) => (String::new(), format!("{area}_")),
                };
                grants.entry(group).or_default().push(
                    json!({"actions": actions, "exact": exact, "prefix": prefix, "env": env}),
                );
            }
            Rule::Forbid { action, tag, env } => forbids
                .entry(action)
                .or_default()
                .push(json!({"tag": tag, "env": env})),
        }
    }
    let dags: BTreeMap<&str, serde_json::Value> = scenario
        .dags
        .iter()
        .map(|dag| (dag.id.as_str(), json!({"tags": dag.tags})))
        .collect();
    let hosts: BTreeMap<&str, serde_json::Value> = scenario
        .hosts
        .iter()
        .map(|host| (host.id.as_str(), json!({"env": host.env})))
        .collect();
    json!({"grants": grants, "forbids": forbids, "dags": dags, "hosts": hosts})
}

impl Rego {
    pub fn build(scenario: &Scenario) -> Option<Rego> {
        let mut engine = Engine::new();
        engine
            .add_policy(String::from("flowgate.rego"), String::from(POLICY))
            .ok()?;
        engine
            .add_data(Value::from_json_str(&data(scenario).to_string()).ok()?)
            .ok()?;
        Some(Rego {
            engine,
            inputs: Vec::new(),
        })
    }

    pub fn prepare(&mut self, scenario: &Scenario) -> Option<()> {
        for request in &scenario.requests {
            let user = scenario.users.get(request.user)?;
            let input = json!({
                "user": user.id,
                "groups": user.groups,
                "mfa": user.mfa,
                "action": request.action,
                "dag": scenario.dags.get(request.dag)?.id,
                "host": scenario.hosts.get(request.host)?.id,
            });
            self.inputs
                .push(Value::from_json_str(&input.to_string()).ok()?);
        }
        Some(())
    }
}

impl Peer for Rego {
    fn decide(&mut self, request: usize) -> bool {
        let Some(input) = self.inputs.get(request) else {
            return false;
        };
        self.engine.set_input(input.clone());
        matches!(
            self.engine.eval_rule(String::from("data.flowgate.allow")),
            Ok(Value::Bool(true))
        )
    }
}
