//! Creating a new database file whole: set up under a temporary name beside where it goes, and
//! linked into place once its page size, write-ahead log mode and schema are in. A run killed
//! while it creates the database (`kill -9` in its first milliseconds) so leaves nothing at the
//! path: no empty file, no database without tables, no `-journal`, each of which every later
//! run would refuse as not pc-host's until someone removed it. What it leaves is its temporary
//! file, which the next run on that path removes.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use super::schema::{self, Found, PageSizeChoice};

/// What [`create_whole`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// This run created the database, whole, at this path (where `path` leads through links).
    Made(PathBuf),
    /// Something is at the path already (another run's database, made an instant ago, or a
    /// file that was there).
    There,
    /// It could not be made whole here (the directory takes no new file, or no hard link: a
    /// file system without them): the caller creates the file in place instead.
    NotHere,
}

/// The start of the temporary names a database `target` is set up under: hidden, in the same
/// directory (so that a link into place stays on one file system).
fn temporary_prefix(target: &Path) -> Option<String> {
    Some(format!(".{}.pc-host-new.", target.file_name()?.to_str()?))
}

/// Whether `rest` (a temporary name after [`temporary_prefix`]) is one [`create_whole`]
/// makes: the process id, a dot and 16 hex digits, nothing else.
fn is_token(rest: &str) -> bool {
    let Some((pid, random)) = rest.split_once('.') else {
        return false;
    };
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Creates a pc-host database at `path` (where it leads through links, as SQLite follows
/// them) if nothing is there: set up under a temporary name of its own with `pages` and the
/// schema, then linked into place, which fails if anything got there first. The temporary
/// file is locked (`flock`) while it is set up, so that temporary files whose run is gone
/// (unlocked: killed mid-setup) can be told from those being set up, and removed.
pub fn create_whole(path: &Path, pages: PageSizeChoice<'_>) -> Created {
    let Some(target) = crate::paths::through_links(path) else {
        return Created::NotHere;
    };
    remove_abandoned(&target);
    if std::fs::symlink_metadata(&target).is_ok() {
        return Created::There;
    }
    let Some(prefix) = temporary_prefix(&target) else {
        return Created::NotHere;
    };
    let name = format!("{prefix}{}.{:016x}", std::process::id(), fastrand::u64(..));
    let temp = target.with_file_name(name);
    let Ok(file) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
    else {
        return Created::NotHere;
    };
    // Held until the link is made and the name removed: the file is in use meanwhile.
    let locked = lock(&file, false);
    let linked = match locked.then(|| set_up(&temp, pages)) {
        Some(Ok(())) => std::fs::hard_link(&temp, &target),
        _ => Err(std::io::ErrorKind::Other.into()),
    };
    remove_with_side_files(&temp);
    drop(file);
    match linked {
        Ok(()) => Created::Made(target),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Created::There,
        Err(_) => Created::NotHere,
    }
}

/// Takes an exclusive `flock` on `file` (without waiting if `try_only`); whether it got it.
fn lock(file: &std::fs::File, try_only: bool) -> bool {
    use std::os::fd::AsRawFd as _;
    let how = if try_only {
        libc::LOCK_EX | libc::LOCK_NB
    } else {
        libc::LOCK_EX
    };
    // SAFETY: the descriptor is `file`'s, open for the call's duration; `flock` takes no
    // pointers. The lock goes with the open file: closed, it is released.
    unsafe { libc::flock(file.as_raw_fd(), how) == 0 }
}

/// Creates the database at `temp` (an empty file): its page size, write-ahead log mode and
/// the schema, then closes it, which folds the log into the file and removes it.
fn set_up(temp: &Path, pages: PageSizeChoice<'_>) -> anyhow::Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(temp, flags)?;
    conn.pragma_update(None, "page_size", pages.for_new_database())?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    schema::create_or_upgrade(&conn, &Found::Empty)?;
    conn.execute_batch("COMMIT")?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Removes `temp` and what SQLite made beside it (those first).
pub(super) fn remove_with_side_files(temp: &Path) {
    for suffix in crate::paths::SIDE_FILES {
        let _ = std::fs::remove_file(crate::paths::sibling(temp, suffix));
    }
    let _ = std::fs::remove_file(temp);
}

/// Removes the temporary files beside `target` that runs killed while they set the database
/// up left: regular files named as [`create_whole`] names them, and not locked (a run setting
/// one up holds its lock, whatever its process id and wherever it runs).
fn remove_abandoned(target: &Path) {
    let Some(prefix) = temporary_prefix(target) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(crate::paths::dir_of(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .is_some_and(is_token);
        if !ours || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        // Held while its files go: a run cannot take it up meanwhile (none would: the name
        // is a dead run's own).
        if let Ok(file) = std::fs::File::open(&path)
            && lock(&file, true)
        {
            remove_with_side_files(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        crate::test_support::fresh_dir(&format!("host-create-{name}"))
    }

    /// A database made whole is at its path with the current schema, its log folded in, and
    /// nothing else left in the directory; a second call finds it there.
    #[test]
    fn a_new_database_appears_at_its_path_only_whole() {
        let dir = scratch("whole");
        let db = dir.join("new.db");
        assert_eq!(
            create_whole(&db, PageSizeChoice::ForRate(0)),
            Created::Made(db.clone())
        );
        let conn = Connection::open(&db).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, schema::SCHEMA_VERSION);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["new.db"]);
        assert_eq!(
            create_whole(&db, PageSizeChoice::ForRate(0)),
            Created::There
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a run killed while setting a database up leaves (its temporary file, half made,
    /// with a `-journal`, unlocked) is removed by the next run that looks, even where the
    /// database is there by now; one being set up (locked) is left alone, as is a file whose
    /// name only looks like one.
    #[test]
    fn a_killed_runs_temporary_database_is_removed_and_others_kept() {
        let dir = scratch("abandoned");
        let db = dir.join("new.db");
        let prefix = temporary_prefix(&db).unwrap();
        let gone = dir.join(format!("{prefix}77.0123456789abcdef"));
        std::fs::write(&gone, b"").unwrap();
        std::fs::write(crate::paths::sibling(&gone, "-journal"), b"x").unwrap();
        let live = dir.join(format!("{prefix}77.fedcba9876543210"));
        let held = std::fs::File::create(&live).unwrap();
        assert!(lock(&held, true));
        let lookalikes = [
            format!("{prefix}+77.0123456789abcdef"),
            format!("{prefix}77"),
        ];
        for name in &lookalikes {
            std::fs::write(dir.join(name), b"mine").unwrap();
        }
        assert_eq!(
            create_whole(&db, PageSizeChoice::ForRate(0)),
            Created::Made(db.clone())
        );
        assert!(!gone.exists());
        assert!(!crate::paths::sibling(&gone, "-journal").exists());
        assert!(live.exists(), "one being set up is not touched");
        for name in &lookalikes {
            assert!(dir.join(name).exists(), "{name} is not one pc-host made");
        }
        // Left again, and the database there by now: still removed.
        drop(held);
        assert_eq!(
            create_whole(&db, PageSizeChoice::ForRate(0)),
            Created::There
        );
        assert!(!live.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
