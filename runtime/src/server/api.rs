//! The `/v1` handlers: single and batch decisions, the loaded policy, health.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

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
use crate::wire::{Answer, decode_at};
use compiler::eval::Request;

#[derive(Serialize)]
pub(crate) struct DecisionBody {
    #[serde(flatten)]
    pub(crate) answer: Answer,
    pub(crate) decision_id: String,
}

#[derive(Serialize)]
pub(crate) struct BatchBody {
    answers: Vec<DecisionBody>,
}

/// A JSON response serialized into a buffer sized up front (about `hint` bytes): a batch's
/// answers would otherwise be copied over and over as the buffer grows.
pub(crate) struct Sized<T>(T, usize);

/// Bytes of one answer, give or take.
const ANSWER_BYTES: usize = 192;

impl<T: Serialize> axum::response::IntoResponse for Sized<T> {
    fn into_response(self) -> axum::response::Response {
        let mut bytes = Vec::with_capacity(self.1);
        match serde_json::to_writer(&mut bytes, &self.0) {
            Ok(()) => (
                [(
                    axum::http::header::CONTENT_TYPE,
                    axum::http::HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
}

/// Reads the body within the configured limit.
async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    to_bytes(body, state.config.max_body_bytes)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-too-large",
                format!(
                    "the request body is larger than {} bytes",
                    state.config.max_body_bytes
                ),
            )
        })
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

fn decision_id(state: &AppState) -> String {
    decision_ids(state, 1).next().unwrap_or_default()
}

/// Ids for `count` decisions, taken from the counter at once.
fn decision_ids(state: &AppState, count: usize) -> impl Iterator<Item = String> + '_ {
    let first = state.decisions.fetch_add(count as u64, Ordering::Relaxed);
    (first..first + count as u64).map(|sequence| format!("{}-{sequence:010}", state.instance))
}

/// Counts a rejected request, for the metrics.
fn counted<T>(state: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(error) = &result {
        state.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
        super::audit::rejection(state, Source::Api, error);
    }
    result
}

pub(crate) async fn decide(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Sized<DecisionBody>, ApiError> {
    let result = decide_one(&state, body).await;
    counted(&state, result)
}

async fn decide_one(state: &AppState, body: Body) -> Result<Sized<DecisionBody>, ApiError> {
    let bytes = read_body(state, body).await?;
    let engine = state.engine.load();
    let now = super::now();
    let request = match crate::wire_fast::decode(engine.policy_set(), &bytes, now) {
        Some(request) => request,
        None => decode_at(engine.policy_set(), &json_tree(&bytes)?, now, "").map_err(|error| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid-request", error.message)
                .at(error.pointer)
        })?,
    };
    let clock = Instant::now();
    let decision = engine.decide(&request);
    let latency = clock.elapsed();
    state.metrics.record(decision.allow, latency);
    Ok(Sized(
        logged(
            state,
            Source::Api,
            &engine,
            &request,
            engine.answer(&request, &decision),
            latency.as_nanos(),
        ),
        ANSWER_BYTES,
    ))
}

/// Gives the answer its id and records it; an answer the log refuses becomes a deny.
pub(crate) fn logged(
    state: &AppState,
    source: Source,
    engine: &Engine,
    request: &Request,
    mut answer: Answer,
    latency_nanos: u128,
) -> DecisionBody {
    let decision_id = decision_id(state);
    if !super::audit::decision(
        state,
        source,
        engine,
        request,
        &answer,
        &decision_id,
        latency_nanos,
    ) {
        super::audit::unrecorded(&mut answer);
    }
    DecisionBody {
        answer,
        decision_id,
    }
}

pub(crate) async fn decide_batch(
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Sized<BatchBody>, ApiError> {
    let result = decide_many(&state, body).await;
    counted(&state, result)
}

async fn decide_many(state: &AppState, body: Body) -> Result<Sized<BatchBody>, ApiError> {
    let bytes = read_body(state, body).await?;
    // One policy version answers the whole batch, even if a reload lands meanwhile.
    let engine = state.engine.load_full();
    let now = super::now();
    let requests = match crate::wire_fast::decode_batch(
        engine.policy_set(),
        &bytes,
        now,
        state.config.max_batch,
    ) {
        Some(requests) => requests,
        None => decode_batch_tree(state, &engine, &json_tree(&bytes)?, now)?,
    };
    let answers = decide_all(state, &engine, &requests);
    Ok(Sized(answers, 16 + requests.len() * ANSWER_BYTES))
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

fn decide_all(state: &AppState, engine: &Engine, requests: &[Request]) -> BatchBody {
    let clock = Instant::now();
    let decisions = engine.decide_batch(requests);
    let per_decision = clock.elapsed() / u32::try_from(decisions.len().max(1)).unwrap_or(u32::MAX);
    let allowed = decisions.iter().filter(|decision| decision.allow).count();
    state
        .metrics
        .record_many(allowed, decisions.len() - allowed, per_decision);
    let mut answers: Vec<DecisionBody> = requests
        .iter()
        .zip(&decisions)
        .zip(decision_ids(state, requests.len()))
        .map(|((request, decision), decision_id)| DecisionBody {
            answer: engine.answer(request, decision),
            decision_id,
        })
        .collect();
    // The whole batch is one message of the log: recorded together, or denied together.
    let recorded = super::audit::decisions(
        state,
        Source::Api,
        engine,
        requests
            .iter()
            .zip(&answers)
            .map(|(request, body)| (request, &body.answer, body.decision_id.as_str())),
        per_decision.as_nanos(),
    );
    if !recorded {
        for body in &mut answers {
            super::audit::unrecorded(&mut body.answer);
        }
    }
    BatchBody { answers }
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
    let error = ApiError::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such endpoint; see /v1/openapi.json",
    );
    match counted(&state, Err::<(), _>(error)) {
        Err(error) => error,
        Ok(()) => ApiError::new(StatusCode::NOT_FOUND, "not-found", "no such endpoint"),
    }
}
