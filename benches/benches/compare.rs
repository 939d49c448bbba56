//! Flowgate side by side with Cedar, Rego (regorus) and Casbin on one generated scenario.
//! Every engine's answers are checked equal to Flowgate's before anything is timed.
//! `cargo bench -p benches --features compare --bench compare` rewrites the results table
//! in `benches/README.md`.

#![allow(
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a benchmark stops loudly when a peer cannot be set up or disagrees"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write as _;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use benches::peers::Peer;
use benches::peers::casbin::Casbin;
use benches::peers::cedar::Cedar;
use benches::peers::rego::Rego;
use benches::{Scenario, flowgate};
use compiler::eval::{Decision, Request, decide_reference};

/// Counts live heap bytes, so each engine's memory is measured the same way. The only
/// unsafe code in the workspace: a global allocator must implement the unsafe trait.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

#[allow(
    unsafe_code,
    reason = "forwarding to the system allocator is the only way to count bytes"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const DAGS: usize = 1_000;
const HOSTS: usize = 200;
const REQUESTS: usize = 1_000;
/// Time spent sampling one engine at one size.
const BUDGET: Duration = Duration::from_secs(3);

struct Row {
    engine: &'static str,
    rules: usize,
    median_ns: f64,
    p99_ns: f64,
    build: Duration,
    memory: isize,
    /// For Flowgate: the decision table's own indexes, apart from the checked policy set.
    table_bytes: Option<usize>,
}

/// Per-decision latencies: decisions are timed in groups sized so one group takes about a
/// microsecond or more, and each group's mean is one sample.
fn sample(mut decide: impl FnMut(usize) -> bool, requests: usize) -> (f64, f64) {
    let start = Instant::now();
    let mut probe = 0;
    while start.elapsed() < Duration::from_millis(50) && probe < requests {
        black_box(decide(probe));
        probe += 1;
    }
    let per_decision = start.elapsed().as_nanos() as f64 / probe.max(1) as f64;
    let group = ((2_000.0 / per_decision).ceil() as usize).clamp(1, 256);
    let mut samples = Vec::new();
    let began = Instant::now();
    let mut next = 0;
    while began.elapsed() < BUDGET || samples.len() < 20 {
        let clock = Instant::now();
        for _ in 0..group {
            black_box(decide(next % requests));
            next += 1;
        }
        samples.push(clock.elapsed().as_nanos() as f64 / group as f64);
        if samples.len() >= 200_000 {
            break;
        }
    }
    samples.sort_by(f64::total_cmp);
    let at = |fraction: f64| {
        samples
            .get(((samples.len() - 1) as f64 * fraction) as usize)
            .copied()
            .unwrap_or_default()
    };
    (at(0.5), at(0.99))
}

fn measure<T>(build: impl FnOnce() -> Option<T>) -> Option<(T, Duration, isize)> {
    let before = LIVE.load(Ordering::Relaxed);
    let clock = Instant::now();
    let built = build()?;
    let elapsed = clock.elapsed();
    Some((built, elapsed, LIVE.load(Ordering::Relaxed) - before))
}

/// Builds a peer (timed, with its memory counted), prepares its requests, checks its
/// answers against Flowgate's, then times its decisions.
fn time_peer<P: Peer>(
    name: &'static str,
    rules: usize,
    expected: &[bool],
    build: impl FnOnce() -> Option<P>,
    prepare: impl FnOnce(&mut P) -> Option<()>,
) -> Row {
    let (mut peer, build, memory) = measure(build).expect("the peer accepts the scenario");
    // Requests in the peer's own form are built before timing, outside the build time.
    prepare(&mut peer).expect("the peer accepts the requests");
    check(name, rules, expected, &mut peer);
    let (median, p99) = sample(|index| peer.decide(index), REQUESTS);
    Row {
        engine: name,
        rules,
        median_ns: median,
        p99_ns: p99,
        build,
        memory,
        table_bytes: None,
    }
}

fn check(name: &str, rules: usize, expected: &[bool], peer: &mut dyn Peer) {
    for (index, want) in expected.iter().enumerate() {
        let got = peer.decide(index);
        assert_eq!(
            got, *want,
            "{name} disagrees with Flowgate at {rules} rules on request {index}"
        );
    }
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut batch_note = String::new();
    for rules in SIZES {
        let scenario = Scenario::generate(rules, DAGS, HOSTS, REQUESTS);
        let (engine, build, memory) =
            measure(|| flowgate::engine(&scenario)).expect("the scenario compiles");
        let requests = flowgate::requests(&engine, &scenario);
        assert_eq!(requests.len(), REQUESTS);
        let expected: Vec<bool> = requests
            .iter()
            .map(|request| engine.decide(request).allow)
            .collect();
        let allows = expected.iter().filter(|allow| **allow).count();
        println!("{rules} rules: {allows} of {REQUESTS} requests allowed");
        for request in &requests {
            assert_eq!(
                decide_reference(engine.policy_set(), request),
                engine.decide(request)
            );
        }
        // Resolved against the table beforehand, as the peers' requests are built
        // beforehand below.
        let prepared: Vec<_> = requests
            .iter()
            .map(|request| engine.prepare(request.clone()))
            .collect();
        let mut timed = |name: &'static str, table_bytes: Option<usize>, batch: &[&Request]| {
            let mut scratch = engine.table().scratch();
            let mut decision = Decision::default();
            let (median, p99) = sample(
                |index| {
                    if let Some(request) = batch.get(index) {
                        engine.decide_into(request, &mut scratch, &mut decision);
                    }
                    decision.allow
                },
                requests.len(),
            );
            rows.push(Row {
                engine: name,
                rules,
                median_ns: median,
                p99_ns: p99,
                build,
                memory,
                table_bytes,
            });
        };
        let prepared_refs: Vec<&Request> = prepared.iter().map(|request| &**request).collect();
        let plain_refs: Vec<&Request> = requests.iter().collect();
        timed(
            "Flowgate table",
            Some(engine.table().index_bytes()),
            &prepared_refs,
        );
        timed(
            "Flowgate table, names looked up while deciding",
            None,
            &plain_refs,
        );
        let (median, p99) = sample(
            |index| {
                requests
                    .get(index)
                    .is_some_and(|request| decide_reference(engine.policy_set(), request).allow)
            },
            requests.len(),
        );
        rows.push(Row {
            engine: "Flowgate reference",
            rules,
            median_ns: median,
            p99_ns: p99,
            build,
            memory,
            table_bytes: None,
        });
        if rules == 1_000 {
            let prepared_batch: Vec<_> = prepared.iter().take(100).cloned().collect();
            let plain_batch: Vec<_> = requests.iter().take(100).cloned().collect();
            let time_batch = |decide: &dyn Fn()| {
                let clock = Instant::now();
                let rounds = 2_000;
                for _ in 0..rounds {
                    decide();
                }
                (clock.elapsed() / rounds).as_nanos() as f64 / 1_000.0
            };
            let prepared_micros = time_batch(&|| {
                black_box(engine.decide_batch(&prepared_batch));
            });
            let plain_micros = time_batch(&|| {
                black_box(engine.decide_batch(&plain_batch));
            });
            let _ = write!(
                batch_note,
                "A batch of 100 decisions at 1,000 rules takes {prepared_micros:.1} µs prepared, \
                 {plain_micros:.1} µs with names looked up (`Engine::decide_batch`).",
            );
        }

        rows.push(time_peer(
            "Cedar (cedar-policy 4.14)",
            rules,
            &expected,
            || Cedar::build(&scenario),
            |cedar| cedar.prepare(&scenario),
        ));
        rows.push(time_peer(
            "Rego, grants indexed in data (regorus 0.14)",
            rules,
            &expected,
            || Rego::build(&scenario),
            |rego| rego.prepare(&scenario),
        ));
        rows.push(time_peer(
            "Casbin (casbin 2.20)",
            rules,
            &expected,
            || Casbin::build(&scenario),
            |casbin| casbin.prepare(&scenario),
        ));
    }
    let table = render(&rows, &batch_note);
    println!("{table}");
    let readme = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
    if let Ok(text) = std::fs::read_to_string(readme)
        && let (Some(start), Some(end)) = (text.find(BEGIN), text.find(END))
    {
        let updated = format!("{}{BEGIN}\n{table}{}", &text[..start], &text[end..]);
        let _ = std::fs::write(readme, updated);
    }
}

const BEGIN: &str = "<!-- results: written by the compare benchmark -->";
const END: &str = "<!-- end of results -->";

fn human(nanos: f64) -> String {
    if nanos >= 1_000_000.0 {
        format!("{:.2} ms", nanos / 1_000_000.0)
    } else if nanos >= 1_000.0 {
        format!("{:.2} µs", nanos / 1_000.0)
    } else {
        format!("{nanos:.0} ns")
    }
}

fn render(rows: &[Row], batch_note: &str) -> String {
    let mut out = String::from(
        "| engine | rules | median / decision | p99 | build (load + compile) | memory |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let table = row
            .table_bytes
            .map(|bytes| format!(" (table {:.1} MB)", bytes as f64 / 1_048_576.0))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} ms | {:.1} MB{table} |",
            row.engine,
            row.rules,
            human(row.median_ns),
            human(row.p99_ns),
            row.build.as_secs_f64() * 1_000.0,
            row.memory as f64 / 1_048_576.0
        );
    }
    out.push('\n');
    for rules in SIZES {
        let median = |name: &str| {
            rows.iter()
                .find(|row| row.rules == rules && row.engine.starts_with(name))
                .map(|row| row.median_ns)
        };
        if let (Some(ours), Some(cedar), Some(rego), Some(casbin)) = (
            median("Flowgate table"),
            median("Cedar"),
            median("Rego"),
            median("Casbin"),
        ) {
            let _ = writeln!(
                out,
                "- {rules} rules: the table is {:.0}× faster than Cedar, {:.0}× faster than Rego, {:.0}× faster than Casbin.",
                cedar / ours,
                rego / ours,
                casbin / ours
            );
        }
    }
    if !batch_note.is_empty() {
        let _ = writeln!(out, "- {batch_note}");
    }
    out
}
