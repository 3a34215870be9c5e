//! Hot reload of the rules: on SIGHUP, and when a file under the rule directory changes.
//!
//! It runs beside the pipeline, never on its hot path: a task waits for a trigger, lets a
//! burst of file events settle ([`DEBOUNCE`]), then loads, validates and compiles the whole
//! directory on a blocking thread and swaps the result into the [`Moderator`], which the
//! pipeline picks up at its next batch. A set that does not load or compile leaves the old one
//! in use; the reason is logged at warn and counted in `loomguard_rule_reloads_total`.
//! A directory that disappears is such a failure too; the watch may not follow a directory
//! that is created again, so SIGHUP stays the way to reload after that.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::metrics::{self, ReloadOutcome};
use crate::moderator::Moderator;
use crate::rules::RuleSet;

/// Quiet time after the last file event before reloading: an editor or `kubectl` writes a
/// rule set as several events.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// Why the reloader could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("cannot listen for SIGHUP: {0}")]
    Signal(#[source] std::io::Error),
    #[error("cannot watch the rule directory {}: {source}", dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: notify::Error,
    },
}

/// Starts reloading `dir` into `moderator` on the current tokio runtime, until it shuts down.
pub fn spawn(moderator: Arc<Moderator>, dir: PathBuf) -> Result<(), ReloadError> {
    let mut hangup = signal(SignalKind::hangup()).map_err(ReloadError::Signal)?;
    let (changed_tx, mut changed) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files to reload them is itself an event (access); only writes,
        // creations, removals and renames are changes.
        let change = match event {
            Ok(event) => !matches!(event.kind, EventKind::Access(_)),
            Err(_) => true,
        };
        if change {
            let _ = changed_tx.send(());
        }
    })
    .map_err(|source| ReloadError::Watch {
        dir: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|source| ReloadError::Watch {
            dir: dir.clone(),
            source,
        })?;

    tokio::spawn(async move {
        // The watcher stops when dropped: it lives as long as this task.
        let _watcher = watcher;
        loop {
            let trigger = tokio::select! {
                signalled = hangup.recv() => match signalled {
                    Some(()) => "SIGHUP",
                    None => return,
                },
                event = changed.recv() => match event {
                    Some(()) => "a change in the rule directory",
                    None => return,
                },
            };
            // Let the burst settle: every further event restarts the quiet time.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, changed.recv()).await {}
            let moderator = moderator.clone();
            let dir = dir.clone();
            let reloaded =
                tokio::task::spawn_blocking(move || reload(&moderator, &dir, trigger)).await;
            if let Err(error) = reloaded {
                tracing::warn!(%error, "the rule reload did not finish");
                metrics::global().count_reload(ReloadOutcome::Failure);
            }
        }
    });
    Ok(())
}

/// Loads, validates and compiles `dir`, and puts it in use unless it is broken or the same
/// version. Blocking: compiling the term automata takes a while.
pub fn reload(moderator: &Moderator, dir: &Path, trigger: &str) -> ReloadOutcome {
    let metrics = metrics::global();
    let current = moderator.rules().version.clone();
    let outcome = match RuleSet::load(dir) {
        Err(invalid) => {
            tracing::warn!(
                %trigger,
                version = %current,
                problems = invalid.problems.len(),
                "rules not reloaded, keeping the version in use: {invalid}"
            );
            ReloadOutcome::Failure
        }
        Ok(rules) if rules.version == current => {
            tracing::debug!(%trigger, version = %current, "rules unchanged");
            ReloadOutcome::Unchanged
        }
        Ok(rules) => {
            let version = rules.version.clone();
            match moderator.replace_rules(Arc::new(rules)) {
                Ok(()) => {
                    metrics.set_rules_version(&version);
                    tracing::info!(%trigger, from = %current, to = %version, "rules reloaded");
                    ReloadOutcome::Success
                }
                Err(error) => {
                    tracing::warn!(
                        %trigger,
                        version = %current,
                        %error,
                        "rules not reloaded, keeping the version in use"
                    );
                    ReloadOutcome::Failure
                }
            }
        }
    };
    metrics.count_reload(outcome);
    outcome
}
