//! End-to-end throughput of `loomguard run` against the JSON ceiling, in one process and one
//! run so that the ratio is not blurred by a noisy, shared machine.
//!
//! ```text
//! cargo bench --bench throughput -- [EVENTS] [THREADS] [ROUNDS]
//! ```
//!
//! Generates EVENTS (default 1,000,000) realistic events into `target/` (kept for reruns),
//! then times, ROUNDS times (default 3) in turn, (1) the ceiling, a bare decode-and-re-encode
//! pass over the file, and (2) the full run with every check, both through the same pipeline
//! and threads, writing to /dev/null. Reports events/s and peak RSS of each pass, the ratio
//! of each round, and the median ratio: alternating the two keeps a neighbour's burst of work
//! from landing on one side of the ratio only.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use loomguard::moderator::Moderator;
use loomguard::pipeline::{peak_rss_bytes, run_ceiling, run_files, FileRun, Summary};
use loomguard::rules::RuleSet;
use loomguard::sink::{Output, OutputWriter};
use loomguard::source::Input;

// The same allocator as the binary, so that the figures are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; only plain numbers are ours.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let events = numbers.first().copied().unwrap_or(1_000_000);
    let rounds = numbers.get(2).copied().unwrap_or(3).max(1);
    if let Some(&threads) = numbers.get(1) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads as usize)
            .build_global()?;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let input = root.join(format!("target/throughput-{events}.jsonl"));
    if !input.exists() {
        generate(&input, events)?;
    }
    let input_bytes = std::fs::metadata(&input)?.len();

    let rules = Arc::new(RuleSet::load(&root.join("rules"))?);
    let sink = Output::Path(PathBuf::from("/dev/null"));

    println!(
        "input: {} events, {:.0} MiB, {} threads",
        events,
        input_bytes as f64 / 1048576.0,
        rayon::current_num_threads()
    );
    let mut ratios = Vec::new();
    let mut runs = Vec::new();
    for round in 1..=rounds {
        reset_peak_rss();
        let ceiling = run_ceiling(&Input::Path(input.clone()), &sink)?;
        // A fresh state each round, so that no round meets the listings of the one before.
        let moderator = Moderator::new(rules.clone(), 1 << 20)?;
        reset_peak_rss();
        let run = run_files(
            &FileRun {
                input: Input::Path(input.clone()),
                output: sink.clone(),
                dead_letter: sink.clone(),
                batch_records: 2048,
                batch_bytes: 32 * 1024 * 1024,
                max_record_bytes: 1 << 20,
                progress: false,
                live: false,
            },
            &moderator,
        )?;
        println!("round {round}:");
        report("  ceiling (decode + re-encode)", &ceiling);
        report("  run (decode + checks + decide + encode)", &run);
        let ratio = run.events_per_second / ceiling.events_per_second;
        println!("  run / ceiling: {:.1} %", 100.0 * ratio);
        ratios.push(ratio);
        runs.push(run.events_per_second);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    println!("median run / ceiling: {:.1} %", 100.0 * median(&mut ratios));
    println!(
        "median run per thread: {:.0} events/s",
        median(&mut runs) / rayon::current_num_threads() as f64
    );
    Ok(())
}

fn generate(path: &Path, events: u64) -> std::io::Result<()> {
    eprintln!("generating {events} events into {}", path.display());
    let mut out: OutputWriter = Output::Path(path.to_owned()).create()?;
    loomguard::generate::write_events(events, 7, |line| out.write_record(line))?;
    out.flush()
}

fn report(name: &str, summary: &Summary) {
    println!(
        "{name}: {:.0} events/s, {:.2} s, peak RSS {:.1} MiB",
        summary.events_per_second,
        summary.seconds,
        summary.peak_rss_bytes.unwrap_or(0) as f64 / 1048576.0
    );
}

/// Resets the kernel's peak-RSS mark so that each pass reports its own peak (Linux only;
/// elsewhere the second figure includes the first).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let _ = peak_rss_bytes();
}
