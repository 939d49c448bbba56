//! Parse + check, the whole compile (parse + check + lowering to the decision table), and
//! formatting of a generated 10,000-rule set (about 1 MB).

use std::hint::black_box;

use compiler::source::SourceSet;
use compiler::{CheckOptions, analyze};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn front_end(c: &mut Criterion) {
    let text = benches::estate(10_000, 1_000, 200);
    let mut group = c.benchmark_group("front_end_10k_rules");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    group.bench_function("parse_and_check", |b| {
        b.iter(|| {
            let mut sources = SourceSet::new();
            sources.add("estate.gate", text.as_str());
            let analysis = analyze(&sources, &CheckOptions::at(0));
            assert!(analysis.diagnostics.is_empty());
            black_box(analysis.policy_set)
        })
    });
    group.bench_function("compile", |b| {
        b.iter(|| {
            let mut sources = SourceSet::new();
            sources.add("estate.gate", text.as_str());
            let analysis = analyze(&sources, &CheckOptions::at(0));
            black_box(analysis.policy_set.map(|set| compiler::lower::lower(&set)))
        })
    });
    let mut sources = SourceSet::new();
    let file = sources.add("estate.gate", text.as_str());
    let (parsed, _) = compiler::check::parse_file(&sources, file);
    group.bench_function("format", |b| {
        b.iter(|| {
            black_box(compiler::fmt::format_file(
                &text,
                &parsed.ast,
                &parsed.comments,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, front_end);
criterion_main!(benches);
