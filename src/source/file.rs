//! JSON lines from a file or standard input, read in bounded memory.
//!
//! A line longer than the event size limit is not held whole: its first bytes are kept for the
//! dead letter and the rest is skipped on its way to the next newline, so a 1 GB line costs no
//! more memory than a 1 MB one.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;

/// Where to read from: a path, or `-` for standard input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    Path(PathBuf),
}

impl Input {
    pub fn parse(arg: &str) -> Input {
        if arg == "-" {
            Input::Stdin
        } else {
            Input::Path(PathBuf::from(arg))
        }
    }

    /// How the input is named in dead letters' positions.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "stdin".to_owned(),
            Input::Path(path) => path.display().to_string(),
        }
    }

    /// Opens the input; also returns its length when it is a regular file, for progress.
    pub fn open(&self) -> io::Result<(Box<dyn Read + Send>, Option<u64>)> {
        match self {
            Input::Stdin => Ok((Box::new(io::stdin()), None)),
            Input::Path(path) => {
                let file = File::open(path)?;
                let metadata = file.metadata()?;
                // Opening a directory succeeds on Linux; only the first read would fail.
                if metadata.is_dir() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "it is a directory",
                    ));
                }
                let len = metadata.is_file().then_some(metadata.len());
                Ok((Box::new(file), len))
            }
        }
    }
}

/// One record of a batch: where it came from and where its kept bytes are in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// 1-based line number in the input.
    pub line: u64,
    pub start: usize,
    pub end: usize,
    /// Length of the whole line (without its newline); more than `end - start` if cut.
    pub total_len: u64,
}

/// Consecutive records sharing one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    pub data: Vec<u8>,
    pub records: Vec<RecordMeta>,
}

impl Batch {
    pub fn bytes(&self, record: &RecordMeta) -> &[u8] {
        &self.data[record.start..record.end]
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits a byte stream into lines, keeping at most `max_record_bytes` of each.
pub struct LineReader<R> {
    inner: BufReader<R>,
    max_record_bytes: usize,
    line: u64,
    /// Bytes consumed so far, newlines included.
    consumed: u64,
    done: bool,
    /// A live stream: end a batch when no more input is buffered instead of waiting to fill it.
    live: bool,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max_record_bytes: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::with_capacity(256 * 1024, inner),
            max_record_bytes,
            line: 0,
            consumed: 0,
            done: false,
            live: false,
        }
    }

    /// Reads a live stream (stdin fed as events happen): a batch ends as soon as the input
    /// has nothing more buffered, so that no event waits for later ones to fill its batch.
    /// Batches of a live stream can be small; a file keeps full ones.
    pub fn live(mut self, live: bool) -> LineReader<R> {
        self.live = live;
        self
    }

    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Fills a batch with up to `max_records` records or about `max_bytes` of kept data;
    /// an empty batch means the input is exhausted.
    pub fn next_batch(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Batch> {
        let mut batch = Batch {
            data: Vec::with_capacity(max_bytes.min(4 * 1024 * 1024)),
            records: Vec::with_capacity(max_records.min(65_536)),
        };
        while batch.records.len() < max_records && batch.data.len() < max_bytes {
            if self.live && !batch.records.is_empty() && self.inner.buffer().is_empty() {
                break;
            }
            match self.read_record(&mut batch.data)? {
                Some(record) => batch.records.push(record),
                None => break,
            }
        }
        Ok(batch)
    }

    /// Appends the next line's kept bytes to `data`.
    fn read_record(&mut self, data: &mut Vec<u8>) -> io::Result<Option<RecordMeta>> {
        if self.done {
            return Ok(None);
        }
        let start = data.len();
        let mut total: u64 = 0;
        let mut saw_any = false;
        loop {
            let available = match self.inner.fill_buf() {
                Ok(buf) => buf,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            if available.is_empty() {
                self.done = true;
                if !saw_any {
                    return Ok(None);
                }
                break;
            }
            saw_any = true;
            let (chunk, newline) = match memchr::memchr(b'\n', available) {
                Some(at) => (&available[..at], true),
                None => (available, false),
            };
            let room = self.max_record_bytes.saturating_sub(data.len() - start);
            data.extend_from_slice(&chunk[..chunk.len().min(room)]);
            total += chunk.len() as u64;
            let used = chunk.len() + usize::from(newline);
            self.inner.consume(used);
            self.consumed += used as u64;
            if newline {
                break;
            }
        }

        // Editors on some systems start a UTF-8 file with a byte-order mark; it is no part of
        // the first record.
        if self.line == 0 && data[start..].starts_with(UTF8_BOM) {
            data.drain(start..start + UTF8_BOM.len());
            total -= UTF8_BOM.len() as u64;
        }

        // A CRLF line ending is not part of the record.
        if data.len() > start && data.last() == Some(&b'\r') && total == (data.len() - start) as u64
        {
            data.pop();
            total -= 1;
        }
        self.line += 1;
        Ok(Some(RecordMeta {
            line: self.line,
            start,
            end: data.len(),
            total_len: total,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(input: &[u8], max: usize) -> Vec<(u64, Vec<u8>, u64)> {
        let mut reader = LineReader::new(input, max);
        let batch = reader.next_batch(usize::MAX, usize::MAX).unwrap();
        batch
            .records
            .iter()
            .map(|r| (r.line, batch.bytes(r).to_vec(), r.total_len))
            .collect()
    }

    #[test]
    fn splits_lines_and_numbers_them() {
        let got = records(b"a\n\nbc\r\nd", 100);
        assert_eq!(
            got,
            vec![
                (1, b"a".to_vec(), 1),
                (2, b"".to_vec(), 0),
                (3, b"bc".to_vec(), 2),
                (4, b"d".to_vec(), 1)
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_before_the_first_record_is_dropped() {
        assert_eq!(
            records(b"\xEF\xBB\xBF{}\n\xEF\xBB\xBF{}", 100),
            vec![(1, b"{}".to_vec(), 2), (2, b"\xEF\xBB\xBF{}".to_vec(), 5)]
        );
    }

    #[test]
    fn a_trailing_newline_adds_no_record() {
        assert_eq!(records(b"a\n", 100).len(), 1);
        assert!(records(b"", 100).is_empty());
    }

    #[test]
    fn long_lines_keep_only_the_limit_but_count_everything() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\nok\n");
        let got = records(&input, 16);
        assert_eq!(got[0], (1, vec![b'x'; 16], 10_000));
        assert_eq!(got[1], (2, b"ok".to_vec(), 2));
    }

    #[test]
    fn a_live_stream_ends_its_batch_with_what_is_buffered() {
        // Two reads: the second would block on a live stream, so the first batch ends before.
        let input = io::Read::chain(&b"1\n2\n"[..], &b"3\n"[..]);
        let mut reader = LineReader::new(input, 100).live(true);
        assert_eq!(reader.next_batch(10, usize::MAX).unwrap().records.len(), 2);
        assert_eq!(reader.next_batch(10, usize::MAX).unwrap().records.len(), 1);
        assert!(reader.next_batch(10, usize::MAX).unwrap().is_empty());
    }

    #[test]
    fn batches_stop_at_the_record_limit() {
        let mut reader = LineReader::new(&b"1\n2\n3\n"[..], 100);
        assert_eq!(reader.next_batch(2, usize::MAX).unwrap().records.len(), 2);
        assert_eq!(reader.next_batch(2, usize::MAX).unwrap().records.len(), 1);
        assert!(reader.next_batch(2, usize::MAX).unwrap().is_empty());
    }
}
