//! What became of the file read before at a path, once another file is there: a rotation
//! while no run read the path. Lines such a file held past its committed position are in no
//! run's counts, so the run that registers the new file says what it can find of them.

use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{FileKey, birth_ns};

/// The input read before at the path where a new input opens: another file, which took the
/// path while no run read it (rotated: `mv app.log app.log.1`, then a new `app.log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Displaced {
    /// Bytes committed.
    pub offset: u64,
    pub line: u64,
    /// Of `offset`, the bytes of a last line stored without its end (0 if none): a run that
    /// resumes the file reads that line again whole, after line `line - 1`.
    pub tail: u64,
    pub dev: u64,
    pub ino: u64,
    pub born: Option<i64>,
}

impl Displaced {
    /// From an `inputs` row's columns, as the sinks store them (signed 64-bit); no `tail`
    /// ([`Self::with_tail`]).
    pub fn from_columns(offset: i64, line: i64, dev: i64, ino: i64, born: Option<i64>) -> Self {
        Self {
            offset: offset.max(0) as u64,
            line: line.max(0) as u64,
            tail: 0,
            dev: dev as u64,
            ino: ino as u64,
            born,
        }
    }

    /// With `tail` (the `inputs.tail` column) bytes of a last line stored without its end.
    #[must_use]
    pub fn with_tail(self, tail: i64) -> Self {
        Self {
            tail: (tail.max(0) as u64).min(self.offset),
            ..self
        }
    }

    /// Where a run resuming the file reads on, and the last whole line before it: a last line
    /// stored without its end is read again whole.
    fn resumes_after(&self) -> (u64, u64) {
        if self.tail > 0 {
            (self.offset - self.tail, self.line.saturating_sub(1))
        } else {
            (self.offset, self.line)
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

/// The inputs registered at a path before the one registered now, as a sink reads them
/// (newest first, each with whether this run read it), as [`displaced`] takes them: none if
/// this run read the newest (a rotation during the run: the run reads that file to its end
/// itself), else those this run did not read.
pub fn not_read_by(rows: Vec<(Displaced, bool)>) -> Vec<Displaced> {
    if rows.first().is_some_and(|&(_, this_run)| this_run) {
        return Vec::new();
    }
    rows.into_iter()
        .filter_map(|(was, this_run)| (!this_run).then_some(was))
        .collect()
}

/// Whether the sink holds a file (device, inode, birth time) as an input, under any path: a
/// file a run read under its own name is not one no run read. A failed look is `false`.
pub type Known<'a> = &'a mut dyn FnMut(u64, u64, Option<i64>) -> bool;

/// Most files made between two at a path that are named one by one; the rest are counted.
const BETWEEN_NAMED: usize = 8;

/// The files this run reads from its start (device, inode): set before its inputs are
/// registered, so that what another of its sources reads is not called unread.
static READ_BY_THIS_RUN: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// Records the files this run's file sources read (device, inode), before they are registered
/// with the sink: [`displaced`] names none of them as unread. It starts the run's list of
/// warnings ([`unread_elsewhere`]) over.
pub fn read_by_this_run(files: impl IntoIterator<Item = (u64, u64)>) {
    let mut read = READ_BY_THIS_RUN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    read.clear();
    read.extend(files);
    SAID.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// Says what became of the files read before at `file`'s path, now that `file` is there (a
/// new file, or, `resumed`, a file registered before), as warnings naming what no run read and
/// the source that reads it. `earlier` are the inputs registered at the path before `file`,
/// newest first, none of them read by this run:
/// - each of them still in the directory (by device, inode and birth time, under any name)
///   with bytes past its committed position, or shorter than it (rewritten since), every run
///   while they stay unread;
/// - for a new file: that the newest of them is no longer in the directory (or cannot be
///   looked for), so lines it held after its committed line, if any, were not read;
/// - for a new file: rotated files in the directory ([`rotated_name`]) made between the newest
///   of them and `file`, which may have been at the path in between (rotated twice while no
///   run read it).
///
/// The last two are said once, by the run that registers the new file: whether a file gone
/// since held more than was committed cannot be told, and a file no run registered leaves no
/// trace to look for again. A file another source of this run reads ([`read_by_this_run`]) is
/// not named, nor is a file the sink holds as an input under another path (`known`). A
/// directory that cannot be listed, and an input that is no file (a NATS stream), say nothing.
pub fn displaced(file: &FileKey, earlier: &[Displaced], resumed: bool, known: Known<'_>) {
    let read = READ_BY_THIS_RUN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    for news in news(file, earlier, resumed, &read, known) {
        unread_said(format!("file:{}: {news}", file.path.display()));
    }
}

/// Warns `line`, which names lines in a file that no run read, and keeps it for the run's
/// summary ([`unread_elsewhere`]); once a run: a registration tried again (a connection lost
/// before its COMMIT) finds the same files again.
pub fn unread_said(line: String) {
    let mut said = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !said.contains(&line) {
        tracing::warn!("{line}");
        said.push(line);
    }
}

/// Every warning [`unread_said`] gave in this run (since [`read_by_this_run`]), for its
/// summary.
static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The warnings [`unread_said`] gave in this run (each as logged): lines that files read before
/// at an input's path hold, or may hold, and no run read; for the summary
/// (`unread_elsewhere` in its JSON).
pub fn unread_elsewhere() -> Vec<String> {
    SAID.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// [`displaced`]'s warnings, each without the path that starts it; `read`: the files this run
/// reads (device, inode).
fn news(
    file: &FileKey,
    earlier: &[Displaced],
    resumed: bool,
    read: &[(u64, u64)],
    known: Known<'_>,
) -> Vec<String> {
    let what = if resumed {
        "a file read before at this path"
    } else {
        "a new file; the file read before at this path"
    };
    // A file input's path is canonical, so absolute; a NATS stream's (`nats:NAME`) is not.
    let (Some(dir), Some(was)) = (file.path.parent(), earlier.first()) else {
        return Vec::new();
    };
    if !file.path.is_absolute() {
        return Vec::new();
    }
    let mut news = Vec::new();
    // Without a birth time the file is its device and inode: one this run reads is not lost.
    if was.born.is_none() && !resumed && !read.contains(&(was.dev, was.ino)) {
        let why = if file.born.is_none() {
            "this file system records no birth times"
        } else {
            "it was recorded without a birth time (by an older pc-host, or where none was given)"
        };
        news.push(format!(
            "{what} cannot be looked for, as {why}: if it held lines after line {}, no run read \
             them",
            was.resumes_after().1
        ));
    }
    let Some(files) = files_in(dir) else {
        return news;
    };
    let ours = |meta: &std::fs::Metadata| read.contains(&(meta.dev(), meta.ino()));
    for (i, before) in earlier.iter().enumerate() {
        let what = if i == 0 {
            what
        } else {
            "an earlier file at this path"
        };
        let found = files.iter().find(|(_, meta)| before.is(meta));
        match found {
            Some((_, meta)) if ours(meta) => {}
            Some((now, meta)) => news.extend(left_in(before, now, meta.len(), what)),
            None if i == 0 && !resumed && before.born.is_some() => news.push(format!(
                "{what} is no longer in {}: if it held lines after line {}, no run read them",
                dir.display(),
                before.resumes_after().1
            )),
            None => {}
        }
    }
    if !resumed {
        let between: Vec<_> = made_between(file, earlier, &files)
            .into_iter()
            .filter(|(_, meta)| !ours(meta) && !known(meta.dev(), meta.ino(), birth_ns(meta)))
            .collect();
        news.extend(between_news(&between, dir));
    }
    news
}

/// What `before`, found at `now` with `len` bytes, holds that no run read (`what` names it):
/// the bytes past where a run resuming it reads on, or, shorter than its committed offset, the
/// whole file (rewritten since: a source reads it from its start, as it finds it).
fn left_in(before: &Displaced, now: &Path, len: u64, what: &str) -> Option<String> {
    let source = crate::config::url::source_flag(now);
    if len > before.offset {
        let (from, line) = before.resumes_after();
        return Some(format!(
            "{what} is now {}, with {} bytes after line {line} not read: {source} reads them",
            now.display(),
            len - from,
        ));
    }
    (len < before.offset).then(|| {
        format!(
            "{what} is now {}, {len} bytes: shorter than where it was read to (byte {}), so \
             rewritten since, and no run read it as it is: {source} reads it from its start",
            now.display(),
            before.offset,
        )
    })
}

/// The warnings naming the files made between (`between`, oldest first) in `dir`: the first
/// [`BETWEEN_NAMED`] one by one, then how many more.
fn between_news(between: &[(&Path, &std::fs::Metadata)], dir: &Path) -> Vec<String> {
    let mut news: Vec<String> = between
        .iter()
        .take(BETWEEN_NAMED)
        .map(|(path, meta)| {
            format!(
                "a new file; {} ({} bytes) was made after the file read before at this path \
                 and before this one: if it was at this path in between, no run read it there; \
                 {} reads it",
                path.display(),
                meta.len(),
                crate::config::url::source_flag(path)
            )
        })
        .collect();
    if between.len() > BETWEEN_NAMED {
        news.push(format!(
            "a new file; {} more rotated files in {} were made between the two, not named here",
            between.len() - BETWEEN_NAMED,
            dir.display()
        ));
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

/// Whether `name` is a rotated name of `base` that a line source can read: `base`, then `.`
/// or `-`, then a suffix of digits with `.`, `-` or `_` between them (`app.log.1`,
/// `app.log-20261207`, `app.log.2026-12-07`); or, as logrotate's `extension` option names
/// them, such a suffix before `base`'s extension (`app.1.log`, `app-20261207.log`). Compressed
/// rotations (`app.log.2.gz`, made by compressing a file, never at the path) and other names
/// (`app.log.1.tmp`) are not.
fn rotated_name(name: &[u8], base: &[u8]) -> bool {
    if name.strip_prefix(base).is_some_and(rotation_suffix) {
        return true;
    }
    // `app.log`: the stem `app` and the extension `.log` (a leading dot starts no extension).
    let Some(dot) = base.iter().rposition(|&b| b == b'.').filter(|&at| at > 0) else {
        return false;
    };
    let (stem, extension) = base.split_at(dot);
    name.strip_prefix(stem)
        .and_then(|rest| rest.strip_suffix(extension))
        .is_some_and(rotation_suffix)
}

/// Whether `suffix` is a rotation's: `.` or `-`, then digits with `.`, `-` or `_` between.
fn rotation_suffix(suffix: &[u8]) -> bool {
    let Some((b'.' | b'-', rest)) = suffix.split_first() else {
        return false;
    };
    rest.iter().any(u8::is_ascii_digit)
        && rest
            .iter()
            .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
}

/// The rotated files of `file`'s path ([`rotated_name`]) among `files`, made no earlier than
/// the newest of `earlier` and no later than `file`, other than `file` and the inputs of
/// `earlier`, oldest first. Times are compared inclusive: a file system's clock may give files
/// made in a row one time (so an input made just before the newest may fall in the span).
fn made_between<'a>(
    file: &FileKey,
    earlier: &[Displaced],
    files: &'a [(PathBuf, std::fs::Metadata)],
) -> Vec<(&'a Path, &'a std::fs::Metadata)> {
    let from = earlier.first().and_then(|was| was.born);
    let (Some(base), Some(from), Some(to)) = (file.path.file_name(), from, file.born) else {
        return Vec::new();
    };
    let mut between: Vec<_> = files
        .iter()
        .filter_map(|(path, meta)| {
            let born = birth_ns(meta)?;
            let rotated = path
                .file_name()
                .is_some_and(|n| rotated_name(n.as_bytes(), base.as_bytes()));
            let other = !earlier.iter().any(|was| was.is(meta))
                && (meta.dev(), meta.ino()) != (file.dev, file.ino);
            (rotated && other && (from..=to).contains(&born)).then_some((born, path, meta))
        })
        .collect();
    between.sort_by_key(|&(born, ..)| born);
    between
        .into_iter()
        .map(|(_, path, meta)| (path.as_path(), meta))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::fresh_dir;

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
            tail: 0,
            dev: key.dev,
            ino: key.ino,
            born: key.born,
        }
    }

    /// A directory where `app.log` ("a\nb\n", read to line 1: the `Displaced` returned) was
    /// rotated twice as logrotate numbers them: it is `app.log.2`, the file between (8 bytes)
    /// `app.log.1`, and a new `app.log` is there; `others` (each "x\n") are made while the file
    /// between is at the path.
    fn rotated_twice(name: &str, others: &[&str]) -> (PathBuf, Displaced) {
        let dir = fresh_dir(name);
        let path = dir.join("app.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let was = read_to(&key(&path), 2, 1);
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "between\n").unwrap();
        for other in others {
            std::fs::write(dir.join(other), "x\n").unwrap();
        }
        std::fs::rename(dir.join("app.log.1"), dir.join("app.log.2")).unwrap();
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        (dir, was)
    }

    /// `app.log` read to line 1, then rotated twice while no run read it (numbered, as
    /// logrotate does): the first file is `app.log.2` with a line unread, the one between
    /// (`app.log.1`) was never read, and both are named; a file of another name is not.
    #[test]
    fn a_file_rotated_twice_while_no_run_read_the_path_names_both_files_it_left() {
        // Made meanwhile too, but never at the path: another name, a lock file, and a
        // compressed older rotation.
        let (dir, was) = rotated_twice(
            "rotated-twice",
            &["other.log", "app.log.lock", "app.log.3.gz"],
        );
        let news = news(
            &key(&dir.join("app.log")),
            &[was],
            false,
            &[],
            &mut |_, _, _| false,
        );
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
        let dir = fresh_dir("displaced-gone");
        let path = dir.join("app.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let read_whole = read_to(&key(&path), 4, 2);
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "new\n").unwrap();
        let new = key(&path);
        if read_whole.born.is_none() {
            assert!(news(&new, &[read_whole], true, &[], &mut |_, _, _| false).is_empty());
            return;
        }
        assert_eq!(
            news(&new, &[read_whole], false, &[], &mut |_, _, _| false),
            Vec::<String>::new()
        );
        assert_eq!(
            news(&new, &[read_whole], true, &[], &mut |_, _, _| false),
            Vec::<String>::new()
        );
        std::fs::remove_file(dir.join("app.log.1")).unwrap();
        let gone = news(&new, &[read_whole], false, &[], &mut |_, _, _| false);
        assert_eq!(gone.len(), 1, "{gone:?}");
        assert!(
            gone[0].starts_with("a new file; the file read before at this path is no longer in")
                && gone[0].ends_with("if it held lines after line 2, no run read them"),
            "{gone:?}"
        );
        assert!(news(&new, &[read_whole], true, &[], &mut |_, _, _| false).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_rotated_name_has_a_numbered_or_dated_suffix_and_is_not_compressed() {
        let rotated = [
            "app.log.1",
            "app.log.12",
            "app.log-20261207",
            "app.log.2026-12-07",
            "app.log-1_2",
            "app.1.log",
            "app-20261207.log",
            "app.2026-12-07.log",
        ];
        for name in rotated {
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
            "app.log.1.tmp",
            "app.log.",
            "app.log.-",
            "app.log.log",
            "app.x.log",
            "app.1.log.gz",
            "apps.1.log",
            "app..log",
        ];
        for name in not {
            assert!(!rotated_name(name.as_bytes(), b"app.log"), "{name}");
        }
        // A name with no extension, or only a leading dot, has only the suffix form.
        assert!(rotated_name(b"messages.1", b"messages"));
        assert!(rotated_name(b".hidden.2", b".hidden"));
        assert!(!rotated_name(b".2.hidden", b".hidden"));
    }

    /// Nothing is said where nothing can be known: an input that is no file (a NATS stream,
    /// whose key is `nats:NAME`), or a directory that cannot be listed (here, gone).
    #[test]
    fn a_stream_or_a_directory_that_cannot_be_listed_says_nothing() {
        let was = Displaced {
            offset: 10,
            line: 3,
            tail: 0,
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
        assert_eq!(
            news(&stream, &[was], false, &[], &mut |_, _, _| false),
            Vec::<String>::new()
        );
        let gone = FileKey {
            path: std::env::temp_dir()
                .join(format!("pc-no-such-dir-{}/app.log", std::process::id())),
            ..stream
        };
        assert_eq!(
            news(&gone, &[was], false, &[], &mut |_, _, _| false),
            Vec::<String>::new()
        );
        // Without the old file's birth time: said, and why.
        let unborn = Displaced { born: None, ..was };
        let said = news(&gone, &[unborn], false, &[], &mut |_, _, _| false);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("recorded without a birth time"),
            "{said:?}"
        );
        assert!(news(&gone, &[unborn], true, &[], &mut |_, _, _| false).is_empty());
        // ... unless this run reads that very file (its device and inode) through another
        // source.
        assert!(news(&gone, &[unborn], false, &[(1, 2)], &mut |_, _, _| false).is_empty());
    }

    /// A file another source of this run reads is not called unread, neither as the file read
    /// before nor as one made between (the run given `app.log` and `app.log.1` together); nor
    /// is one the sink holds as an input under its own name.
    #[test]
    fn a_file_this_run_or_an_earlier_one_reads_under_another_name_is_not_named() {
        let (dir, was) = rotated_twice("displaced-ours", &[]);
        if was.born.is_none() {
            return;
        }
        let new = key(&dir.join("app.log"));
        let id = |name: &str| {
            let k = key(&dir.join(name));
            (k.dev, k.ino)
        };
        assert_eq!(
            news(&new, &[was], false, &[], &mut |_, _, _| false).len(),
            2,
            "both named when not read"
        );
        let ours = [id("app.log.1"), id("app.log.2")];
        assert_eq!(
            news(&new, &[was], false, &ours, &mut |_, _, _| false),
            Vec::<String>::new()
        );
        let only_between = news(&new, &[was], false, &ours[..1], &mut |_, _, _| false);
        assert_eq!(only_between.len(), 1, "{only_between:?}");
        assert!(
            only_between[0].contains("app.log.2, with 2 bytes"),
            "{only_between:?}"
        );
        // Read by an earlier run under its own name (the sink holds it as an input): not one
        // no run read either.
        let between = key(&dir.join("app.log.1"));
        let mut known =
            |dev, ino, born| (dev, ino, born) == (between.dev, between.ino, between.born);
        let said = news(&new, &[was], false, &[], &mut known);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("app.log.2, with 2 bytes"), "{said:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Lines left in a file two rotations back are named by every run while they stay unread:
    /// the inputs before the newest are looked for too (found under any name).
    #[test]
    fn lines_left_two_rotations_back_are_named_while_they_stay_unread() {
        let dir = fresh_dir("displaced-two-back");
        let path = dir.join("app.log");
        std::fs::write(&path, "a1\na2\n").unwrap();
        let first = read_to(&key(&path), 3, 1);
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "b1\n").unwrap();
        let second = read_to(&key(&path), 3, 1);
        std::fs::rename(dir.join("app.log.1"), dir.join("app.log.2")).unwrap();
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "c1\n").unwrap();
        if first.born.is_none() {
            return;
        }
        let third = key(&path);
        for resumed in [false, true] {
            let said = news(&third, &[second, first], resumed, &[], &mut |_, _, _| false);
            assert_eq!(said.len(), 1, "resumed {resumed}: {said:?}");
            let want = format!(
                "an earlier file at this path is now {}, with 3 bytes after line 1 not read",
                dir.join("app.log.2").display()
            );
            assert!(said[0].starts_with(&want), "{said:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A last line stored without its end is read again whole by the source named, so the
    /// bytes and the line said are counted from before it; a file found shorter than where it
    /// was read to was rewritten, and is named to be read from its start.
    #[test]
    fn a_partly_stored_last_line_counts_from_before_it_and_a_shorter_file_is_rewritten() {
        let dir = fresh_dir("displaced-tail");
        let path = dir.join("app.log");
        std::fs::write(&path, "a1\na2").unwrap();
        // Committed through "a2" without its end: offset 5, line 2, tail 2.
        let was = read_to(&key(&path), 5, 2).with_tail(2);
        std::fs::write(&path, "a1\na23\n").unwrap();
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "b1\n").unwrap();
        if was.born.is_none() {
            return;
        }
        let new = key(&path);
        let said = news(&new, &[was], false, &[], &mut |_, _, _| false);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("with 4 bytes after line 1 not read"),
            "{said:?}"
        );
        // Shorter than the offset (5) though not than where the last line starts (3).
        std::fs::write(dir.join("app.log.1"), "xyz\n").unwrap();
        let said = news(&new, &[was], false, &[], &mut |_, _, _| false);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(
            said[0].contains("4 bytes: shorter than where it was read to (byte 5)"),
            "{said:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
