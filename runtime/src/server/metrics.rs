//! Prometheus metrics: decisions by effect, decision latency, bad requests, reloads by
//! outcome, and the loaded policy's version.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::decision_log::LogCounters;

/// Upper bounds of the latency histogram, in seconds: deciding takes well under a
/// microsecond, a request with JSON decoding a few.
const BUCKETS: [f64; 9] = [
    0.000_000_5,
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_05,
    0.000_1,
    0.001,
    0.01,
];

#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) allow: AtomicU64,
    pub(crate) deny: AtomicU64,
    pub(crate) bad_requests: AtomicU64,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    latency_count: AtomicU64,
    latency_nanos: AtomicU64,
}

impl Metrics {
    pub(crate) fn record(&self, allow: bool, latency: Duration) {
        if allow { &self.allow } else { &self.deny }.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|index| self.buckets.get(index))
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_nanos.fetch_add(
            u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn render(&self, version: &str, rules: usize, log: Option<&LogCounters>) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP flowgate_decisions_total Decisions made, by effect.\n# TYPE flowgate_decisions_total counter"
        );
        let _ = writeln!(
            out,
            "flowgate_decisions_total{{effect=\"allow\"}} {}",
            load(&self.allow)
        );
        let _ = writeln!(
            out,
            "flowgate_decisions_total{{effect=\"deny\"}} {}",
            load(&self.deny)
        );
        let _ = writeln!(
            out,
            "# HELP flowgate_decision_seconds Time the engine spent deciding.\n# TYPE flowgate_decision_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(bucket);
            let _ = writeln!(
                out,
                "flowgate_decision_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = load(&self.latency_count);
        let _ = writeln!(
            out,
            "flowgate_decision_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "flowgate_decision_seconds_sum {}",
            load(&self.latency_nanos) as f64 / 1e9
        );
        let _ = writeln!(out, "flowgate_decision_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP flowgate_bad_requests_total Requests rejected with a 4xx.\n# TYPE flowgate_bad_requests_total counter"
        );
        let _ = writeln!(
            out,
            "flowgate_bad_requests_total {}",
            load(&self.bad_requests)
        );
        let _ = writeln!(
            out,
            "# HELP flowgate_reloads_total Policy reloads, by outcome.\n# TYPE flowgate_reloads_total counter"
        );
        let _ = writeln!(
            out,
            "flowgate_reloads_total{{outcome=\"ok\"}} {}",
            load(&self.reloads_ok)
        );
        let _ = writeln!(
            out,
            "flowgate_reloads_total{{outcome=\"rejected\"}} {}",
            load(&self.reloads_failed)
        );
        let _ = writeln!(
            out,
            "# HELP flowgate_policy_info The policy set being served.\n# TYPE flowgate_policy_info gauge"
        );
        let _ = writeln!(
            out,
            "flowgate_policy_info{{version=\"{version}\",rules=\"{rules}\"}} 1"
        );
        if let Some(log) = log {
            let _ = writeln!(
                out,
                "# HELP flowgate_log_queue_depth Decision-log lines queued, not yet written.\n# TYPE flowgate_log_queue_depth gauge"
            );
            let _ = writeln!(out, "flowgate_log_queue_depth {}", log.depth());
            let _ = writeln!(
                out,
                "# HELP flowgate_log_lines_total Decision-log lines written.\n# TYPE flowgate_log_lines_total counter"
            );
            let _ = writeln!(out, "flowgate_log_lines_total {}", load(&log.written));
            let _ = writeln!(
                out,
                "# HELP flowgate_log_full_total Times the log queue was full, by what happened.\n# TYPE flowgate_log_full_total counter"
            );
            let _ = writeln!(
                out,
                "flowgate_log_full_total{{outcome=\"waited\"}} {}",
                load(&log.waited)
            );
            let _ = writeln!(
                out,
                "flowgate_log_full_total{{outcome=\"denied\"}} {}",
                load(&log.denied_full)
            );
            let _ = writeln!(
                out,
                "# HELP flowgate_log_write_errors_total Lines the log could not write.\n# TYPE flowgate_log_write_errors_total counter"
            );
            let _ = writeln!(
                out,
                "flowgate_log_write_errors_total {}",
                load(&log.write_errors)
            );
        }
        out
    }
}
