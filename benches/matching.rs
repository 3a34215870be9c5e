//! The matching stage on realistic events: normalisation alone, the term packs over one event,
//! and a whole event through decode → checks → decide, for comparison; and what counting the
//! metrics adds to an event.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use loomguard::checks::Scratch;
use loomguard::contract::{Action, Finding, Kind};
use loomguard::decode::decode;
use loomguard::metrics::{unix_seconds, KindCounts, Source, Tally};
use loomguard::moderator::Moderator;
use loomguard::normalize::{Normalized, Normalizer};
use loomguard::rules::RuleSet;

const EVENTS: u64 = 2_000;

fn generated() -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    loomguard::generate::write_events(EVENTS, 7, |line| {
        lines.push(line.trim_ascii_end().to_vec());
        Ok(())
    })
    .expect("generating into memory cannot fail");
    lines
}

fn matching(c: &mut Criterion) {
    let rules = RuleSet::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
        .unwrap_or_else(|err| panic!("{err}"));
    let moderator = Moderator::new(Arc::new(rules), 1 << 20).expect("rules compile");
    let lines = generated();
    let events: Vec<_> = lines
        .iter()
        .map(|l| decode(l).expect("generated events decode"))
        .collect();
    let text_bytes: u64 = events
        .iter()
        .flat_map(|d| d.event.text_fields().map(|(_, t)| t.len() as u64))
        .sum();

    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Bytes(text_bytes));
    group.bench_function("normalize", |b| {
        let mut out = Normalized::default();
        b.iter(|| {
            for decoded in &events {
                for (_, text) in decoded.event.text_fields() {
                    Normalizer.normalize_into(text, &mut out);
                    black_box(out.text().len());
                }
            }
        })
    });
    group.bench_function("terms", |b| {
        let mut scratch = Scratch::default();
        let mut findings: Vec<Finding> = Vec::new();
        let checks = moderator.checks();
        b.iter(|| {
            for decoded in &events {
                findings.clear();
                checks
                    .terms()
                    .scan(&decoded.event, &mut scratch, &mut findings);
                black_box(findings.len());
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("event");
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("decode", |b| {
        b.iter(|| {
            for line in &lines {
                black_box(decode(line).is_ok());
            }
        })
    });
    group.bench_function("decode_check_decide_encode", |b| {
        let mut scratch = Scratch::default();
        b.iter(|| {
            for line in &lines {
                let prepared = moderator.prepare(
                    line,
                    line.len() as u64,
                    &|| unreachable!("generated events are valid"),
                    &mut scratch,
                    "2026-12-02T09:15:00.000Z",
                );
                let outcome = moderator.finish(prepared, "2026-12-02T09:15:00.000Z");
                black_box(outcome);
            }
        })
    });
    // What the metrics add to each event: reading occurred_at, counting the findings by kind,
    // and the writer's tally (added to the shared counters once per batch of 2048).
    group.bench_function("metrics_counting", |b| {
        let metrics = loomguard::metrics::Metrics::new();
        let mut tally = Tally::new(Source::File);
        let kinds = [Kind::TermsAdlaw, Kind::Price];
        b.iter(|| {
            for (n, decoded) in events.iter().enumerate() {
                let counts = KindCounts::of(&kinds[..n % 3]);
                let occurred = unix_seconds(&decoded.event.occurred_at);
                tally.decision(Action::Pass, &counts, occurred);
                if n % 2048 == 2047 {
                    metrics.add(&tally, 1.8e9);
                    tally.clear();
                }
            }
            black_box(&tally);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = matching
}
criterion_main!(benches);
