//! What became of the file read before at a path, once another file is there: a rotation
//! while no run read the path. Lines such a file held past its committed position are in no
//! run's counts, so the run that registers the new file says what it can find of them.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use super::{FileKey, birth_ns};

/// The input read before at the path where a new input opens: another file, which took the
/// path while no run read it (rotated: `mv app.log app.log.1`, then a new `app.log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Displaced {
    /// Bytes committed.
    pub offset: u64,
    pub line: u64,
    pub dev: u64,
    pub ino: u64,
    pub born: Option<i64>,
}

impl Displaced {
    /// From an `inputs` row's columns, as the sinks store them (signed 64-bit).
    pub fn from_columns(offset: i64, line: i64, dev: i64, ino: i64, born: Option<i64>) -> Self {
        Self {
            offset: offset.max(0) as u64,
            line: line.max(0) as u64,
            dev: dev as u64,
            ino: ino as u64,
            born,
        }
    }

    /// Whether `meta` is this file: its device, inode and birth time.
    fn is(&self, meta: &std::fs::Metadata) -> bool {
        meta.is_file()
            && meta.dev() == self.dev
            && meta.ino() == self.ino
            && self.born.is_some()
            && birth_ns(meta) == self.born
    }
}

/// Most files made between two at a path that are named one by one; the rest are counted.
const BETWEEN_NAMED: usize = 8;

/// Says what became of the file read before at `file`'s path, now that `file` is there (a new
/// file, or, `resumed`, one a run moved on to at a rotation), as warnings naming what no run
/// read and the source that reads it:
/// - the file read before, if it is still in the directory with bytes past its committed
///   position;
/// - for a new file: that the file read before is no longer in the directory (or cannot be
///   looked for), so lines it held after its committed line, if any, were not read;
/// - for a new file: rotated files in the directory (named like the path with a numbered or
///   dated suffix, not compressed) made between the two, which may have been at the path in
///   between (rotated twice while no run read it).
///
/// A resumed file says only the first, every run while those bytes stay unread: whether a
/// file gone since held more than was committed cannot be told, and it would be said again
/// by every run. A directory that cannot be listed, and an input that is no file (a NATS
/// stream), say nothing.
pub fn displaced(file: &FileKey, was: &Displaced, resumed: bool) {
    for news in news(file, was, resumed) {
        tracing::warn!("file:{}: {news}", file.path.display());
    }
}

/// [`displaced`]'s warnings, each without the path that starts it.
fn news(file: &FileKey, was: &Displaced, resumed: bool) -> Vec<String> {
    let what = if resumed {
        "resuming the file a run moved on to at a rotation"
    } else {
        "a new file"
    };
    // A file input's path is canonical, so absolute; a NATS stream's (`nats:NAME`) is not.
    let Some(dir) = file.path.parent().filter(|_| file.path.is_absolute()) else {
        return Vec::new();
    };
    if was.born.is_none() {
        let why = if file.born.is_none() {
            "this file system records no birth times"
        } else {
            "it was recorded without a birth time (by an older pc-host, or where none was given)"
        };
        return if resumed {
            Vec::new()
        } else {
            vec![format!(
                "{what}; the file read before at this path cannot be looked for, as {why}: if \
                 it held lines after line {}, no run read them",
                was.line
            )]
        };
    }
    let Some(files) = files_in(dir) else {
        return Vec::new();
    };
    let mut news = Vec::new();
    match files.iter().find(|(_, meta)| was.is(meta)) {
        Some((now, meta)) if meta.len() > was.offset => news.push(format!(
            "{what}; the file read before at this path is now {}, with {} bytes after line {} \
             not read: {} reads them",
            now.display(),
            meta.len() - was.offset,
            was.line,
            crate::config::url::source_flag(now)
        )),
        Some(_) => {}
        None if !resumed => news.push(format!(
            "{what}; the file read before at this path is no longer in {}: if it held lines \
             after line {}, no run read them",
            dir.display(),
            was.line
        )),
        None => {}
    }
    if !resumed {
        let between = made_between(file, was, &files);
        news.extend(between.iter().take(BETWEEN_NAMED).map(|(path, len)| {
            format!(
                "{what}; {} ({len} bytes) was made after the file read before at this path and \
                 before this one: if it was at this path in between, no run read it there; {} \
                 reads it",
                path.display(),
                crate::config::url::source_flag(path)
            )
        }));
        if between.len() > BETWEEN_NAMED {
            news.push(format!(
                "{what}; {} more rotated files in {} were made between the two, not named here",
                between.len() - BETWEEN_NAMED,
                dir.display()
            ));
        }
    }
    news
}

/// The regular files in `dir`, with their metadata (not through links); `None` if it cannot
/// be listed.
fn files_in(dir: &Path) -> Option<Vec<(PathBuf, std::fs::Metadata)>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|entry| {
                let meta = entry.metadata().ok()?;
                meta.is_file().then(|| (entry.path(), meta))
            })
            .collect(),
    )
}

/// Whether `name` is a rotated name of `base` that a line source can read: `base` followed by
/// `.` or `-` and a suffix with a digit in it (`app.log.1`, `app.log-20261207`), and not
/// compressed (`app.log.2.gz`: made by compressing a file, never at the path itself).
fn rotated_name(name: &[u8], base: &[u8]) -> bool {
    const COMPRESSED: [&[u8]; 7] = [b".gz", b".bz2", b".xz", b".zst", b".lz4", b".Z", b".zip"];
    let Some(suffix) = name.strip_prefix(base) else {
        return false;
    };
    matches!(suffix.first(), Some(b'.' | b'-'))
        && suffix.iter().any(u8::is_ascii_digit)
        && !COMPRESSED.iter().any(|ext| suffix.ends_with(ext))
}

/// The rotated files of `file`'s path ([`rotated_name`]) among `files`, made no earlier than
/// `was` and no later than `file`, other than those two, oldest first. Times are compared
/// inclusive: a file system's clock may give files made in a row one time.
fn made_between<'a>(
    file: &FileKey,
    was: &Displaced,
    files: &'a [(PathBuf, std::fs::Metadata)],
) -> Vec<(&'a Path, u64)> {
    let (Some(base), Some(from), Some(to)) = (file.path.file_name(), was.born, file.born) else {
        return Vec::new();
    };
    let mut between: Vec<_> = files
        .iter()
        .filter_map(|(path, meta)| {
            let born = birth_ns(meta)?;
            let rotated = path
                .file_name()
                .is_some_and(|n| rotated_name(n.as_bytes(), base.as_bytes()));
            let other = !was.is(meta) && (meta.dev(), meta.ino()) != (file.dev, file.ino);
            (rotated && other && (from..=to).contains(&born)).then_some((born, path, meta.len()))
        })
        .collect();
    between.sort_by_key(|&(born, ..)| born);
    between
        .into_iter()
        .map(|(_, path, len)| (path.as_path(), len))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &Path) -> FileKey {
        let meta = std::fs::metadata(path).unwrap();
        FileKey {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            born: birth_ns(&meta),
        }
    }

    fn read_to(key: &FileKey, offset: u64, line: u64) -> Displaced {
        Displaced {
            offset,
            line,
            dev: key.dev,
            ino: key.ino,
            born: key.born,
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pc-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `app.log` read to line 1, then rotated twice while no run read it (numbered, as
    /// logrotate does): the first file is `app.log.2` with a line unread, the one between
    /// (`app.log.1`) was never read, and both are named; a file of another name is not.
    #[test]
    fn a_file_rotated_twice_while_no_run_read_the_path_names_both_files_it_left() {
        let dir = temp_dir("rotated-twice");
        let path = dir.join("app.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let was = read_to(&key(&path), 2, 1);
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "between\n").unwrap();
        // Made meanwhile too, but never at the path: another name, a lock file, and a
        // compressed older rotation.
        for other in ["other.log", "app.log.lock", "app.log.3.gz"] {
            std::fs::write(dir.join(other), "x\n").unwrap();
        }
        std::fs::rename(dir.join("app.log.1"), dir.join("app.log.2")).unwrap();
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        let news = news(&key(&path), &was, false);
        if was.born.is_none() {
            assert_eq!(news.len(), 1, "{news:?}");
            assert!(news[0].contains("records no birth times"), "{news:?}");
            return;
        }
        assert_eq!(news.len(), 2, "{news:?}");
        let first = format!(
            "is now {}, with 2 bytes after line 1",
            dir.join("app.log.2").display()
        );
        assert!(news[0].contains(&first), "{news:?}");
        let between = format!(
            "{} (8 bytes) was made after",
            dir.join("app.log.1").display()
        );
        assert!(news[1].contains(&between), "{news:?}");
        assert!(news[1].contains("--source file:"), "{news:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The file read before, removed (rotated away and deleted): a new file says so once; a
    /// resumed one (whose registering run said it) says nothing; read to its end and still
    /// there, nothing either.
    #[test]
    fn a_file_read_before_and_gone_is_said_once_and_one_read_to_its_end_not_at_all() {
        let dir = temp_dir("displaced-gone");
        let path = dir.join("app.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let read_whole = read_to(&key(&path), 4, 2);
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        let new = key(&path);
        if read_whole.born.is_none() {
            assert!(news(&new, &read_whole, true).is_empty());
            return;
        }
        assert_eq!(news(&new, &read_whole, false), Vec::<String>::new());
        assert_eq!(news(&new, &read_whole, true), Vec::<String>::new());
        std::fs::remove_file(dir.join("app.log.1")).unwrap();
        let gone = news(&new, &read_whole, false);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(
            gone[0].starts_with("a new file; the file read before at this path is no longer in")
                && gone[0].ends_with("if it held lines after line 2, no run read them"),
            "{gone:?}"
        );
        assert!(news(&new, &read_whole, true).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotated_name_has_a_numbered_or_dated_suffix_and_is_not_compressed() {
        for name in [
            "app.log.1",
            "app.log.12",
            "app.log-20261207",
            "app.log.2026-12-07",
        ] {
            assert!(rotated_name(name.as_bytes(), b"app.log"), "{name}");
        }
        let not = [
            "app.log",
            "app.log.lock",
            "app.log.bak",
            "app.log.2.gz",
            "app.log.1.xz",
            "app.log1",
            "app.logs.1",
            "other.log.1",
        ];
        for name in not {
            assert!(!rotated_name(name.as_bytes(), b"app.log"), "{name}");
        }
    }

    /// Nothing is said where nothing can be known: an input that is no file (a NATS stream,
    /// whose key is `nats:NAME`), or a directory that cannot be listed (here, gone).
    #[test]
    fn a_stream_or_a_directory_that_cannot_be_listed_says_nothing() {
        let was = Displaced {
            offset: 10,
            line: 3,
            dev: 1,
            ino: 2,
            born: Some(1),
        };
        let stream = FileKey {
            path: PathBuf::from("nats:S"),
            dev: 0,
            ino: 0,
            born: Some(5),
        };
        assert_eq!(news(&stream, &was, false), Vec::<String>::new());
        let gone = FileKey {
            path: std::env::temp_dir()
                .join(format!("pc-no-such-dir-{}/app.log", std::process::id())),
            ..stream
        };
        assert_eq!(news(&gone, &was, false), Vec::<String>::new());
        // Without the old file's birth time: said, and why.
        let unborn = Displaced { born: None, ..was };
        let said = news(&gone, &unborn, false);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("recorded without a birth time"),
            "{said:?}"
        );
        assert!(news(&gone, &unborn, true).is_empty());
    }
}
