//! The image index log: an append-only file of [`LogRecord`]s, one JSON object a line,
//! under the state directory (`--state-dir`).
//!
//! At start the log is replayed into an [`ImageState`]; while the worker runs, every
//! listing's hashed images, every delete of an indexed listing and every registered original
//! is appended. A replica rebuilt from the log holds exactly the live listings' images and the
//! originals. In Kafka mode the compacted `image-index` topic carries the same records, each
//! encoded as one line is here ([`encode`], [`decode`]; see [`crate::state::images`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::{ImageState, LogRecord, LOG_SCHEMA};

/// File name of the log inside the state directory.
pub const LOG_FILE: &str = "image-index.jsonl";

/// One line of the log.
#[derive(Serialize, Deserialize)]
struct Line {
    schema: String,
    #[serde(flatten)]
    record: LogRecord,
}

/// The log, open for appending.
#[derive(Debug)]
pub struct ImageLog {
    path: PathBuf,
    writer: BufWriter<File>,
}

/// What replaying the log found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replay {
    pub records: u64,
    /// Lines that were not records of this version (a torn last line after a crash, say).
    pub skipped: u64,
}

/// A log that cannot be opened or read.
#[derive(Debug, thiserror::Error)]
#[error("image index log {}: {source}", path.display())]
pub struct LogError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// A record as one line of the log (without the newline), and as the value of its topic record.
pub fn encode(record: &LogRecord) -> Vec<u8> {
    let line = Line {
        schema: LOG_SCHEMA.to_owned(),
        record: record.clone(),
    };
    // Strings, numbers and hashes (which serialise as hex strings) always serialise.
    serde_json::to_vec(&line).unwrap_or_default()
}

/// The record a line holds; `None` when it is not a record of this version.
pub fn decode(bytes: &[u8]) -> Option<LogRecord> {
    match serde_json::from_slice::<Line>(bytes) {
        Ok(line) if line.schema == LOG_SCHEMA => Some(line.record),
        _ => None,
    }
}

impl ImageLog {
    /// Opens (creating it if need be) the log under `state_dir` and replays it into `state`.
    pub fn open(state_dir: &Path, state: &mut ImageState) -> Result<(ImageLog, Replay), LogError> {
        let path = state_dir.join(LOG_FILE);
        let error = |source| LogError {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(error)?;

        let mut replay = Replay::default();
        match File::open(&path) {
            Ok(file) => {
                for line in BufReader::new(file).split(b'\n') {
                    let line = line.map_err(error)?;
                    if line.is_empty() {
                        continue;
                    }
                    match decode(&line) {
                        Some(record) => {
                            state.apply(&record);
                            replay.records += 1;
                        }
                        None => replay.skipped += 1,
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(error(err)),
        }

        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(error)?;
        // A torn last line (a crash mid-write) must not swallow the next record.
        let ends_cleanly = std::fs::read(&path)
            .map(|bytes| bytes.last().is_none_or(|&b| b == b'\n'))
            .unwrap_or(true);
        let mut writer = BufWriter::new(file);
        if !ends_cleanly {
            writer.write_all(b"\n").map_err(error)?;
        }
        Ok((ImageLog { path, writer }, replay))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a record (buffered: [`ImageLog::flush`] writes it out).
    pub fn append(&mut self, record: &LogRecord) -> io::Result<()> {
        self.writer.write_all(&encode(record))?;
        self.writer.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::state::IndexedImage;
    use crate::images::ImageHash;

    #[test]
    fn a_replayed_log_rebuilds_the_live_listings_only() {
        let dir = tempfile::tempdir().unwrap();
        let listing = |id: &str, hash: u64| LogRecord::Listing {
            listing: id.into(),
            seller: "S1".into(),
            version: None,
            images: vec![IndexedImage {
                url: format!("file:///{id}.jpg"),
                hash: ImageHash(hash),
                matchable: true,
                ..IndexedImage::default()
            }],
            at: "t".into(),
        };
        {
            let mut state = ImageState::new();
            let (mut log, replay) = ImageLog::open(dir.path(), &mut state).unwrap();
            assert_eq!(replay, Replay::default());
            log.append(&listing("P1", 1)).unwrap();
            log.append(&listing("P2", 2)).unwrap();
            log.append(&LogRecord::Delete {
                listing: "P1".into(),
                at: "t".into(),
            })
            .unwrap();
            log.flush().unwrap();
        }
        // A torn line, as a crash mid-append leaves.
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"schema\":\"image-index/v2\",\"rec");
        std::fs::write(&path, bytes).unwrap();

        let mut state = ImageState::new();
        let (mut log, replay) = ImageLog::open(dir.path(), &mut state).unwrap();
        assert_eq!(
            replay,
            Replay {
                records: 3,
                skipped: 1
            }
        );
        assert!(state.listing("P1").is_none());
        assert!(state.listing("P2").is_some());
        assert_eq!(state.listing_images(), 1);

        log.append(&listing("P3", 3)).unwrap();
        log.flush().unwrap();
        let mut again = ImageState::new();
        let (_, replay) = ImageLog::open(dir.path(), &mut again).unwrap();
        assert_eq!(
            replay,
            Replay {
                records: 4,
                skipped: 1
            }
        );
        assert_eq!(again.listing_images(), 2);
    }
}
