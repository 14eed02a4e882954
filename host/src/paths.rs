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
/// and the same file name; or the same file through links.
pub fn same_place(a: &Path, b: &Path) -> bool {
    fn place(p: &Path) -> Option<PathBuf> {
        Some(dir_of(p).canonicalize().ok()?.join(p.file_name()?))
    }
    let linked = matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    linked || place(a).is_some_and(|x| place(b) == Some(x))
}

/// Whether this process may write to `path` (`access(2)`, which also sees a read-only mount).
pub fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// `PATH` with `suffix` appended to its file name (`db` -> `db-wal`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}
