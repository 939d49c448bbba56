//! Prometheus metrics: decisions by effect, decision latency, bad requests, reloads by
//! outcome, and the loaded policy's version.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Open connections on each HTTP thread, when HTTP has threads of its own.
    pub(crate) http_connections: std::sync::OnceLock<Vec<std::sync::Arc<AtomicUsize>>>,
}

impl Metrics {
    pub(crate) fn record(&self, allow: bool, latency: Duration) {
        self.record_many(usize::from(allow), usize::from(!allow), latency);
    }

    /// Records a batch's decisions, each taking `latency`.
    pub(crate) fn record_many(&self, allowed: usize, denied: usize, latency: Duration) {
        // A single decision touches only its own effect's counter.
        for (counter, count) in [(&self.allow, allowed), (&self.deny, denied)] {
            if count > 0 {
                counter.fetch_add(count as u64, Ordering::Relaxed);
            }
        }
        let count = (allowed + denied) as u64;
        let seconds = latency.as_secs_f64();
        if let Some(bucket) = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .and_then(|index| self.buckets.get(index))
        {
            bucket.fetch_add(count, Ordering::Relaxed);
        }
        self.latency_count.fetch_add(count, Ordering::Relaxed);
        self.latency_nanos.fetch_add(
            u64::try_from(latency.as_nanos())
                .unwrap_or(u64::MAX)
                .saturating_mul(count),
            Ordering::Relaxed,
        );
    }

    pub(crate) fn render(&self, version: &str, rules: usize, log: Option<&LogCounters>) -> String {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut out = Exposition::default();
        out.family(
            "flowgate_decisions_total",
            "counter",
            "Decisions made, by effect.",
        );
        out.sample(
            "flowgate_decisions_total{effect=\"allow\"}",
            load(&self.allow),
        );
        out.sample(
            "flowgate_decisions_total{effect=\"deny\"}",
            load(&self.deny),
        );
        out.family(
            "flowgate_decision_seconds",
            "histogram",
            "Time the engine spent deciding.",
        );
        let mut cumulative = 0;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += load(bucket);
            out.sample(
                &format!("flowgate_decision_seconds_bucket{{le=\"{bound}\"}}"),
                cumulative,
            );
        }
        let count = load(&self.latency_count);
        out.sample("flowgate_decision_seconds_bucket{le=\"+Inf\"}", count);
        out.sample(
            "flowgate_decision_seconds_sum",
            load(&self.latency_nanos) as f64 / 1e9,
        );
        out.sample("flowgate_decision_seconds_count", count);
        out.family(
            "flowgate_bad_requests_total",
            "counter",
            "Requests rejected with a 4xx.",
        );
        out.sample("flowgate_bad_requests_total", load(&self.bad_requests));
        out.family(
            "flowgate_reloads_total",
            "counter",
            "Policy reloads, by outcome.",
        );
        out.sample(
            "flowgate_reloads_total{outcome=\"ok\"}",
            load(&self.reloads_ok),
        );
        out.sample(
            "flowgate_reloads_total{outcome=\"rejected\"}",
            load(&self.reloads_failed),
        );
        out.family(
            "flowgate_policy_info",
            "gauge",
            "The policy set being served.",
        );
        out.sample(
            &format!("flowgate_policy_info{{version=\"{version}\",rules=\"{rules}\"}}"),
            1,
        );
        if let Some(threads) = self.http_connections.get() {
            out.family(
                "flowgate_http_connections",
                "gauge",
                "Open HTTP connections, by the thread answering them.",
            );
            for (thread, open) in threads.iter().enumerate() {
                out.sample(
                    &format!("flowgate_http_connections{{thread=\"{thread}\"}}"),
                    open.load(Ordering::Relaxed),
                );
            }
        }
        if let Some(log) = log {
            out.family(
                "flowgate_log_queue_depth",
                "gauge",
                "Decision-log lines queued, not yet written.",
            );
            out.sample("flowgate_log_queue_depth", log.depth());
            out.family(
                "flowgate_log_lines_total",
                "counter",
                "Decision-log lines written.",
            );
            out.sample("flowgate_log_lines_total", load(&log.written));
            out.family(
                "flowgate_log_full_total",
                "counter",
                "Decisions that found the log queue full, by what happened.",
            );
            out.sample(
                "flowgate_log_full_total{outcome=\"waited\"}",
                load(&log.waited),
            );
            out.sample(
                "flowgate_log_full_total{outcome=\"denied\"}",
                load(&log.denied_full),
            );
            out.family(
                "flowgate_log_write_errors_total",
                "counter",
                "Lines the log could not write.",
            );
            out.sample("flowgate_log_write_errors_total", load(&log.write_errors));
        }
        out.text
    }
}

/// The Prometheus text format, written a metric family at a time.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, series: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{series} {value}");
    }
}
