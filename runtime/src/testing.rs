//! Runs a policy set's `test` blocks through the engine, measures which rules the tests
//! exercise, and writes the results as JSON or JUnit XML for CI systems.

use std::collections::BTreeMap;

use compiler::eval::{Decision, Request, RequestError, RequestParts, Truth, rule_truths};
use compiler::ir::{Expectation, Value};
use compiler::time::Timestamp;
use serde::Serialize;

use crate::engine::Engine;

/// One `expect` line and how it fared.
#[derive(Clone, Debug)]
pub struct ExpectationResult {
    pub test: String,
    /// `file:line:column` of the expectation.
    pub location: String,
    /// `trigger by user "alice" on dag "etl_daily" at host "stg-sql-01"`.
    pub description: String,
    pub expected_allow: bool,
    pub decision: Decision,
    pub deciding: Vec<String>,
    pub passed: bool,
    /// Set when the expectation could not be turned into a request.
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuleCoverage {
    pub id: String,
    pub location: String,
    /// Expectations the rule applied to (matched, or could not be ruled out).
    pub exercised: usize,
    /// Expectations the rule decided.
    pub decided: usize,
}

#[derive(Clone, Debug)]
pub struct TestReport {
    pub results: Vec<ExpectationResult>,
    pub coverage: Vec<RuleCoverage>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|result| result.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.results.len() - self.passed()
    }
}

/// Runs every expectation. `now` is the request time where an expectation gives none.
pub fn run_tests(engine: &Engine, now: Timestamp) -> TestReport {
    let set = engine.policy_set();
    let mut coverage: Vec<RuleCoverage> = set
        .rules()
        .iter()
        .map(|rule| RuleCoverage {
            id: rule.id.clone(),
            location: engine.sources().location(rule.span),
            exercised: 0,
            decided: 0,
        })
        .collect();
    let mut results = Vec::new();
    for test in set.tests() {
        for expectation in &test.expectations {
            // The checker typed the expectation against the same schema, so this holds;
            // were it not to, the expectation fails with the reason instead of crashing.
            let request = match request_for(engine, expectation, now) {
                Ok(request) => request,
                Err(error) => {
                    results.push(ExpectationResult {
                        test: test.name.clone(),
                        location: engine.sources().location(expectation.span),
                        description: describe(engine, expectation),
                        expected_allow: expectation.allow,
                        decision: Decision::default(),
                        deciding: Vec::new(),
                        passed: false,
                        error: Some(error.to_string()),
                    });
                    continue;
                }
            };
            let decision = engine.decide(&request);
            if engine.unlisted_denial(&request).is_none() {
                for (rule, (truth, _)) in coverage.iter_mut().zip(rule_truths(set, &request)) {
                    if truth != Truth::No {
                        rule.exercised += 1;
                    }
                }
            }
            for index in &decision.deciding {
                if let Some(rule) = coverage.get_mut(*index as usize) {
                    rule.decided += 1;
                }
            }
            results.push(ExpectationResult {
                test: test.name.clone(),
                location: engine.sources().location(expectation.span),
                description: describe(engine, expectation),
                expected_allow: expectation.allow,
                deciding: decision
                    .deciding
                    .iter()
                    .map(|index| engine.rule_id(*index).to_owned())
                    .collect(),
                passed: decision.allow == expectation.allow,
                decision,
                error: None,
            });
        }
    }
    TestReport { results, coverage }
}

fn request_for(
    engine: &Engine,
    expectation: &Expectation,
    now: Timestamp,
) -> Result<Request, RequestError> {
    let mut context_attrs: BTreeMap<String, Value> = expectation.context.clone();
    let time = match context_attrs.remove("time") {
        Some(Value::Time(stamp)) => stamp,
        _ => now,
    };
    let parts = RequestParts {
        principal_id: expectation.principal_id.clone(),
        principal_kind: expectation.principal_kind,
        groups: expectation.groups.clone(),
        principal_attrs: expectation.principal_attrs.clone(),
        action: expectation.action,
        dag: expectation.dag.clone(),
        host: expectation.host.clone(),
        time,
        context_attrs,
    };
    Request::new(engine.policy_set(), parts)
}

fn describe(engine: &Engine, expectation: &Expectation) -> String {
    let schema = engine.policy_set().schema();
    let mut text = format!(
        "{} by {} {:?}",
        schema.action_name(expectation.action),
        expectation.principal_kind.keyword(),
        expectation.principal_id
    );
    if let Some(dag) = &expectation.dag {
        text.push_str(&format!(" on dag {dag:?}"));
    }
    if let Some(host) = &expectation.host {
        text.push_str(&format!(" at host {host:?}"));
    }
    text
}

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    passed: usize,
    failed: usize,
    results: Vec<JsonResult<'a>>,
    coverage: &'a [RuleCoverage],
}

#[derive(Serialize)]
struct JsonResult<'a> {
    test: &'a str,
    location: &'a str,
    expectation: &'a str,
    expected: &'static str,
    actual: &'static str,
    passed: bool,
    deciding: &'a [String],
    missing: &'a [String],
}

fn effect(allow: bool) -> &'static str {
    if allow { "allow" } else { "deny" }
}

pub fn render_json(report: &TestReport) -> String {
    let json = JsonReport {
        version: 1,
        passed: report.passed(),
        failed: report.failed(),
        results: report
            .results
            .iter()
            .map(|result| JsonResult {
                test: &result.test,
                location: &result.location,
                expectation: &result.description,
                expected: effect(result.expected_allow),
                actual: effect(result.decision.allow),
                passed: result.passed,
                deciding: &result.deciding,
                missing: &result.decision.missing,
            })
            .collect(),
        coverage: &report.coverage,
    };
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// JUnit XML: one suite per `test` block, one case per expectation.
pub fn render_junit(report: &TestReport) -> String {
    let mut suites: Vec<(&str, Vec<&ExpectationResult>)> = Vec::new();
    for result in &report.results {
        match suites.iter_mut().find(|(name, _)| *name == result.test) {
            Some((_, cases)) => cases.push(result),
            None => suites.push((&result.test, vec![result])),
        }
    }
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<testsuites name=\"flowgate\" tests=\"{}\" failures=\"{}\">\n",
        report.results.len(),
        report.failed()
    ));
    for (name, cases) in suites {
        let failures = cases.iter().filter(|case| !case.passed).count();
        xml.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\">\n",
            escape_xml(name),
            cases.len(),
            failures
        ));
        for case in cases {
            xml.push_str(&format!(
                "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"",
                escape_xml(&format!(
                    "expect {} {}",
                    effect(case.expected_allow),
                    case.description
                )),
                escape_xml(name),
                escape_xml(case.location.split(':').next().unwrap_or_default()),
            ));
            if case.passed {
                xml.push_str("/>\n");
                continue;
            }
            let message = format!(
                "expected {}, got {} ({})",
                effect(case.expected_allow),
                effect(case.decision.allow),
                if case.deciding.is_empty() {
                    String::from("no rule decided")
                } else {
                    format!("decided by {}", case.deciding.join(", "))
                }
            );
            xml.push_str(&format!(
                ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                escape_xml(&message),
                escape_xml(&format!("{}: {message}", case.location))
            ));
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn escape_xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
