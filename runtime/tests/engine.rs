//! The engine on the example estate: JSON requests in, answers out, bad requests named by
//! JSON pointer, and the fail-closed rules of the language.

#![allow(
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly by design"
)]

use std::path::Path;

use compiler::time::parse_rfc3339;
use runtime::{Engine, EngineOptions, UnlistedEntities};
use serde_json::json;

fn now() -> i64 {
    parse_rfc3339("2026-11-24T10:00:00Z").unwrap()
}

fn engine(unlisted: UnlistedEntities) -> Engine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    Engine::load(
        &dir,
        EngineOptions {
            now: now(),
            unlisted,
        },
    )
    .expect("the example policies load")
}

fn answer(engine: &Engine, request: serde_json::Value) -> runtime::wire::Answer {
    let request = engine
        .request_from_json(&request, now())
        .expect("a valid request");
    engine.answer(&request, &engine.decide(&request))
}

#[test]
fn engine_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Engine>();
}

#[test]
fn decides_json_requests_and_names_the_rules() {
    let engine = engine(UnlistedEntities::Judge);
    let allowed = answer(
        &engine,
        json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01"}),
    );
    assert_eq!(allowed.decision, "allow");
    assert_eq!(allowed.deciding, ["data-eng-operate-nonprod"]);
    assert!(
        allowed.policy_version.starts_with("git:") || allowed.policy_version.starts_with("sha256:")
    );

    let denied = answer(
        &engine,
        json!({"principal": {"id": "carol", "groups": ["data-eng-prod"]}, "action": "trigger", "dag": "etl_customers", "host": "PROD-AF-WORKER-02."}),
    );
    assert_eq!(denied.decision, "deny");
    assert_eq!(
        denied.deciding,
        ["pii-needs-mfa"],
        "a missing `mfa` makes the forbid apply"
    );
    assert_eq!(denied.missing, ["principal.mfa"]);

    let with_mfa = answer(
        &engine,
        json!({"principal": {"id": "carol", "groups": ["data-eng-prod"], "mfa": true}, "action": "trigger", "dag": "etl_customers", "host": "prod-af-worker-02"}),
    );
    assert_eq!(with_mfa.decision, "allow");

    let nobody = answer(
        &engine,
        json!({"principal": {"id": "eve"}, "action": "delete", "dag": "etl_daily", "host": "stg-af-worker-01"}),
    );
    assert_eq!(nobody.decision, "deny");
    assert!(nobody.deciding.is_empty());
    assert_eq!(
        nobody.reason.as_deref(),
        Some("no rule permits this request")
    );

    // No host named: `no-prod-delete` cannot rule the host out, so it applies.
    let hostless = answer(
        &engine,
        json!({"principal": {"id": "eve"}, "action": "delete", "dag": "etl_daily"}),
    );
    assert_eq!(hostless.deciding, ["no-prod-delete"]);
    assert_eq!(hostless.missing, ["host"]);
}

#[test]
fn unlisted_entities_are_judged_or_denied_by_setting() {
    let request = json!({"principal": {"id": "alice", "groups": ["data-eng"]}, "action": "trigger", "dag": "etl_brand_new", "host": "stg-af-worker-01"});
    let judged = answer(&engine(UnlistedEntities::Judge), request.clone());
    assert_eq!(
        judged.decision, "allow",
        "id patterns apply to DAGs outside the inventory"
    );
    let denied = answer(&engine(UnlistedEntities::Deny), request);
    assert_eq!(denied.decision, "deny");
    assert_eq!(
        denied.reason.as_deref(),
        Some("dag `etl_brand_new` is not in the inventory")
    );
}

#[test]
fn bad_requests_name_the_field_by_json_pointer() {
    let engine = engine(UnlistedEntities::Judge);
    let cases = [
        (
            json!({"principal": {"id": "a"}, "action": "trigger", "dagg": "x"}),
            "/dagg",
        ),
        (json!({"action": "trigger"}), "/principal"),
        (
            json!({"principal": {"id": 7}, "action": "trigger"}),
            "/principal/id",
        ),
        (
            json!({"principal": {"id": "a", "kind": "robot"}, "action": "trigger"}),
            "/principal/kind",
        ),
        (
            json!({"principal": {"id": "a", "groups": ["ok", 3]}, "action": "trigger"}),
            "/principal/groups/1",
        ),
        (
            json!({"principal": {"id": "a", "mfa": "yes"}, "action": "trigger"}),
            "/principal/mfa",
        ),
        (
            json!({"principal": {"id": "a", "clearance": 3}, "action": "trigger"}),
            "/principal/clearance",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "launch"}),
            "/action",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "trigger", "host": 12}),
            "/host",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "trigger", "context": {"time": "soon"}}),
            "/context/time",
        ),
        (
            json!({"principal": {"id": "a"}, "action": "trigger", "context": {"ticket": ["x"]}}),
            "/context/ticket",
        ),
        (json!([1, 2]), ""),
    ];
    for (request, pointer) in cases {
        let error = engine
            .request_from_json(&request, now())
            .expect_err("rejected");
        assert_eq!(error.pointer, pointer, "{request}: {error}");
    }
    let error = engine
        .request_from_json(
            &json!({"principal": {"id": "a"}, "action": "launch"}),
            now(),
        )
        .unwrap_err();
    assert!(error.message.contains("unknown action `launch`"), "{error}");
}

#[test]
fn batches_agree_with_single_decisions() {
    let engine = engine(UnlistedEntities::Judge);
    let requests: Vec<_> = ["stg-af-worker-01", "prod-af-worker-01", "dev-af-worker-01", "unknown-host"]
        .iter()
        .flat_map(|host| {
            ["etl_daily", "etl_customers", "deploy_portal_iis"].map(|dag| {
                json!({"principal": {"id": "alice", "groups": ["data-eng", "web-ops"]}, "action": "trigger", "dag": dag, "host": host})
            })
        })
        .map(|json| engine.request_from_json(&json, now()).unwrap())
        .collect();
    let batch = engine.decide_batch(&requests);
    let single: Vec<_> = requests
        .iter()
        .map(|request| engine.decide(request))
        .collect();
    assert_eq!(batch, single);
    assert!(
        batch.iter().any(|decision| decision.allow) && batch.iter().any(|decision| !decision.allow)
    );
}

#[test]
fn the_version_hashes_the_content() {
    let first = engine(UnlistedEntities::Judge);
    let second = engine(UnlistedEntities::Judge);
    assert_eq!(first.version(), second.version());
    assert_eq!(first.version().content_hash.len(), 64);
}

#[test]
fn a_set_that_fails_the_checker_is_refused_with_its_diagnostics() {
    let dir = std::env::temp_dir().join(format!("flowgate-engine-invalid-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a.gate"), "actions { view }\npermit veiw;\n").unwrap();
    match Engine::load(
        &dir,
        EngineOptions {
            now: now(),
            unlisted: UnlistedEntities::Judge,
        },
    ) {
        Err(runtime::EngineError::Invalid { diagnostics, .. }) => {
            assert_eq!(
                diagnostics
                    .first()
                    .map(|diagnostic| diagnostic.code.as_str()),
                Some("unknown-action")
            );
        }
        other => panic!("expected the checker to refuse the set, got {other:?}"),
    }
}
