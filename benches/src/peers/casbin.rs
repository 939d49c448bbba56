//! Casbin: an RBAC model (`g` for user→group) with allow and deny policy lines; the
//! matcher is evaluated against policy lines, as Casbin does.

use casbin::{CoreApi, DefaultModel, Enforcer, MemoryAdapter, MgmtApi};

use super::Peer;
use crate::{Rule, Scenario};

const MODEL: &str = r#"
[request_definition]
r = sub, dag, act, env, tags, mfa

[policy_definition]
p = sub, dag, act, env, tag, eft

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = (p.eft == "allow" && r.act == p.act && r.env == p.env && g(r.sub, p.sub) && keyMatch(r.dag, p.dag)) || (p.eft == "deny" && r.act == p.act && r.env == p.env && r.mfa == "false" && regexMatch(r.tags, p.tag))
"#;

pub struct Casbin {
    enforcer: Enforcer,
    requests: Vec<Vec<String>>,
}

impl Casbin {
    pub fn build(scenario: &Scenario) -> Option<Casbin> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
        runtime.block_on(async {
            let model = DefaultModel::from_str(MODEL).await.ok()?;
            let mut enforcer = Enforcer::new(model, MemoryAdapter::default()).await.ok()?;
            let mut policies = Vec::new();
            for rule in &scenario.rules {
                match rule {
                    Rule::Permit {
                        group,
                        actions,
                        dag,
                        env,
                    } => {
                        let pattern = dag.glob();
                        for action in *actions {
                            policies.push(vec![
                                group.clone(),
                                pattern.clone(),
                                (*action).to_owned(),
                                (*env).to_owned(),
                                String::new(),
                                String::from("allow"),
                            ]);
                        }
                    }
                    Rule::Forbid { action, tag, env } => {
                        policies.push(vec![
                            String::from("*"),
                            String::from("*"),
                            (*action).to_owned(),
                            (*env).to_owned(),
                            format!(",{tag},"),
                            String::from("deny"),
                        ]);
                    }
                }
            }
            policies.sort();
            policies.dedup();
            enforcer.add_policies(policies).await.ok()?;
            let mut memberships = Vec::new();
            for user in &scenario.users {
                for group in &user.groups {
                    memberships.push(vec![user.id.clone(), group.clone()]);
                }
            }
            enforcer.add_grouping_policies(memberships).await.ok()?;
            Some(Casbin {
                enforcer,
                requests: Vec::new(),
            })
        })
    }

    pub fn prepare(&mut self, scenario: &Scenario) -> Option<()> {
        for request in &scenario.requests {
            let user = scenario.users.get(request.user)?;
            let dag = scenario.dags.get(request.dag)?;
            self.requests.push(vec![
                user.id.clone(),
                dag.id.clone(),
                request.action.to_owned(),
                scenario.hosts.get(request.host)?.env.to_owned(),
                format!(",{},", dag.tags.join(",")),
                user.mfa.to_string(),
            ]);
        }
        Some(())
    }
}

impl Peer for Casbin {
    fn decide(&mut self, request: usize) -> bool {
        self.requests
            .get(request)
            .is_some_and(|args| self.enforcer.enforce(args.clone()).unwrap_or(false))
    }
}
