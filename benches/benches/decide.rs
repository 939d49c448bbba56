//! Decisions per request by Flowgate's decision table and its reference evaluator, for
//! 10 to 10,000 rules, and a batch of 100.

use std::hint::black_box;

use benches::{Scenario, flowgate};
use compiler::eval::{Decision, decide_reference};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for rules in [10, 100, 1_000, 10_000] {
        let scenario = Scenario::generate(rules, 1_000, 200, 1_000);
        let Some(engine) = flowgate::engine(&scenario) else {
            continue;
        };
        let requests = flowgate::requests(&engine, &scenario);
        let prepared: Vec<_> = requests
            .iter()
            .map(|request| engine.prepare(request.clone()))
            .collect();
        let mut scratch = engine.table().scratch();
        let mut decision = Decision::default();
        let mut next = 0;
        // Requests resolved against the table beforehand, as the peers' requests are built
        // beforehand in the comparison.
        group.bench_with_input(BenchmarkId::new("table", rules), &rules, |b, _| {
            b.iter(|| {
                next = (next + 1) % prepared.len();
                if let Some(request) = prepared.get(next) {
                    engine.decide_into(request, &mut scratch, &mut decision);
                }
                black_box(decision.allow)
            })
        });
        // Requests as a caller builds them once, with the names looked up while deciding.
        group.bench_with_input(
            BenchmarkId::new("table_unprepared", rules),
            &rules,
            |b, _| {
                b.iter(|| {
                    next = (next + 1) % requests.len();
                    if let Some(request) = requests.get(next) {
                        engine.decide_into(request, &mut scratch, &mut decision);
                    }
                    black_box(decision.allow)
                })
            },
        );
        if rules <= 1_000 {
            group.bench_with_input(BenchmarkId::new("reference", rules), &rules, |b, _| {
                b.iter(|| {
                    next = (next + 1) % requests.len();
                    requests.get(next).map(|request| {
                        black_box(decide_reference(engine.policy_set(), request).allow)
                    })
                })
            });
        }
    }
    group.finish();

    let scenario = Scenario::generate(1_000, 1_000, 200, 100);
    if let Some(engine) = flowgate::engine(&scenario) {
        let requests = flowgate::requests(&engine, &scenario);
        let prepared: Vec<_> = requests
            .iter()
            .map(|request| engine.prepare(request.clone()))
            .collect();
        let mut batch = c.benchmark_group("batch");
        batch.throughput(Throughput::Elements(requests.len() as u64));
        batch.bench_function("100_requests_1000_rules", |b| {
            b.iter(|| black_box(engine.decide_batch(&prepared)))
        });
        batch.bench_function("100_unprepared_requests_1000_rules", |b| {
            b.iter(|| black_box(engine.decide_batch(&requests)))
        });
        batch.finish();
    }
}

criterion_group!(benches, decide);
criterion_main!(benches);
