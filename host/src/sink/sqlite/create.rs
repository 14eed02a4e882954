//! Creating a new database file whole: set up under a temporary name beside where it goes, and
//! linked into place once its page size, write-ahead log mode and schema are in. A run killed
//! while it creates the database (`kill -9` in its first milliseconds) so leaves nothing at the
//! path: no empty file, no database without tables, no `-journal`, each of which every later
//! run would refuse as not pc-host's until someone removed it. What it leaves is its temporary
//! file, which the next run that creates a database there removes.

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

/// The temporary name a database `target` is set up under by process `pid`: hidden, in the
/// same directory (so that a link into place stays on one file system), and naming the
/// process, so that a later run can tell one whose process is gone.
fn temporary_name(target: &Path, pid: u32) -> Option<PathBuf> {
    let name = target.file_name()?.to_str()?;
    Some(target.with_file_name(format!(".{name}.pc-host-new.{pid}")))
}

/// Creates a pc-host database at `path` (where it leads through links, as SQLite follows
/// them) if nothing is there: set up under a temporary name with `pages` and the schema, then
/// linked into place, which fails if anything got there first. Temporary files of earlier
/// runs whose process is gone are removed first.
pub fn create_whole(path: &Path, pages: PageSizeChoice<'_>) -> Created {
    let Some(target) = crate::paths::through_links(path) else {
        return Created::NotHere;
    };
    if std::fs::symlink_metadata(&target).is_ok() {
        return Created::There;
    }
    remove_abandoned(&target);
    let Some(temp) = temporary_name(&target, std::process::id()) else {
        return Created::NotHere;
    };
    remove_with_side_files(&temp);
    if set_up(&temp, pages).is_err() {
        remove_with_side_files(&temp);
        return Created::NotHere;
    }
    let linked = std::fs::hard_link(&temp, &target);
    remove_with_side_files(&temp);
    match linked {
        Ok(()) => Created::Made(target),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Created::There,
        Err(_) => Created::NotHere,
    }
}

/// Creates the database at `temp`: its page size, write-ahead log mode and the schema, then
/// closes it, which folds the log into the file and removes it.
fn set_up(temp: &Path, pages: PageSizeChoice<'_>) -> anyhow::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(temp, flags)?;
    let bytes = match pages {
        PageSizeChoice::Given(p) => i64::from(p.bytes),
        PageSizeChoice::ForRate(rps) => schema::page_size_for_rate(rps),
    };
    conn.pragma_update(None, "page_size", bytes)?;
    let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    schema::create_or_upgrade(&conn, &Found::Empty)?;
    conn.execute_batch("COMMIT")?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// Removes `temp` and what SQLite made beside it.
fn remove_with_side_files(temp: &Path) {
    for suffix in crate::paths::SIDE_FILES {
        let _ = std::fs::remove_file(crate::paths::sibling(temp, suffix));
    }
    let _ = std::fs::remove_file(temp);
}

/// Removes the temporary files beside `target` that runs whose process is gone (killed while
/// they set the database up) left.
fn remove_abandoned(target: &Path) {
    let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!(".{}.pc-host-new.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_exists(pid) {
            remove_with_side_files(&entry.path());
        }
    }
}

/// Whether a process `pid` exists (a signal 0 reaches it, or it is another user's).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: `kill` with signal 0 sends nothing; it only checks that `pid` names a process.
    let sent = unsafe { libc::kill(pid, 0) };
    sent == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pc-host-create-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
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
    /// with a `-journal`) is removed by the next run creating one there; another live
    /// process's is left alone.
    #[test]
    fn a_killed_runs_temporary_database_is_removed_and_a_live_ones_kept() {
        let dir = scratch("abandoned");
        let db = dir.join("new.db");
        // A pid no process has (above the kernel's limit, 2^22).
        let gone = temporary_name(&db, 4_194_304 + 7).unwrap();
        std::fs::write(&gone, b"").unwrap();
        std::fs::write(crate::paths::sibling(&gone, "-journal"), b"x").unwrap();
        let live = temporary_name(&db, 1).unwrap(); // init
        std::fs::write(&live, b"").unwrap();
        assert_eq!(
            create_whole(&db, PageSizeChoice::ForRate(0)),
            Created::Made(db.clone())
        );
        assert!(!gone.exists());
        assert!(!crate::paths::sibling(&gone, "-journal").exists());
        assert!(live.exists(), "a live process's setup is not touched");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
