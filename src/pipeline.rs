//! The main job on files: source → (decode → checks → decide, in parallel) → sink.
//!
//! Three threads overlap: a reader cuts the input into batches, the calling thread takes each
//! batch through the [`Stages`] (decode and per-event checks on rayon's workers, the checks
//! that need history in input order, then decide and encode on the workers again), and a
//! writer writes the results. The channels between them hold two batches each, so memory is
//! bounded by a few batches whatever the input's size, and rayon's indexed collect keeps
//! input order.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use time::OffsetDateTime;

use crate::checks::images::ImageCounts;
use crate::checks::price::UnreadablePrices;
use crate::checks::Scratch;
use crate::contract::{Action, DeadLetterReason, SourcePosition};
use crate::metrics::{now_unix_seconds, ErrorStage, KindCounts, Source, Tally};
use crate::moderator::{timestamp, Compiled, Moderator, Outcome, Prepared};
use crate::sink::Output;
use crate::source::{Batch, Input, LineReader};

/// A run over files.
#[derive(Debug, Clone)]
pub struct FileRun {
    pub input: Input,
    pub output: Output,
    /// Standard error when not given.
    pub dead_letter: Output,
    /// Records per batch.
    pub batch_records: usize,
    /// Kept bytes per batch, so that a few huge records cannot fill memory.
    pub batch_bytes: usize,
    /// Bytes of a record kept for its dead letter when it is over the size limit.
    pub max_record_bytes: usize,
    /// Show a progress bar (only drawn for a file input on a terminal).
    pub progress: bool,
    /// A live stream such as stdin: a batch ends with the input buffered so far (no event
    /// waits for later ones), and the outputs are flushed after every batch.
    pub live: bool,
}

/// What a run did, for the closing summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Summary {
    pub events: u64,
    pub decisions: BTreeMap<Action, u64>,
    pub dead_letters: BTreeMap<DeadLetterReason, u64>,
    pub seconds: f64,
    pub events_per_second: f64,
    /// Peak resident memory of the process, where the platform tells it.
    pub peak_rss_bytes: Option<u64>,
    /// Prices the price check could not understand (the moderator's count, as of the end of
    /// the run): they got no price finding.
    pub unreadable_prices: UnreadablePrices,
    /// Listing images hashed, and those that could not be fetched or decoded, by reason.
    pub images: ImageCounts,
    /// Decisions made outside the stream (complaints suppressing listings), not counted in
    /// `events` or `decisions`.
    pub api_decisions: u64,
}

/// What the writer receives: a batch of the stream's outcomes, or decisions from the API.
enum Done {
    Stream(Vec<Outcome>),
    Api(Vec<Outcome>),
}

/// Writes decisions made outside the stream (by the complaint API) to the run's decision
/// output, between two batches of the stream's.
#[derive(Clone)]
pub struct DecisionSender(SyncSender<Done>);

impl DecisionSender {
    /// Queues decisions for the output; false once the output is closed.
    pub fn send(&self, outcomes: Vec<Outcome>) -> bool {
        self.0.send(Done::Api(outcomes)).is_ok()
    }
}

/// Something served beside the run (the complaint API): called on its own thread with a
/// sender into the decision output; the run ends when it returns and the input is done.
pub type Serve<'a> = &'a (dyn Fn(DecisionSender) + Sync);

impl Summary {
    pub fn dead_letter_count(&self) -> u64 {
        self.dead_letters.values().sum()
    }

    /// Counts one outcome.
    pub fn count(&mut self, outcome: &Outcome) {
        self.events += 1;
        match outcome {
            Outcome::Decision { action, .. } => *self.decisions.entry(*action).or_default() += 1,
            Outcome::DeadLetter { reason, .. } => {
                *self.dead_letters.entry(*reason).or_default() += 1
            }
        }
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let decisions: Vec<String> = Action::ALL
            .iter()
            .map(|a| format!("{} {}", a, self.decisions.get(a).copied().unwrap_or(0)))
            .collect();
        // A run of a few slow events (images that time out) is not "0 events/s".
        let rate_digits = if self.events_per_second < 10.0 { 2 } else { 0 };
        write!(
            f,
            "{} events: {}; {} dead letters; {:.2} s, {:.*} events/s",
            self.events,
            decisions.join(", "),
            self.dead_letter_count(),
            self.seconds,
            rate_digits,
            self.events_per_second
        )?;
        if let Some(rss) = self.peak_rss_bytes {
            write!(f, ", peak RSS {:.1} MiB", rss as f64 / (1024.0 * 1024.0))?;
        }
        let prices = &self.unreadable_prices;
        if prices.total() > 0 {
            write!(
                f,
                "; {} prices not understood ({} amount, {} unit, {} currency)",
                prices.total(),
                prices.amount,
                prices.unit,
                prices.currency
            )?;
        }
        let images = &self.images;
        if images.hashed + images.problem_total() > 0 {
            let problems: Vec<String> = images
                .problems
                .iter()
                .map(|(code, n)| format!("{n} {code}"))
                .collect();
            write!(
                f,
                "; {} images hashed ({} too plain to match), {} not ({})",
                images.hashed,
                images.low_detail,
                images.problem_total(),
                problems.join(", ")
            )?;
        }
        Ok(())
    }
}

/// The three steps a pipeline runs each batch through: `prepare` every record in parallel
/// (`read` it, then `check` it), `observe` the batch in input order, `finish` every record in
/// parallel.
pub trait Stages: Sync {
    type Item: Send;
    /// What a whole batch is decided with, taken once when the batch starts: the rule set in
    /// use then, so that a reload never splits a batch between two versions.
    type Batch: Send + Sync;

    fn begin(&self) -> Self::Batch;

    /// Decodes a record (or makes its dead letter).
    fn prepare(
        &self,
        batch: &Self::Batch,
        record: Record<'_>,
        scratch: &mut Scratch,
        now: &str,
    ) -> Self::Item;

    /// The per-event checks of a prepared record.
    fn check(&self, _batch: &Self::Batch, _item: &mut Self::Item, _scratch: &mut Scratch) {}

    fn observe(&self, _batch: &Self::Batch, _items: &mut [Self::Item]) {}

    fn finish(&self, batch: &Self::Batch, item: Self::Item, now: &str) -> Outcome;
}

/// One record as a source read it.
#[derive(Clone, Copy)]
pub struct Record<'a> {
    /// What the source kept of the record: all of it unless it was over the size limit.
    pub kept: &'a [u8],
    pub total_len: u64,
    /// Where it came from; only computed for dead letters.
    pub position: &'a (dyn Fn() -> SourcePosition + Sync),
}

impl Stages for Moderator {
    type Item = Prepared;
    type Batch = Arc<Compiled>;

    fn begin(&self) -> Arc<Compiled> {
        self.snapshot()
    }

    fn prepare(
        &self,
        _: &Arc<Compiled>,
        record: Record<'_>,
        _: &mut Scratch,
        now: &str,
    ) -> Prepared {
        self.decode_record(record.kept, record.total_len, record.position, now)
    }

    fn check(&self, compiled: &Arc<Compiled>, item: &mut Prepared, scratch: &mut Scratch) {
        self.inspect(compiled, item, scratch);
    }

    fn observe(&self, compiled: &Arc<Compiled>, batch: &mut [Prepared]) {
        self.observe_batch(compiled, batch);
    }

    fn finish(&self, compiled: &Arc<Compiled>, item: Prepared, now: &str) -> Outcome {
        Moderator::finish_with(self, compiled, item, now)
    }
}

/// The JSON ceiling: decode every record and encode the event again, with no checks.
struct Ceiling;

impl Stages for Ceiling {
    type Item = Outcome;
    type Batch = ();

    fn begin(&self) {}

    fn prepare(&self, _: &(), record: Record<'_>, _: &mut Scratch, _: &str) -> Outcome {
        match crate::decode::decode(record.kept) {
            Ok(decoded) => {
                let mut line = serde_json::to_vec(&decoded.event).unwrap_or_default();
                line.push(b'\n');
                Outcome::Decision {
                    action: Action::Pass,
                    key: decoded.event.listing.id,
                    line,
                    findings: KindCounts::default(),
                    occurred_at: None,
                }
            }
            Err(err) => Outcome::DeadLetter {
                reason: err.reason,
                line: Vec::new(),
            },
        }
    }

    fn finish(&self, _: &(), item: Outcome, _: &str) -> Outcome {
        item
    }
}

/// Runs the main job. Bad records become dead letters; only an input that cannot be read or
/// an output that cannot be written ends the run with an error.
pub fn run_files(run: &FileRun, moderator: &Moderator) -> io::Result<Summary> {
    run_files_serving(run, moderator, None)
}

/// [`run_files`], with `serve` running beside it until it returns.
pub fn run_files_serving(
    run: &FileRun,
    moderator: &Moderator,
    serve: Option<Serve<'_>>,
) -> io::Result<Summary> {
    refuse_overlapping_files(run)?;
    let summary = run_stages(run, moderator, serve)?;
    Ok(Summary {
        unreadable_prices: moderator.unreadable_prices(),
        images: moderator.image_counts(),
        ..summary
    })
}

/// Refuses a run whose outputs would truncate its input or each other before a line is read.
fn refuse_overlapping_files(run: &FileRun) -> io::Result<()> {
    let refuse = |what: &str, other: &str, path: &std::path::Path| {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what} names the same file as {other} ({}); refusing to write over it",
                path.display()
            ),
        ))
    };
    if let Input::Path(input) = &run.input {
        if run.output.is_file(input) {
            return refuse("the output", "the input", input);
        }
        if run.dead_letter.is_file(input) {
            return refuse("the dead-letter output", "the input", input);
        }
    }
    if let Output::Path(output) = &run.output {
        if run.dead_letter.is_file(output) {
            return refuse("the dead-letter output", "the output", output);
        }
    }
    Ok(())
}

/// Decodes every record and encodes the event again, in the same pipeline and threads as
/// [`run_files`] but with no checks: the ceiling `run`'s throughput is measured against.
pub fn run_ceiling(input: &Input, output: &Output) -> io::Result<Summary> {
    let run = FileRun {
        input: input.clone(),
        output: output.clone(),
        dead_letter: Output::Stderr,
        batch_records: 2048,
        batch_bytes: 32 * 1024 * 1024,
        max_record_bytes: 1024 * 1024,
        progress: false,
        live: false,
    };
    run_stages(&run, &Ceiling, None)
}

fn run_stages<S: Stages>(
    run: &FileRun,
    stages: &S,
    serve: Option<Serve<'_>>,
) -> io::Result<Summary> {
    let started = Instant::now();
    let (reader, input_len) = run.input.open().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot open {}: {err}", run.input.name()),
        )
    })?;
    let mut decisions = run.output.create().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot create {}: {err}", run.output.name()),
        )
    })?;
    let mut dead_letters = run.dead_letter.create().map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("cannot create {}: {err}", run.dead_letter.name()),
        )
    })?;
    let progress = progress_bar(run, input_len);
    let input_name = run.input.name();
    let metrics = crate::metrics::global();

    let (batch_tx, batch_rx) = sync_channel::<Batch>(2);
    let (done_tx, done_rx) = sync_channel::<Done>(2);

    let summary = std::thread::scope(|scope| -> io::Result<Summary> {
        let serving = serve.map(|serve| {
            let sender = DecisionSender(done_tx.clone());
            scope.spawn(move || serve(sender))
        });
        let reader_progress = progress.clone();
        let reading = scope.spawn(move || -> io::Result<()> {
            let mut lines = LineReader::new(reader, run.max_record_bytes).live(run.live);
            loop {
                let batch = lines.next_batch(run.batch_records, run.batch_bytes)?;
                if batch.is_empty() {
                    return Ok(());
                }
                reader_progress.set_position(lines.consumed());
                metrics.in_flight().add(batch.records.len() as i64);
                if batch_tx.send(batch).is_err() {
                    // The writer stopped on an error of its own; it reports it.
                    return Ok(());
                }
            }
        });

        let api_serving = serving.is_some();
        let writing = scope.spawn(move || -> io::Result<Summary> {
            let mut summary = Summary::default();
            let mut tally = Tally::new(Source::File);
            for done in done_rx {
                let outcomes = match done {
                    Done::Stream(outcomes) => outcomes,
                    Done::Api(outcomes) => {
                        for outcome in &outcomes {
                            if let Outcome::Decision { line, .. } = outcome {
                                summary.api_decisions += 1;
                                tally.count(outcome);
                                decisions.write_record(line)?;
                            }
                        }
                        // A complaint's suppressions are due at once, not at the next batch.
                        decisions.flush()?;
                        metrics.add(&tally, now_unix_seconds());
                        tally.clear();
                        continue;
                    }
                };
                for outcome in &outcomes {
                    summary.count(outcome);
                    tally.count(outcome);
                    let written = match outcome {
                        Outcome::Decision { line, .. } => decisions.write_record(line),
                        Outcome::DeadLetter { line, .. } => dead_letters.write_record(line),
                    };
                    if let Err(err) = written {
                        metrics.count_error(ErrorStage::Write);
                        return Err(err);
                    }
                }
                // A live stream (stdin), or a run that goes on serving the API after its input
                // ends, is written as it is decided, not when a buffer fills.
                if run.live || api_serving {
                    decisions.flush()?;
                    dead_letters.flush()?;
                }
                metrics.add(&tally, now_unix_seconds());
                metrics.in_flight().sub(outcomes.len() as i64);
                tally.clear();
            }
            decisions.flush()?;
            dead_letters.flush()?;
            Ok(summary)
        });

        // The ordered stage of one batch runs on its own thread while the next batch is
        // prepared, so that the workers do not wait for it; a batch waits for it at most.
        let (prepared_tx, prepared_rx) = sync_channel::<PreparedBatch<S>>(1);
        let stream_tx = done_tx.clone();
        let ordering = scope.spawn(move || {
            for prepared in prepared_rx {
                let outcomes = finish_batch(stages, prepared);
                if stream_tx.send(Done::Stream(outcomes)).is_err() {
                    break;
                }
            }
        });
        drop(done_tx);
        for batch in batch_rx {
            let now = timestamp(OffsetDateTime::now_utc());
            let prepared = prepare_batch(
                stages,
                batch.records.len(),
                now,
                |ctx, index, scratch, now| {
                    let meta = &batch.records[index];
                    let position = || SourcePosition::File {
                        file: input_name.clone(),
                        line: meta.line,
                    };
                    let record = Record {
                        kept: batch.bytes(meta),
                        total_len: meta.total_len,
                        position: &position,
                    };
                    stages.prepare(ctx, record, scratch, now)
                },
            );
            if prepared_tx.send(prepared).is_err() {
                break;
            }
        }
        drop(prepared_tx);
        join_unit(ordering.join());
        if let Some(serving) = serving {
            join_unit(serving.join());
        }

        let written = join(writing.join())?;
        join(reading.join())?;
        Ok(written)
    })?;

    progress.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        seconds,
        events_per_second: summary.events as f64 / seconds.max(f64::EPSILON),
        peak_rss_bytes: peak_rss_bytes(),
        ..summary
    })
}

/// Takes one batch of `len` records through the stages and returns their outcomes in order:
/// `prepare(batch, index, scratch)` prepares record `index` on a rayon worker, with what
/// [`Stages::begin`] gave for the batch.
pub fn process_batch<S, P>(stages: &S, len: usize, now: &str, prepare: P) -> Vec<Outcome>
where
    S: Stages,
    P: Fn(&S::Batch, usize, &mut Scratch) -> S::Item + Sync,
{
    let prepared = prepare_batch(stages, len, now.to_owned(), |batch, index, scratch, _| {
        prepare(batch, index, scratch)
    });
    finish_batch(stages, prepared)
}

/// Records decoded before the first of them is checked.
const PREPARE_CHUNK: usize = 32;

/// A batch through its parallel stage, waiting for its ordered one.
pub struct PreparedBatch<S: Stages> {
    batch: S::Batch,
    items: Vec<S::Item>,
    now: String,
}

/// The parallel half of [`process_batch`].
pub(crate) fn prepare_batch<S, P>(
    stages: &S,
    len: usize,
    now: String,
    prepare: P,
) -> PreparedBatch<S>
where
    S: Stages,
    P: Fn(&S::Batch, usize, &mut Scratch, &str) -> S::Item + Sync,
{
    let batch = stages.begin();
    // A chunk of records is decoded, then checked: decoding and the checks each run through
    // tens of kilobytes of code, and taking one record through both at a time made each
    // evict the other from the instruction cache for every record.
    let chunks = len.div_ceil(PREPARE_CHUNK);
    let items = (0..chunks)
        .into_par_iter()
        .map_init(Scratch::default, |scratch, chunk| {
            let records = chunk * PREPARE_CHUNK..len.min((chunk + 1) * PREPARE_CHUNK);
            let mut items: Vec<S::Item> = records
                .map(|index| prepare(&batch, index, scratch, &now))
                .collect();
            for item in &mut items {
                stages.check(&batch, item, scratch);
            }
            items
        })
        .flat_map_iter(Vec::into_iter)
        .collect();
    PreparedBatch { batch, items, now }
}

/// The ordered half of [`process_batch`]: the checks that need history, in input order, then
/// deciding and encoding in parallel.
pub(crate) fn finish_batch<S: Stages>(stages: &S, prepared: PreparedBatch<S>) -> Vec<Outcome> {
    let PreparedBatch {
        batch,
        mut items,
        now,
    } = prepared;
    stages.observe(&batch, &mut items);
    items
        .into_par_iter()
        .map(|item| stages.finish(&batch, item, &now))
        .collect()
}

fn join_unit(result: std::thread::Result<()>) {
    if let Err(panic) = result {
        std::panic::resume_unwind(panic)
    }
}

fn join<T>(result: std::thread::Result<io::Result<T>>) -> io::Result<T> {
    match result {
        Ok(inner) => inner,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn progress_bar(run: &FileRun, input_len: Option<u64>) -> ProgressBar {
    let (true, Some(len)) = (run.progress && io::stderr().is_terminal(), input_len) else {
        return ProgressBar::hidden();
    };
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The process's peak resident set size, from `/proc/self/status` on Linux.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::Summary;

    #[test]
    fn a_slow_run_shows_its_rate_to_the_hundredth() {
        let slow = Summary {
            events: 1,
            seconds: 20.03,
            events_per_second: 1.0 / 20.03,
            ..Summary::default()
        };
        assert!(
            slow.to_string().contains("; 20.03 s, 0.05 events/s"),
            "{slow}"
        );
        let fast = Summary {
            events: 56,
            seconds: 0.0017,
            events_per_second: 32_351.4,
            ..Summary::default()
        };
        assert!(
            fast.to_string().contains("; 0.00 s, 32351 events/s"),
            "{fast}"
        );
    }
}
