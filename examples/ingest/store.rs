//! The file: one stored record per line, byte for byte as the producer sent
//! it. [`Store`] is what the committer needs of it (append, then make
//! durable), so that a test can put a fake in its place; [`open`] reads the
//! file at start-up, rebuilds the set of ids and cuts off a torn last line.
//!
//! Records are only ever appended, each with its newline in the same
//! `write`, and acknowledged only after a `sync` covers them. So a crash
//! (`kill -9`, power loss) can leave at most one damaged place: a last line
//! without its newline, written after the last sync and never acknowledged.
//! [`open`] drops it. Any other line that is not a record means the file
//! was damaged otherwise, or is not an ingest file: the server refuses to
//! start rather than guess.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::record;

/// Where records go: appended, then made durable.
pub trait Store: Send + 'static {
    /// Appends `bytes` (whole lines) to the file.
    ///
    /// # Errors
    /// The write failed: the file may now end in a partial line.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Makes everything appended so far durable (`fdatasync`).
    ///
    /// # Errors
    /// The sync failed: what it should have covered may be lost.
    fn sync(&mut self) -> io::Result<()>;
}

/// The records file, opened for appending.
#[derive(Debug)]
pub struct FileStore {
    file: File,
}

impl Store for FileStore {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// What [`open`] found in the file.
#[derive(Debug)]
pub struct Opened {
    /// The file, ready for appending after its last complete line.
    pub store: FileStore,
    /// The ids of the records in it.
    pub ids: HashSet<String>,
    /// How many records (complete lines) it holds.
    pub records: u64,
    /// The torn last line that was cut off, if there was one.
    pub torn: Option<Torn>,
    /// Whether the file was created (it did not exist).
    pub created: bool,
}

/// A last line without its newline, cut off at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Torn {
    /// Where it started: the file's length now.
    pub offset: u64,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why the file cannot be used.
#[derive(Debug)]
pub enum OpenError {
    /// Opening, reading, truncating or syncing it failed.
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// A complete line that is not a record.
    NotARecord {
        path: PathBuf,
        line: u64,
        offset: u64,
        why: record::Refusal,
    },
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Io { path, what, source } => {
                write!(f, "{}: {what}: {source}", path.display())
            }
            OpenError::NotARecord {
                path,
                line,
                offset,
                why,
            } => write!(
                f,
                "{}: line {line} (byte {offset}) is not a record ({why}): the file is damaged or \
                 not an ingest file; cut it at byte {offset} to keep the records before it",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::Io { source, .. } => Some(source),
            OpenError::NotARecord { .. } => None,
        }
    }
}

/// Opens (or creates) the records file at `path`: reads every line, checks
/// that each is a record and collects the ids, and truncates a torn last
/// line (syncing the truncation). A new file's directory is synced too, so
/// the file itself survives a crash.
///
/// # Errors
/// [`OpenError::Io`] when the file cannot be read or written;
/// [`OpenError::NotARecord`] for a complete line that is not a record.
pub fn open(path: &Path) -> Result<Opened, OpenError> {
    let io_error = |what, source| OpenError::Io {
        path: path.to_path_buf(),
        what,
        source,
    };
    let created = !path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| io_error("cannot open", e))?;
    if created {
        sync_parent(path).map_err(|e| io_error("cannot sync the directory of", e))?;
    }

    let mut ids = HashSet::new();
    let (mut records, mut offset) = (0u64, 0u64);
    let mut line = Vec::new();
    let mut reader = BufReader::with_capacity(256 * 1024, &file);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error("cannot read", e))?;
        if n == 0 || line.last() != Some(&b'\n') {
            break; // the end, or a torn last line
        }
        let id = record::parse_id(&line[..n - 1]).map_err(|why| OpenError::NotARecord {
            path: path.to_path_buf(),
            line: records + 1,
            offset,
            why,
        })?;
        // Never written twice by the server; if it happens anyway, the
        // records stay and the id counts once.
        ids.insert(id);
        records += 1;
        offset += n as u64;
    }
    drop(reader);

    let torn = if line.is_empty() {
        None
    } else {
        file.set_len(offset)
            .map_err(|e| io_error("cannot truncate the torn last line of", e))?;
        file.sync_data()
            .map_err(|e| io_error("cannot sync the truncation of", e))?;
        Some(Torn {
            offset,
            bytes: line,
        })
    };
    Ok(Opened {
        store: FileStore { file },
        ids,
        records,
        torn,
        created,
    })
}

/// Syncs the directory holding `path`, so a newly created entry is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Up to `max` bytes of `bytes`, for a log line: printable ASCII as is,
/// anything else as `\xNN`, and `...` when cut.
pub fn preview(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes
        .iter()
        .take(max)
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                char::from(b).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect();
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}
