//! Counting on the hot path: a batch's results added up by one thread ([`Tally`]) before they
//! reach the shared metrics, and the sampled timing of the checks ([`CheckClock`]).

use std::cell::Cell;
use std::time::Instant;

use super::{global, Check, ReasonClass, Source, CHECK_SAMPLE_EVERY};
use crate::contract::{Action, DeadLetterReason, Kind};
use crate::moderator::Outcome;

/// One batch's results, counted by the thread that writes or acknowledges them and added to
/// the shared metrics once.
#[derive(Debug, Clone)]
pub struct Tally {
    pub source: Source,
    pub(super) decisions: [u64; Action::ALL.len()],
    pub(super) findings: [u64; Kind::ALL.len()],
    pub(super) dead_letters: [u64; ReasonClass::ALL.len()],
    /// `occurred_at` of each decided event that has a readable one, in Unix seconds.
    pub(super) occurred: Vec<f64>,
}

impl Tally {
    pub fn new(source: Source) -> Tally {
        Tally {
            source,
            decisions: [0; Action::ALL.len()],
            findings: [0; Kind::ALL.len()],
            dead_letters: [0; ReasonClass::ALL.len()],
            occurred: Vec::new(),
        }
    }

    /// Counts a decision: its action, its findings by kind, and when the event occurred
    /// (Unix seconds), if it said so readably.
    pub fn decision(&mut self, action: Action, kinds: &KindCounts, occurred_at: Option<f64>) {
        self.decisions[action as usize] += 1;
        for (total, n) in self.findings.iter_mut().zip(kinds.0) {
            *total += u64::from(n);
        }
        self.occurred.extend(occurred_at);
    }

    /// Counts one outcome of a batch.
    pub fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Decision {
                action,
                findings,
                occurred_at,
                ..
            } => self.decision(*action, findings, *occurred_at),
            Outcome::DeadLetter { reason, .. } => self.dead_letter(*reason),
        }
    }

    pub fn dead_letter(&mut self, reason: DeadLetterReason) {
        self.dead_letters[ReasonClass::of(reason) as usize] += 1;
    }

    pub(super) fn decided(&self) -> u64 {
        self.decisions.iter().sum()
    }

    pub(super) fn dead(&self) -> u64 {
        self.dead_letters.iter().sum()
    }

    /// Empties the tally for the next batch, keeping its buffers.
    pub fn clear(&mut self) {
        *self = Tally {
            occurred: std::mem::take(&mut self.occurred),
            ..Tally::new(self.source)
        };
        self.occurred.clear();
    }
}

/// How many findings of each kind one decision holds (saturating at 255, far above any
/// decision's findings cap).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCounts(pub [u8; Kind::ALL.len()]);

impl KindCounts {
    pub fn of<'a>(kinds: impl IntoIterator<Item = &'a Kind>) -> KindCounts {
        let mut counts = KindCounts::default();
        for kind in kinds {
            let slot = &mut counts.0[*kind as usize];
            *slot = slot.saturating_add(1);
        }
        counts
    }
}

/// Times the checks of one event when this thread's turn to sample has come; otherwise every
/// call is a branch and nothing more.
#[derive(Debug)]
pub struct CheckClock {
    last: Option<Instant>,
}

thread_local! {
    // One countdown per half: a thread may run both halves of an event one after the other
    // (rayon runs a one-event batch on the calling thread), and a shared countdown would then
    // sample only the half that happens to come first.
    static UNTIL_SAMPLE: Cell<u32> = const { Cell::new(0) };
    static UNTIL_SAMPLE_ORDERED: Cell<u32> = const { Cell::new(0) };
}

/// Counts down `left`; true, and starts again, when it reaches zero.
fn take_turn(left: &Cell<u32>) -> bool {
    let now = left.get();
    if now == 0 {
        left.set(CHECK_SAMPLE_EVERY - 1);
        true
    } else {
        left.set(now - 1);
        false
    }
}

impl CheckClock {
    /// Starts timing the parallel checks if this event is the thread's one in
    /// [`CHECK_SAMPLE_EVERY`].
    pub fn start() -> CheckClock {
        CheckClock {
            last: UNTIL_SAMPLE.with(take_turn).then(Instant::now),
        }
    }

    /// Starts timing the ordered checks, on a countdown of their own.
    pub fn start_ordered() -> CheckClock {
        CheckClock {
            last: UNTIL_SAMPLE_ORDERED.with(take_turn).then(Instant::now),
        }
    }

    /// A clock that never times, for callers outside the pipeline.
    pub fn off() -> CheckClock {
        CheckClock { last: None }
    }

    /// Records the time since the previous lap as `check`'s.
    pub fn lap(&mut self, check: Check) {
        if let Some(last) = self.last {
            let now = Instant::now();
            global()
                .check_seconds(check)
                .observe(now.duration_since(last).as_secs_f64());
            self.last = Some(now);
        }
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time, as events carry it in `occurred_at`.
pub fn unix_seconds(rfc3339: &str) -> Option<f64> {
    let at = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .ok()?;
    Some(at.unix_timestamp_nanos() as f64 / 1e9)
}

/// Seconds since the Unix epoch now.
pub fn now_unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_are_sampled_when_one_thread_runs_them_in_turn() {
        let (mut parallel, mut ordered) = (0, 0);
        for _ in 0..CHECK_SAMPLE_EVERY * 4 {
            parallel += usize::from(CheckClock::start().last.is_some());
            ordered += usize::from(CheckClock::start_ordered().last.is_some());
        }
        assert_eq!((parallel, ordered), (4, 4));
    }
}
