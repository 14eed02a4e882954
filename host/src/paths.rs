//! Paths the run writes besides its sink (`--dead-letter`, `--latency-log`, `--profile`): the
//! checks that keep pc-host from writing to a file it did not create.

use std::path::{Path, PathBuf};

/// The directory `path` is in (`.` for a bare file name).
pub fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Whether two paths name the same place (existing or not): the same directory, canonically,
/// and the same file name; or the same file through symbolic links, or as hard links of one
/// file (the same device and inode).
pub fn same_place(a: &Path, b: &Path) -> bool {
    fn place(p: &Path) -> Option<PathBuf> {
        Some(dir_of(p).canonicalize().ok()?.join(p.file_name()?))
    }
    let linked = matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    let one_file = file_id(a).is_some_and(|x| file_id(b) == Some(x));
    linked || one_file || place(a).is_some_and(|x| place(b) == Some(x))
}

/// The device and inode of the file `path` leads to, if it names one.
pub fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Where the file with device and inode `id`, which this process has open, is now.
#[derive(Debug, PartialEq, Eq)]
pub enum Whereabouts {
    /// Still named, at this path (a file moved, or renamed).
    At(PathBuf),
    /// Still named, but not at the name the kernel kept for it (the name it was opened by,
    /// since removed: the file lives on as a hard link made before, wherever that is).
    Elsewhere,
    /// Its last name is gone: it lives only as long as it is open.
    Removed,
}

/// Where the file `id` is now, read from this process's open descriptors (`/proc/self/fd`, as
/// the kernel names each one's file); `None` if no descriptor of it is open, or the system
/// has no `/proc`.
pub fn whereabouts(id: (u64, u64)) -> Option<Whereabouts> {
    use std::os::unix::fs::MetadataExt as _;
    for entry in std::fs::read_dir("/proc/self/fd").ok()?.flatten() {
        let link = entry.path();
        let Ok(meta) = std::fs::metadata(&link) else {
            continue;
        };
        if (meta.dev(), meta.ino()) != id {
            continue;
        }
        if meta.nlink() == 0 {
            return Some(Whereabouts::Removed);
        }
        // The kernel's name for it, if that name still leads to this very file.
        let named = std::fs::read_link(&link)
            .ok()
            .filter(|path| file_id(path) == Some(id));
        return Some(named.map_or(Whereabouts::Elsewhere, Whereabouts::At));
    }
    None
}

/// Where `path` leads through symbolic links, as the kernel (and SQLite) follows them: `path`
/// itself if it is no link; a link that points where nothing is names its target. `None` for
/// a loop (more links than the kernel follows) or a link that cannot be read.
pub fn through_links(path: &Path) -> Option<PathBuf> {
    let mut target = path.to_path_buf();
    // As many links as the kernel follows (`MAXSYMLINKS`).
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.file_type().is_symlink() => {
                // Relative to the link's directory; an absolute one replaces it.
                target = dir_of(&target).join(std::fs::read_link(&target).ok()?);
            }
            _ => return Some(target),
        }
    }
    None
}

/// The one line refusing `path` (given as `flag`) if it is a symbolic link to nothing: a file
/// made through it would appear wherever the link points.
///
/// # Errors
/// That line.
pub fn link_to_nothing(flag: &str, path: &Path) -> Result<(), String> {
    if std::fs::metadata(path).is_err() && std::fs::symlink_metadata(path).is_ok() {
        return Err(format!(
            "{flag} {} is a link to a file that does not exist; pc-host will not create a file \
             through it: use another path",
            path.display()
        ));
    }
    Ok(())
}

/// Whether this process may write to `path` (`access(2)`, which also sees a read-only mount).
pub fn writable(path: &Path) -> bool {
    access(path, libc::W_OK).is_ok()
}

/// `access(2)` of `path` for `mode` (`libc::R_OK`, `libc::W_OK`): whether this process may,
/// a read-only mount included, and if not, the system's reason (a path with a NUL in it is
/// `InvalidInput`).
pub fn access(path: &Path, mode: libc::c_int) -> std::io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call; access only
    // reads it.
    if unsafe { libc::access(c.as_ptr(), mode) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The bytes this process may still write on the file system that holds `path` (`statvfs`:
/// the blocks free to everyone, or, for root, also those kept for root).
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    let c = c_path(path)?;
    // SAFETY: all-zero bytes are a valid `statvfs` (plain integers).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated string and `st` a valid `statvfs` to fill, both
    // for the duration of the call.
    if unsafe { libc::statvfs(c.as_ptr(), &raw mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let blocks = if root { st.f_bfree } else { st.f_bavail };
    Ok(blocks.saturating_mul(st.f_frsize))
}

/// `path` as a C string, for a system call.
///
/// # Errors
/// `InvalidInput` if the path holds a NUL byte.
fn c_path(path: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt as _;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Renames `from` to `to` unless `to` exists (`renameat2` with `RENAME_NOREPLACE`).
///
/// # Errors
/// EEXIST if `to` exists; EINVAL where the file system cannot rename that way; the call's
/// others.
pub fn rename_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: two valid NUL-terminated paths, relative to the working directory, read only
    // for the duration of the call.
    let done = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if done == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Creates `out` (failing if anything is there, a link too) and writes `bytes` to it; a failed
/// write removes the part written.
///
/// # Errors
/// `AlreadyExists` if something is at `out`; the file system's others.
pub fn create_with(out: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)?;
    file.write_all(bytes).inspect_err(|_| {
        let _ = std::fs::remove_file(out);
    })
}

/// Replaces `out` whole with `bytes`: writes a new file beside it (named after `out`, `what`
/// and this process) and renames it over `out`, so readers see the old file or the new one,
/// never a part, and a link at `out` is replaced, not followed. A failure leaves `out` as it
/// was and no temporary file.
///
/// # Errors
/// The file system's.
pub fn replace_with(out: &Path, what: &str, bytes: &[u8]) -> std::io::Result<()> {
    let name = out
        .file_name()
        .map_or("out".into(), |n| n.to_string_lossy());
    let tmp = dir_of(out).join(format!(".{name}.pc-host-{what}-{}.tmp", std::process::id()));
    // A file already at `tmp` is not ours to remove: only one this call created is.
    create_with(&tmp, bytes)?;
    std::fs::rename(&tmp, out).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Reads the start of `path` into `buf` if it is a regular file (through links); how many
/// bytes it read. `None` for anything else (a pipe, a device, a directory) or a file it could
/// not read. Opened without blocking, so that a pipe put there is never waited on.
pub fn head_of_regular_file(path: &Path, buf: &mut [u8]) -> Option<usize> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    std::io::Read::read(&mut file, buf).ok()
}

/// Whether `path` is a regular file that starts as a SQLite database does.
pub fn holds_sqlite_database(path: &Path) -> bool {
    const DATABASE_HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut first = [0u8; 16];
    head_of_regular_file(path, &mut first) == Some(first.len()) && &first == DATABASE_HEADER
}

/// Whether `path` is spelled as a directory: it ends in `/`, or its last component is `.` or
/// `..`. No file can be made under that spelling, and a file path's checks would look at the
/// wrong place: `Path` drops a trailing `/` (`dead/` has the file name `dead`), while `open`
/// fails on it only when the run first writes, and SQLite creates the file without the slash.
pub fn names_a_directory(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    let last = bytes.rsplit(|&b| b == b'/').next().unwrap_or_default();
    !bytes.is_empty() && matches!(last, b"" | b"." | b"..")
}

/// Refuses `path`, given as `flag`, if it is spelled as a directory ([`names_a_directory`]):
/// the one line suggests `example` as a file name to put in it.
///
/// # Errors
/// That line.
pub fn spelled_as_file(flag: &str, path: &Path, example: &str) -> Result<(), String> {
    if !names_a_directory(path) {
        return Ok(());
    }
    let shown = path.display().to_string();
    let dir = shown.trim_end_matches('/');
    Err(format!(
        "{flag} {shown}: this names a directory, not a file: give a file path (e.g. \
         {dir}/{example})"
    ))
}

/// The one line refusing `path`, given as `flag`, for a file pc-host writes as SVG, unless its
/// name ends in `.svg` (any case): a `run.png` holding SVG would open as a broken image.
pub fn svg_name(flag: &str, path: &Path) -> Result<(), String> {
    let svg = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"));
    if svg {
        return Ok(());
    }
    Err(format!(
        "{flag} {}: pc-host writes SVG there: give a file name ending in .svg (e.g. {})",
        path.display(),
        path.with_extension("svg").display()
    ))
}

/// Where SQLite keeps the file `suffix` (`-wal`, `-shm`, `-journal`) of the database `path`:
/// beside the file the path leads to through symbolic links, as SQLite resolves it (the
/// canonical path of a file that is there; for one that is not, where its links lead). The
/// path itself when neither resolves (a loop of links).
pub fn sqlite_side_file(path: &Path, suffix: &str) -> PathBuf {
    let real = std::fs::canonicalize(path)
        .ok()
        .or_else(|| through_links(path))
        .unwrap_or_else(|| path.to_path_buf());
    sibling(&real, suffix)
}

/// The files SQLite keeps beside a database, by the suffix it adds to the database's name.
pub const SIDE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `PATH` with `suffix` appended to its file name (`db` -> `db-wal`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_ending_in_a_slash_or_dot_names_a_directory_and_a_file_name_does_not() {
        for dir in ["dead/", "a/b/", "/", ".", "..", "a/.", "a/..", "./", "a//"] {
            assert!(names_a_directory(Path::new(dir)), "{dir}");
        }
        for file in [
            "dead",
            "a/b",
            "/x",
            "./x",
            "x.",
            "..x",
            "a/.hidden",
            "a/x..",
        ] {
            assert!(!names_a_directory(Path::new(file)), "{file}");
        }
        assert!(!names_a_directory(Path::new("")));
    }

    #[test]
    fn only_a_name_ending_in_svg_is_taken_for_an_svg() {
        for ok in ["run.svg", "a/b/RUN.SVG", "x.Svg"] {
            assert_eq!(svg_name("-o", Path::new(ok)), Ok(()), "{ok}");
        }
        assert_eq!(
            svg_name("-o", Path::new("out/run.png")),
            Err(
                "-o out/run.png: pc-host writes SVG there: give a file name ending in .svg (e.g. \
                 out/run.svg)"
                    .into()
            )
        );
        assert!(svg_name("--profile", Path::new("flame")).is_err());
        assert!(svg_name("--profile", Path::new(".svg")).is_err());
    }

    #[test]
    fn the_directory_line_names_the_flag_and_a_file_inside() {
        assert_eq!(
            spelled_as_file("--profile", Path::new("out/"), "profile.svg"),
            Err(
                "--profile out/: this names a directory, not a file: give a file path (e.g. \
                 out/profile.svg)"
                    .into()
            )
        );
        assert_eq!(
            spelled_as_file("--profile", Path::new("out/p.svg"), "profile.svg"),
            Ok(())
        );
    }

    /// The file a descriptor holds, followed through a rename, a hard link whose first name is
    /// removed (the kernel's name for it then leads nowhere: not reported as its place), and
    /// its last name's removal.
    #[test]
    fn whereabouts_follows_a_rename_and_never_names_a_path_that_is_not_the_file() {
        let dir = std::env::temp_dir().join(format!("pc-whereabouts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("first.db");
        std::fs::write(&first, b"x").unwrap();
        let open = std::fs::File::open(&first).unwrap();
        let id = file_id(&first).unwrap();
        let renamed = dir.join("renamed.db");
        std::fs::rename(&first, &renamed).unwrap();
        assert_eq!(whereabouts(id), Some(Whereabouts::At(renamed.clone())));
        let kept = dir.join("kept.db");
        std::fs::hard_link(&renamed, &kept).unwrap();
        std::fs::remove_file(&renamed).unwrap();
        assert_eq!(whereabouts(id), Some(Whereabouts::Elsewhere));
        std::fs::remove_file(&kept).unwrap();
        assert_eq!(whereabouts(id), Some(Whereabouts::Removed));
        drop(open);
        assert_eq!(whereabouts(id), None, "no descriptor of it is open");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
