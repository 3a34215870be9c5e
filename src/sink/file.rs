//! JSON lines to a file, standard output or standard error.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// A path made absolute and free of links, also for a file that does not exist yet (its
/// directory's real path and its name).
fn identity(path: &Path) -> Option<PathBuf> {
    if let Ok(real) = std::fs::canonicalize(path) {
        return Some(real);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(name))
}

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

    /// Whether this output is the file at `path`, by this name or another (a symlink, `./`):
    /// creating it would truncate that file.
    pub fn is_file(&self, path: &Path) -> bool {
        let Output::Path(own) = self else {
            return false;
        };
        // /dev/null, a pipe, a terminal: writing there truncates nothing.
        if std::fs::metadata(own).is_ok_and(|m| !m.is_file()) {
            return false;
        }
        match (identity(own), identity(path)) {
            (Some(a), Some(b)) => a == b,
            _ => false,
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
