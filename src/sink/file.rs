//! JSON lines to a file, standard output or standard error.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// Where to write: a path, `-` for standard output, or standard error (the dead letters'
/// default, so that none is lost when no file is named).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
    Path(PathBuf),
}

impl Output {
    pub fn parse(arg: &str) -> Output {
        if arg == "-" {
            Output::Stdout
        } else {
            Output::Path(PathBuf::from(arg))
        }
    }

    pub fn name(&self) -> String {
        match self {
            Output::Stdout => "stdout".to_owned(),
            Output::Stderr => "stderr".to_owned(),
            Output::Path(path) => path.display().to_string(),
        }
    }

    /// Creates (or truncates) the output.
    pub fn create(&self) -> io::Result<OutputWriter> {
        let inner: Box<dyn Write + Send> = match self {
            Output::Stdout => Box::new(io::stdout()),
            Output::Stderr => Box::new(io::stderr()),
            Output::Path(path) => Box::new(File::create(path)?),
        };
        Ok(OutputWriter {
            name: self.name(),
            inner: BufWriter::with_capacity(256 * 1024, inner),
        })
    }
}

/// A buffered JSON-lines writer that names its output in errors.
pub struct OutputWriter {
    name: String,
    inner: BufWriter<Box<dyn Write + Send>>,
}

impl OutputWriter {
    /// Writes one encoded record; `record` already ends with a newline.
    pub fn write_record(&mut self, record: &[u8]) -> io::Result<()> {
        self.inner.write_all(record).map_err(|err| {
            io::Error::new(err.kind(), format!("cannot write to {}: {err}", self.name))
        })
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|err| {
            io::Error::new(err.kind(), format!("cannot write to {}: {err}", self.name))
        })
    }
}
