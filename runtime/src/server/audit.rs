//! Decision-log entries for the HTTP API: one per decision, one per rejected request.

use compiler::eval::Request;
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::engine::Engine;
use crate::wire::Answer;

/// Which interface a decision or rejection came through, as the log shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `/v1/decide` and `/v1/decide/batch`.
    Api,
    /// `/v1/forward-auth`.
    ForwardAuth,
    /// Envoy `ext_authz` over gRPC.
    ExtAuthzGrpc,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Api => "http",
            Source::ForwardAuth => "forward-auth",
            Source::ExtAuthzGrpc => "ext-authz-grpc",
        }
    }
}

/// Records a decision. `false` means the log refused it (full, under `WhenFull::Deny`),
/// and the caller must deny.
pub(crate) fn decision(
    state: &AppState,
    source: Source,
    engine: &Engine,
    request: &Request,
    answer: &Answer,
    id: &str,
    latency_nanos: u128,
) -> bool {
    decisions(
        state,
        source,
        engine,
        std::iter::once((request, answer, id)),
        latency_nanos,
    )
}

/// Records several decisions as one message of the log, all or none; `false` means the
/// log refused them and the caller must deny them all.
pub(crate) fn decisions<'a>(
    state: &AppState,
    source: Source,
    engine: &Engine,
    decided: impl IntoIterator<Item = (&'a Request, &'a Answer, &'a str)>,
    latency_nanos: u128,
) -> bool {
    let Some(log) = &state.log else { return true };
    let action_names = engine.policy_set().schema();
    let git_commit = engine.version().git_commit.as_deref();
    with_timestamp(|time| {
        let entries = decided
            .into_iter()
            .map(|(request, answer, id)| DecisionEntry {
                time,
                decision_id: id,
                source: source.label(),
                principal: PrincipalEntry {
                    id: &request.principal_id,
                    kind: request.principal_kind.keyword(),
                    groups: &request.groups,
                },
                action: action_names.action_name(request.action),
                dag: request.dag.as_ref().map(|dag| dag.id.as_str()),
                host: request.host.as_ref().map(|host| host.id.as_str()),
                decision: answer.decision,
                deciding: &answer.deciding,
                missing: &answer.missing,
                reason: answer.reason.as_deref(),
                policy_version: &answer.policy_version,
                git_commit,
                latency_us: latency_nanos as f64 / 1_000.0,
            });
        log.record_all(entries).is_ok()
    })
}

/// Runs `write` with the current second in RFC 3339, formatted once per second per
/// thread: every decision line carries it.
fn with_timestamp<T>(write: impl FnOnce(&str) -> T) -> T {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = super::now();
    LAST.with(|last| match last.try_borrow_mut() {
        Ok(mut last) => {
            if last.0 != now {
                *last = (now, compiler::time::format_rfc3339(now));
            }
            write(&last.1)
        }
        Err(_) => write(&compiler::time::format_rfc3339(now)),
    })
}

/// One decision-log line.
#[derive(Serialize)]
struct DecisionEntry<'a> {
    time: &'a str,
    decision_id: &'a str,
    source: &'static str,
    principal: PrincipalEntry<'a>,
    action: &'a str,
    dag: Option<&'a str>,
    host: Option<&'a str>,
    decision: &'static str,
    deciding: &'a [String],
    missing: &'a [String],
    reason: Option<&'a str>,
    policy_version: &'a str,
    git_commit: Option<&'a str>,
    latency_us: f64,
}

#[derive(Serialize)]
struct PrincipalEntry<'a> {
    id: &'a str,
    kind: &'static str,
    groups: &'a [String],
}

/// Records a request the API rejected, so the log shows every call, not only decisions.
pub(crate) fn rejection(state: &AppState, source: Source, error: &ApiError) {
    let Some(log) = &state.log else { return };
    let entry = json!({
        "time": compiler::time::format_rfc3339(super::now()),
        "source": source.label(),
        "rejected": {
            "status": error.status.as_u16(),
            "code": error.code,
            "message": error.message,
            "pointer": error.pointer,
        },
    });
    // A rejection is answered with a 4xx whatever the log does; a full log is counted.
    let _ = log.record(&entry);
}

/// The answer after a refusal to log: a deny that says why.
pub(crate) fn unrecorded(answer: &mut Answer) {
    answer.decision = "deny";
    answer.deciding.clear();
    answer.reason = Some(String::from(
        "the decision log is full; denied so that no decision goes unrecorded",
    ));
}
