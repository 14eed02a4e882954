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

/// Most files named in one warning about files made between two at a path.
const BETWEEN_NAMED: usize = 8;

/// Says what became of the file read before at `file`'s path, now that `file` is there (a new
/// file, or, `resumed`, one a run moved on to at a rotation), as warnings naming what no run
/// read and the source that reads it:
/// - the file read before, if it is still in the directory with bytes past its committed
///   position;
/// - for a new file: that the file read before is no longer in the directory (or cannot be
///   looked for, where the file system records no birth times), so lines it held after its
///   committed line, if any, were not read;
/// - for a new file: files in the directory named like the path (`app.log.1` for `app.log`)
///   and made between the two, which may have been at the path in between (rotated twice
///   while no run read it).
///
/// A resumed file says only the first: the run that registered it said the rest once.
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
    let Some(dir) = file.path.parent() else {
        return Vec::new();
    };
    if was.born.is_none() {
        return if resumed {
            Vec::new()
        } else {
            vec![format!(
                "{what}; the file read before at this path cannot be looked for, as this file \
                 system records no birth times: any lines it held after line {} were not read",
                was.line
            )]
        };
    }
    let files = files_in(dir);
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
            "{what}; the file read before at this path is no longer in {}: any lines it held \
             after line {} were not read",
            dir.display(),
            was.line
        )),
        None => {}
    }
    if !resumed {
        news.extend(made_between(file, was, &files).map(|(path, len)| {
            format!(
                "{what}; {} ({len} bytes) was made after the file read before at this path and \
                 before this one: if it was at this path in between, no run read it there; {} \
                 reads it",
                path.display(),
                crate::config::url::source_flag(path)
            )
        }));
    }
    news
}

/// The regular files in `dir`, with their metadata (not through links); none if it cannot be
/// read.
fn files_in(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let meta = entry.metadata().ok()?;
            meta.is_file().then(|| (entry.path(), meta))
        })
        .collect()
}

/// The files of `files` named like `file`'s path with something after it, made no earlier
/// than `was` and no later than `file`, other than those two; at most [`BETWEEN_NAMED`].
/// Times are compared inclusive: a file system's clock may give files made in a row one time.
fn made_between<'a>(
    file: &FileKey,
    was: &Displaced,
    files: &'a [(PathBuf, std::fs::Metadata)],
) -> impl Iterator<Item = (&'a Path, u64)> {
    let name = file.path.file_name().map(|n| n.as_bytes().to_vec());
    let span = was.born.zip(file.born).map(|(from, to)| from..=to);
    files
        .iter()
        .filter(move |(path, meta)| {
            let (Some(name), Some(span)) = (&name, &span) else {
                return false;
            };
            let named = path
                .file_name()
                .is_some_and(|n| n.as_bytes().len() > name.len() && n.as_bytes().starts_with(name));
            named
                && !was.is(meta)
                && (meta.dev(), meta.ino()) != (file.dev, file.ino)
                && birth_ns(meta).is_some_and(|born| span.contains(&born))
        })
        .take(BETWEEN_NAMED)
        .map(|(path, meta)| (path.as_path(), meta.len()))
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
        std::fs::write(dir.join("other.log"), "x\n").unwrap();
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
                && gone[0].ends_with("any lines it held after line 2 were not read"),
            "{gone:?}"
        );
        assert!(news(&new, &read_whole, true).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
