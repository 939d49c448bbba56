//! Writes the generated scenario for the sidecar comparison (`benches/http/cedar_agent.sh`):
//! the Flowgate policy directory, the same rules as cedar-agent's policy and data files,
//! and the scenario's requests in each sidecar's JSON, one per line.
//!
//! Usage: sidecar_fixture RULES OUT_DIR

use std::path::Path;

use benches::Scenario;
use benches::peers::cedar;
use serde_json::json;

const DAGS: usize = 1_000;
const HOSTS: usize = 200;
const REQUESTS: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(rules), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: sidecar_fixture RULES OUT_DIR".into());
    };
    let rules: usize = rules.parse()?;
    let out = Path::new(&out);
    let scenario = Scenario::generate(rules, DAGS, HOSTS, REQUESTS);
    std::fs::create_dir_all(out.join("flowgate"))?;
    std::fs::write(out.join("flowgate/estate.gate"), scenario.flowgate_source())?;

    let policies: Vec<_> = (0..scenario.rules.len())
        .map(|index| json!({"id": format!("rule-{index}"), "content": cedar::policy(&scenario, index)}))
        .collect();
    std::fs::write(
        out.join("cedar-policies.json"),
        serde_json::to_string(&policies)?,
    )?;
    std::fs::write(
        out.join("cedar-entities.json"),
        serde_json::to_string(&cedar::entities(&scenario))?,
    )?;

    let mut flowgate_bodies = String::new();
    let mut cedar_bodies = String::new();
    for request in &scenario.requests {
        let (Some(user), Some(dag), Some(host)) = (
            scenario.users.get(request.user),
            scenario.dags.get(request.dag),
            scenario.hosts.get(request.host),
        ) else {
            continue;
        };
        let flowgate = json!({
            "principal": {"id": user.id, "groups": user.groups, "mfa": user.mfa},
            "action": request.action,
            "dag": dag.id,
            "host": host.id,
            "context": {"time": "2027-01-15T08:00:00Z"},
        });
        let cedar = json!({
            "principal": format!("User::{}", serde_json::to_string(&user.id)?),
            "action": format!("Action::\"{}\"", request.action),
            "resource": format!("Dag::{}", serde_json::to_string(&dag.id)?),
            "context": {"host": {"__entity": {"type": "Host", "id": host.id}}},
        });
        flowgate_bodies.push_str(&format!("{flowgate}\n"));
        cedar_bodies.push_str(&format!("{cedar}\n"));
    }
    std::fs::write(out.join("flowgate-requests.jsonl"), flowgate_bodies)?;
    std::fs::write(out.join("cedar-requests.jsonl"), cedar_bodies)?;
    Ok(())
}
