//! The `/v1` handlers: single and batch decisions, the loaded policy, health.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value as JsonValue;

use super::AppState;
use super::audit::Source;
use super::error::ApiError;
use crate::decision_log::DecisionLog;
use crate::engine::Engine;
use crate::json_text;
use crate::outcome::Outcome;
use crate::wire::{Answer, decode_at};
use compiler::eval::{Decision, Request};

/// An answer as the forward-auth and `ext_authz` paths keep it.
pub(crate) struct DecisionBody {
    pub(crate) answer: Answer,
    pub(crate) decision_id: String,
}

/// A JSON body written by hand (see [`crate::json_text`]).
pub(crate) struct JsonBytes(pub(crate) Vec<u8>);

impl axum::response::IntoResponse for JsonBytes {
    fn into_response(self) -> axum::response::Response {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// Bytes of one answer, give or take.
const ANSWER_BYTES: usize = 192;

/// Reads the body within the configured limit, and within the request deadline after
/// its head, so a client that trickles a body cannot hold the connection.
async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let deadline = state.config.limits.header_read_timeout;
    match tokio::time::timeout(deadline, to_bytes(body, state.config.max_body_bytes)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                Err(body_too_large(state.config.max_body_bytes))
            } else {
                Err(incomplete_body(&error))
            }
        }
        Err(_) => Err(slow_body(deadline)),
    }
}

fn body_too_large(max_body_bytes: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body-too-large",
        format!("the request body is larger than {max_body_bytes} bytes"),
    )
}

/// A body cut short, mostly by a client that went away; logged, as nobody is left to
/// answer.
pub(crate) fn incomplete_body(cause: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "incomplete-body",
        format!("the request body could not be read whole: {cause}"),
    )
}

pub(crate) fn slow_body(deadline: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "slow-request-body",
        format!(
            "the request body did not arrive within {} s of its head",
            deadline.as_secs_f64()
        ),
    )
}

/// Parses a body as a JSON tree, for the path that names every problem by pointer.
fn json_tree(bytes: &[u8]) -> Result<JsonValue, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed-json",
            format!(
                "the body is not JSON: {error} (line {}, column {})",
                error.line(),
                error.column()
            ),
        )
        .at("")
    })
}

/// Sequence numbers for `count` decisions, taken from the counter at once.
fn sequences(state: &AppState, count: usize) -> u64 {
    state.decisions.fetch_add(count as u64, Ordering::Relaxed)
}

/// A decision's id, `<instance>-<sequence>`. The instance is hexadecimal and the
/// sequence decimal, so it never needs escaping in JSON.
fn write_decision_id_text(out: &mut Vec<u8>, instance: &str, sequence: u64) {
    out.extend_from_slice(instance.as_bytes());
    out.push(b'-');
    write_decision_sequence(out, sequence);
}

/// The part of a decision id after the instance and its dash.
pub(crate) fn write_decision_sequence(out: &mut Vec<u8>, sequence: u64) {
    // At least ten digits, zero-padded, so ids of one instance sort as they were given.
    json_text::padded(out, sequence, 10);
}

fn decision_id_text(instance: &str, sequence: u64) -> String {
    let mut out = Vec::with_capacity(instance.len() + 11);
    write_decision_id_text(&mut out, instance, sequence);
    String::from_utf8(out).unwrap_or_default()
}

/// Counts a rejected request, for the metrics.
fn counted<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    result.map_err(|error| refused(state, error))
}

/// Counts and logs a refusal, and gives it back to be answered: every path that turns a
/// request or connection away calls it, so `/metrics` and the log agree.
pub(crate) fn refused(state: &AppState, error: ApiError) -> ApiError {
    state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
    super::audit::rejection(state, Source::Api, &error);
    error
}

/// The paths the connection answers without the router; the router serves them too.
pub(crate) const DECIDE_PATH: &str = "/v1/decide";
pub(crate) const DECIDE_BATCH_PATH: &str = "/v1/decide/batch";

/// A route the connection answers without the router: the two decision endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HotRoute {
    Decide,
    DecideBatch,
}

pub(crate) fn hot_route(method: &str, path: &str) -> Option<HotRoute> {
    if method != "POST" {
        return None;
    }
    match path {
        DECIDE_PATH => Some(HotRoute::Decide),
        DECIDE_BATCH_PATH => Some(HotRoute::DecideBatch),
        _ => None,
    }
}

/// Answers a hot route's body, counting and logging a refusal: what the router's handlers
/// and the connection's own path ([`super::lean`]) both call once the body is read.
pub(crate) fn answer_body(
    route: HotRoute,
    state: &AppState,
    body: &[u8],
) -> Result<JsonBytes, ApiError> {
    let result = match route {
        HotRoute::Decide => decide_one(state, body),
        HotRoute::DecideBatch => decide_many(state, body),
    };
    counted(state, result)
}

async fn answer_read(route: HotRoute, state: &AppState, body: Body) -> Result<JsonBytes, ApiError> {
    match read_body(state, body).await {
        Ok(bytes) => answer_body(route, state, &bytes),
        Err(error) => Err(refused(state, error)),
    }
}

pub(crate) async fn decide(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<JsonBytes, ApiError> {
    answer_read(HotRoute::Decide, &state, body).await
}

fn decide_one(state: &AppState, bytes: &[u8]) -> Result<JsonBytes, ApiError> {
    let engine = state.engine.load();
    let now = super::now();
    let request = match crate::wire_fast::decode(engine.policy_set(), bytes, now) {
        Some(request) => request,
        None => decode_at(engine.policy_set(), &json_tree(bytes)?, now, "").map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", error.message)
                .at(error.pointer)
        })?,
    };
    let clock = Instant::now();
    let decision = engine.decide(&request);
    let latency = clock.elapsed();
    state.metrics.record(decision.allow, latency);
    Ok(JsonBytes(answer_all(
        state,
        &engine,
        std::slice::from_ref(&request),
        std::slice::from_ref(&decision),
        latency,
        Shape::Single,
    )))
}

/// Gives the answer its id and records it; an answer the log refuses becomes a deny.
pub(crate) fn logged(
    state: &AppState,
    source: Source,
    engine: &Engine,
    request: &Request,
    decision: &Decision,
    latency: Duration,
) -> DecisionBody {
    let sequence = sequences(state, 1);
    let mut outcome = Outcome::decided(engine, request, decision);
    if !super::audit::decisions(
        state,
        source,
        engine,
        std::iter::once((request, &outcome, sequence)),
        nanos(latency),
    ) {
        outcome.unrecorded();
    }
    DecisionBody {
        answer: outcome.to_answer(),
        decision_id: decision_id_text(&state.instance, sequence),
    }
}

fn nanos(latency: Duration) -> u64 {
    u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX)
}

pub(crate) async fn decide_batch(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<JsonBytes, ApiError> {
    answer_read(HotRoute::DecideBatch, &state, body).await
}

fn decide_many(state: &AppState, bytes: &[u8]) -> Result<JsonBytes, ApiError> {
    // One policy version answers the whole batch, even if a reload lands meanwhile.
    let engine = state.engine.load_full();
    let now = super::now();
    let requests = match crate::wire_fast::decode_batch(
        engine.policy_set(),
        bytes,
        now,
        state.config.max_batch,
    ) {
        Some(requests) => requests,
        None => decode_batch_tree(state, &engine, &json_tree(bytes)?, now)?,
    };
    let clock = Instant::now();
    let decisions = engine.decide_batch(&requests);
    let per_decision = clock.elapsed() / u32::try_from(decisions.len().max(1)).unwrap_or(u32::MAX);
    let allowed = decisions.iter().filter(|decision| decision.allow).count();
    state
        .metrics
        .record_many(allowed, decisions.len() - allowed, per_decision);
    Ok(JsonBytes(answer_all(
        state,
        &engine,
        &requests,
        &decisions,
        per_decision,
        Shape::Batch,
    )))
}

/// The batch through the JSON tree, naming the first problem by pointer.
fn decode_batch_tree(
    state: &AppState,
    engine: &Engine,
    json: &JsonValue,
    now: compiler::time::Timestamp,
) -> Result<Vec<Request>, ApiError> {
    let Some(items) = json.get("requests").and_then(JsonValue::as_array) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "a batch is `{\"requests\": [ … ]}`",
        )
        .at("/requests"));
    };
    if let Some(key) = json
        .as_object()
        .and_then(|object| object.keys().find(|key| *key != "requests"))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid-request",
            "unknown field; a batch has only `requests`",
        )
        .at(format!("/{key}")));
    }
    if items.len() > state.config.max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            format!(
                "a batch holds at most {} requests; this one has {}",
                state.config.max_batch,
                items.len()
            ),
        )
        .at("/requests"));
    }
    let mut requests = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let request = decode_at(
            engine.policy_set(),
            item,
            now,
            &format!("/requests/{index}"),
        )
        .map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", error.message)
                .at(error.pointer)
        })?;
        requests.push(request);
    }
    Ok(requests)
}

/// Whether the body is one answer or `{"answers": [...]}`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single,
    Batch,
}

/// Records the decisions as one message of the log — recorded together, or denied
/// together — and writes the response body with each decision's id.
fn answer_all(
    state: &AppState,
    engine: &Engine,
    requests: &[Request],
    decisions: &[Decision],
    latency: Duration,
    shape: Shape,
) -> Vec<u8> {
    let first = sequences(state, requests.len());
    let mut outcomes: Vec<Outcome<'_>> = requests
        .iter()
        .zip(decisions)
        .map(|(request, decision)| Outcome::decided(engine, request, decision))
        .collect();
    let recorded = super::audit::decisions(
        state,
        Source::Api,
        engine,
        requests
            .iter()
            .zip(&outcomes)
            .enumerate()
            .map(|(index, (request, outcome))| (request, outcome, first + index as u64)),
        nanos(latency),
    );
    if !recorded {
        outcomes.iter_mut().for_each(Outcome::unrecorded);
    }
    let mut body = Vec::with_capacity(16 + outcomes.len() * ANSWER_BYTES);
    if shape == Shape::Batch {
        body.extend_from_slice(b"{\"answers\":[");
    }
    write_answers(&mut body, engine, &outcomes, &state.instance, first);
    if shape == Shape::Batch {
        body.extend_from_slice(b"]}");
    }
    body
}

/// Answers separated by commas, their ids numbered from `first`. The version and the
/// instance part of the id, the same in every answer of the engine's own version, are
/// written once and copied after.
fn write_answers(
    body: &mut Vec<u8>,
    engine: &Engine,
    outcomes: &[Outcome<'_>],
    instance: &str,
    first: u64,
) {
    let mut shared: Option<(usize, usize)> = None;
    for (index, (outcome, sequence)) in outcomes.iter().zip(first..).enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_answer_start(body, outcome);
        match shared {
            Some((start, end)) if outcome.policy_version == engine.version_label() => {
                body.extend_from_within(start..end);
            }
            _ => {
                let start = body.len();
                write_answer_version(body, outcome, instance);
                if outcome.policy_version == engine.version_label() {
                    shared = Some((start, body.len()));
                }
            }
        }
        write_decision_sequence(body, sequence);
        body.extend_from_slice(b"\"}");
    }
}

/// An answer — `{decision, deciding, missing, reason?, policy_version, decision_id}`, the
/// shape `/v1/openapi.json` documents — up to its policy version.
fn write_answer_start(out: &mut Vec<u8>, outcome: &Outcome<'_>) {
    out.push(b'{');
    outcome.write_verdict(out);
    if let Some(reason) = &outcome.reason {
        out.extend_from_slice(b",\"reason\":");
        json_text::string(out, reason);
    }
}

/// The policy version, then the decision id up to its sequence number.
fn write_answer_version(out: &mut Vec<u8>, outcome: &Outcome<'_>, instance: &str) {
    out.extend_from_slice(b",\"policy_version\":");
    json_text::string(out, outcome.policy_version);
    out.extend_from_slice(b",\"decision_id\":\"");
    out.extend_from_slice(instance.as_bytes());
    out.push(b'-');
}

#[derive(Serialize)]
pub(crate) struct PolicyBody {
    version: String,
    content_hash: String,
    git_commit: Option<String>,
    loaded_at: String,
    rules: usize,
    last_reload_error: Option<String>,
}

pub(crate) async fn policy(State(state): State<Arc<AppState>>) -> Json<PolicyBody> {
    let engine = state.engine.load();
    let version = engine.version();
    Json(PolicyBody {
        version: version.label(),
        content_hash: version.content_hash.clone(),
        git_commit: version.git_commit.clone(),
        loaded_at: compiler::time::format_rfc3339(state.loaded_at.load(Ordering::Relaxed)),
        rules: engine.policy_set().rules().len(),
        last_reload_error: state
            .last_reload_error
            .lock()
            .ok()
            .and_then(|error| error.clone()),
    })
}

pub(crate) async fn metrics(
    State(state): State<Arc<AppState>>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    let engine = state.engine.load();
    let body = state.metrics.render(
        &engine.version().label(),
        engine.policy_set().rules().len(),
        state.log.as_ref().map(DecisionLog::counters),
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}

pub(crate) async fn healthz() -> Json<JsonValue> {
    Json(serde_json::json!({ "status": "alive" }))
}

/// Ready once a checked policy set is loaded, which the server requires before it listens.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Json<JsonValue> {
    Json(
        serde_json::json!({ "status": "ready", "policy_version": state.engine.load().version().label() }),
    )
}

pub(crate) async fn not_found(State(state): State<Arc<AppState>>) -> ApiError {
    refused(
        &state,
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "no such endpoint; see /v1/openapi.json",
        ),
    )
}

/// A known path asked with a method it does not serve; the `Allow` header names those
/// it does.
pub(crate) async fn method_not_allowed(State(state): State<Arc<AppState>>) -> ApiError {
    refused(
        &state,
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "this endpoint does not take that method; see /v1/openapi.json",
        ),
    )
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use serde_json::json;

    use super::*;

    /// Byte for byte what serializing the `Answer` and appending the id gives: the shape
    /// clients and `/v1/openapi.json` know.
    #[test]
    fn answers_are_written_as_the_answer_serializes() {
        let engine = super::super::audit::tests::engine();
        let requests = [
            json!({"principal": {"id": "ann", "groups": ["ops"], "mfa": true}, "action": "trigger"}),
            json!({"principal": {"id": "bob\"", "groups": ["ops"]}, "action": "trigger"}),
            json!({"principal": {"id": "cy"}, "action": "view"}),
        ];
        let requests: Vec<Request> = requests
            .iter()
            .map(|request| engine.request_from_json(request, 0).unwrap())
            .collect();
        let decisions: Vec<Decision> = requests
            .iter()
            .map(|request| engine.decide(request))
            .collect();
        let mut outcomes: Vec<Outcome<'_>> = requests
            .iter()
            .zip(&decisions)
            .map(|(request, decision)| Outcome::decided(&engine, request, decision))
            .collect();
        // An answer of another version among them keeps its own.
        outcomes[1].policy_version = "v\"2";
        let mut written = Vec::new();
        write_answers(&mut written, &engine, &outcomes, "9ab", 7);
        let expected: Vec<String> = requests
            .iter()
            .zip(&decisions)
            .zip(7..)
            .enumerate()
            .map(|(index, ((request, decision), sequence))| {
                let mut answer = engine.answer(request, decision);
                if index == 1 {
                    answer.policy_version = String::from("v\"2");
                }
                let serialized = serde_json::to_string(&answer).unwrap();
                format!(
                    "{},\"decision_id\":\"9ab-{sequence:010}\"}}",
                    serialized.strip_suffix('}').unwrap()
                )
            })
            .collect();
        assert_eq!(String::from_utf8(written).unwrap(), expected.join(","));
    }

    /// Only a POST to exactly one of the two paths skips the router.
    #[test]
    fn hot_routes_are_the_two_decision_posts() {
        assert_eq!(hot_route("POST", "/v1/decide"), Some(HotRoute::Decide));
        assert_eq!(
            hot_route("POST", "/v1/decide/batch"),
            Some(HotRoute::DecideBatch)
        );
        for (method, path) in [
            ("GET", "/v1/decide"),
            ("PUT", "/v1/decide/batch"),
            ("post", "/v1/decide"),
            ("POST", "/v1/decide/"),
            ("POST", "/v1/policy"),
            ("POST", "/v1/forward-auth"),
        ] {
            assert_eq!(hot_route(method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn decision_ids_are_zero_padded_to_ten_digits() {
        assert_eq!(decision_id_text("ab", 0), "ab-0000000000");
        assert_eq!(decision_id_text("ab", 1_234), "ab-0000001234");
        assert_eq!(decision_id_text("ab", u64::MAX), "ab-18446744073709551615");
    }
}
