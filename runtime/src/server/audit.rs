//! Decision-log entries for the HTTP API: one per decision, one per rejected request.

use std::cell::Cell;

use compiler::eval::Request;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::engine::Engine;
use crate::json_text;
use crate::outcome::Outcome;

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

    /// A decision line from the source through the key of the principal's id.
    fn line_middle(self) -> &'static [u8] {
        match self {
            Source::Api => b",\"source\":\"http\",\"principal\":{\"id\":",
            Source::ForwardAuth => b",\"source\":\"forward-auth\",\"principal\":{\"id\":",
            Source::ExtAuthzGrpc => b",\"source\":\"ext-authz-grpc\",\"principal\":{\"id\":",
        }
    }
}

/// Records several decisions as one message of the log, all or none; `false` means the
/// log refused them (full, under `WhenFull::Deny`) and the caller must deny them all.
/// Each decision comes with its sequence number, from which its id is written.
pub(crate) fn decisions<'a>(
    state: &AppState,
    source: Source,
    engine: &Engine,
    decided: impl ExactSizeIterator<Item = (&'a Request, &'a Outcome<'a>, u64)>,
    latency_nanos: u64,
) -> bool {
    let Some(log) = &state.log else { return true };
    let count = decided.len() as u64;
    // Sized for typical lines up front: growing the buffer costs more than the writing.
    let mut bytes = Vec::with_capacity(LINE_BYTES * decided.len());
    let line = LineConstants::new(source, &state.instance, engine, latency_nanos);
    with_timestamp(|time| {
        for (request, outcome, sequence) in decided {
            line.write(&mut bytes, time, request, outcome, sequence);
        }
    });
    log.record_lines(bytes, count).is_ok()
}

/// Bytes of one decision line, give or take.
const LINE_BYTES: usize = 512;

/// What every line of one message shares. The first line writes its start (time and
/// the instance part of the decision id) and its end (policy version, commit, latency);
/// the lines after it copy both from the first rather than writing them again.
struct LineConstants<'a> {
    source: Source,
    instance: &'a str,
    engine: &'a Engine,
    latency_nanos: u64,
    /// The policy version the engine answers with: lines naming it share their end.
    version_label: &'a str,
    /// Where the first line's shared start and end are in the message, once written.
    head: Cell<Option<(usize, usize)>>,
    tail: Cell<Option<(usize, usize)>>,
}

impl<'a> LineConstants<'a> {
    fn new(
        source: Source,
        instance: &'a str,
        engine: &'a Engine,
        latency_nanos: u64,
    ) -> LineConstants<'a> {
        LineConstants {
            source,
            instance,
            engine,
            latency_nanos,
            version_label: engine.version_label(),
            head: Cell::new(None),
            tail: Cell::new(None),
        }
    }

    /// One decision-log line, newline included, appended to the message in `out`. The
    /// keys and their order are the log's format (spec/server.md); every value is
    /// escaped.
    fn write(
        &self,
        out: &mut Vec<u8>,
        time: &str,
        request: &Request,
        outcome: &Outcome<'_>,
        sequence: u64,
    ) {
        match self.head.get() {
            Some((start, end)) => out.extend_from_within(start..end),
            None => {
                let start = out.len();
                out.extend_from_slice(b"{\"time\":");
                json_text::string(out, time);
                out.extend_from_slice(b",\"decision_id\":\"");
                out.extend_from_slice(self.instance.as_bytes());
                out.push(b'-');
                self.head.set(Some((start, out.len())));
            }
        }
        super::api::write_decision_sequence(out, sequence);
        out.push(b'"');
        out.extend_from_slice(self.source.line_middle());
        json_text::string(out, &request.principal_id);
        out.extend_from_slice(b",\"kind\":");
        json_text::string(out, request.principal_kind.keyword());
        out.extend_from_slice(b",\"groups\":");
        json_text::strings(out, request.groups.iter().map(String::as_str));
        out.extend_from_slice(b"},\"action\":");
        json_text::string(
            out,
            self.engine
                .policy_set()
                .schema()
                .action_name(request.action),
        );
        out.extend_from_slice(b",\"dag\":");
        json_text::optional_string(out, request.dag.as_ref().map(|dag| dag.id.as_str()));
        out.extend_from_slice(b",\"host\":");
        json_text::optional_string(out, request.host.as_ref().map(|host| host.id.as_str()));
        out.push(b',');
        outcome.write_verdict(out);
        out.extend_from_slice(b",\"reason\":");
        json_text::optional_string(out, outcome.reason.as_deref());
        if outcome.policy_version != self.version_label {
            write_tail(out, outcome.policy_version, self.engine, self.latency_nanos);
            return;
        }
        match self.tail.get() {
            Some((start, end)) => out.extend_from_within(start..end),
            None => {
                let start = out.len();
                write_tail(out, self.version_label, self.engine, self.latency_nanos);
                self.tail.set(Some((start, out.len())));
            }
        }
    }
}

/// The end of a line, from the policy version on.
fn write_tail(out: &mut Vec<u8>, policy_version: &str, engine: &Engine, latency_nanos: u64) {
    out.extend_from_slice(b",\"policy_version\":");
    json_text::string(out, policy_version);
    out.extend_from_slice(b",\"git_commit\":");
    json_text::optional_string(out, engine.version().git_commit.as_deref());
    out.extend_from_slice(b",\"latency_us\":");
    json_text::micros_from_nanos(out, latency_nanos);
    out.extend_from_slice(b"}\n");
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

#[cfg(test)]
pub(crate) mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use compiler::source::SourceSet;
    use serde_json::{Value, json};

    use super::*;
    use crate::engine::EngineOptions;
    use crate::policy_dir::PolicyFiles;

    /// A small engine whose rules have ids, for the tests of what the sidecar writes.
    pub(crate) fn engine() -> Engine {
        let mut sources = SourceSet::new();
        sources.add(
            "main.gate",
            "principal { mfa: Bool }\nactions { trigger, view }\n\
             @id(\"ops-view\") permit view to group \"ops\";\n\
             @id(\"mfa-trigger\") permit trigger to group \"ops\" when principal.mfa;\n",
        );
        let files = PolicyFiles {
            sources,
            paths: Vec::new(),
        };
        Engine::from_files(
            files,
            Some(String::from("abc123")),
            EngineOptions {
                now: 0,
                unlisted: crate::engine::UnlistedEntities::Judge,
            },
        )
        .expect("the policy checks")
    }

    fn line(engine: &Engine, request: &Value, outcome_of: impl Fn(&mut Outcome<'_>)) -> String {
        let request = engine.request_from_json(request, 0).unwrap();
        let decision = engine.decide(&request);
        let mut outcome = Outcome::decided(engine, &request, &decision);
        outcome_of(&mut outcome);
        line_from(Source::Api, engine, &request, &outcome)
    }

    /// One message of lines, as `decisions` writes them.
    fn message(source: Source, engine: &Engine, lines: &[(&Request, &Outcome<'_>, u64)]) -> String {
        let constants = LineConstants::new(source, "1f2e", engine, 37_486);
        let mut out = Vec::new();
        for (request, outcome, sequence) in lines {
            constants.write(
                &mut out,
                "2026-12-03T00:00:00Z",
                request,
                outcome,
                *sequence,
            );
        }
        String::from_utf8(out).unwrap()
    }

    /// The line as a message of one line writes it, checked against the same decision
    /// later in a message, whose shared start and end are copied from its first line.
    fn line_from(
        source: Source,
        engine: &Engine,
        request: &Request,
        outcome: &Outcome<'_>,
    ) -> String {
        let alone = message(source, engine, &[(request, outcome, 42)]);
        let several = message(
            source,
            engine,
            &[
                (request, outcome, 41),
                (request, outcome, 42),
                (request, outcome, 43),
            ],
        );
        let lines: Vec<&str> = several.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(format!("{}\n", lines[1]), alone);
        assert_eq!(lines[2], lines[1].replace("-0000000042\"", "-0000000043\""));
        alone
    }

    /// Lines of another version than the engine's, among lines of its own, keep theirs.
    #[test]
    fn a_message_of_mixed_versions_keeps_each() {
        let engine = engine();
        let request = engine
            .request_from_json(&json!({"principal": {"id": "ann"}, "action": "view"}), 0)
            .unwrap();
        let decision = engine.decide(&request);
        let usual = Outcome::decided(&engine, &request, &decision);
        let mut other = Outcome::decided(&engine, &request, &decision);
        other.policy_version = "v2";
        let text = message(
            Source::Api,
            &engine,
            &[
                (&request, &other, 1),
                (&request, &usual, 2),
                (&request, &other, 3),
                (&request, &usual, 4),
            ],
        );
        let versions: Vec<String> = text
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap()["policy_version"].to_string())
            .collect();
        let label = format!("{:?}", engine.version().label());
        assert_eq!(versions, ["\"v2\"", &label, "\"v2\"", &label]);
    }

    #[test]
    fn each_source_names_itself() {
        let engine = engine();
        let request = engine
            .request_from_json(&json!({"principal": {"id": "ann"}, "action": "view"}), 0)
            .unwrap();
        let decision = engine.decide(&request);
        let outcome = Outcome::decided(&engine, &request, &decision);
        for source in [Source::Api, Source::ForwardAuth, Source::ExtAuthzGrpc] {
            let parsed: Value =
                serde_json::from_str(&line_from(source, &engine, &request, &outcome)).unwrap();
            assert_eq!(parsed["source"], source.label());
            assert_eq!(parsed["principal"]["id"], "ann");
        }
    }

    /// The line is one JSON object with every field the log documents, values escaped.
    #[test]
    fn a_decision_line_carries_every_field() {
        let engine = engine();
        let text = line(
            &engine,
            &json!({"principal": {"id": "eve\"\n", "groups": ["ops", "a\\b"]}, "action": "trigger", "dag": "etl"}),
            |_| {},
        );
        assert!(
            text.ends_with("}\n") && text.matches('\n').count() == 1,
            "{text}"
        );
        let parsed: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            json!({
                "time": "2026-12-03T00:00:00Z",
                "decision_id": "1f2e-0000000042",
                "source": "http",
                "principal": {"id": "eve\"\n", "kind": "user", "groups": ["a\\b", "ops"]},
                "action": "trigger",
                "dag": "etl",
                "host": null,
                "decision": "deny",
                "deciding": [],
                "missing": ["principal.mfa"],
                "reason": "no rule permits this request",
                "policy_version": engine.version().label(),
                "git_commit": "abc123",
                "latency_us": 37.486,
            })
        );
        let keys = [
            "time",
            "decision_id",
            "source",
            "principal",
            "action",
            "dag",
            "host",
            "decision",
            "deciding",
            "missing",
            "reason",
            "policy_version",
            "git_commit",
            "latency_us",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|key| text.find(&format!("\"{key}\":")).unwrap())
            .collect();
        assert!(positions.is_sorted(), "keys out of order: {text}");
    }

    /// The end of the line is written once per message for the engine's own version; an
    /// outcome naming another version still gets a line of its own, escaped.
    #[test]
    fn an_outcome_of_another_version_gets_its_own_tail() {
        let engine = engine();
        let request = json!({"principal": {"id": "ann", "groups": ["ops"]}, "action": "view"});
        let usual: Value = serde_json::from_str(&line(&engine, &request, |_| {})).unwrap();
        let other: Value = serde_json::from_str(&line(&engine, &request, |outcome| {
            outcome.policy_version = "v\"2";
        }))
        .unwrap();
        assert_eq!(usual["policy_version"], json!(engine.version().label()));
        assert_eq!(other["policy_version"], "v\"2");
        for field in ["git_commit", "latency_us", "decision", "source"] {
            assert_eq!(other[field], usual[field], "{field}");
        }
    }

    #[test]
    fn an_allow_names_its_rules_and_an_unrecorded_one_is_a_deny() {
        let engine = engine();
        let request = json!({"principal": {"id": "ann", "groups": ["ops"], "mfa": true}, "action": "trigger"});
        let allowed: Value = serde_json::from_str(&line(&engine, &request, |_| {})).unwrap();
        assert_eq!(allowed["decision"], "allow");
        assert_eq!(allowed["deciding"], json!(["mfa-trigger"]));
        assert_eq!(allowed["reason"], Value::Null);
        let refused: Value =
            serde_json::from_str(&line(&engine, &request, |outcome| outcome.unrecorded())).unwrap();
        assert_eq!(refused["decision"], "deny");
        assert_eq!(refused["deciding"], json!([]));
        assert!(
            refused["reason"]
                .as_str()
                .unwrap()
                .contains("decision log is full")
        );
    }
}
