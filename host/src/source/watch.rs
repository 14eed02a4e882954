//! Waking a followed file's source when the file or its directory changes (Linux inotify), so
//! that a line written is read at once rather than after the source's nap (up to 100 ms at a
//! file that was quiet). Where inotify cannot be had (the per-user limit of instances reached,
//! a file system that sends no events, as NFS for writes from other hosts), the nap alone
//! paces the looks, as before: a watch only ends a nap early.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// What changes the file: writes, a truncation or its metadata, its rename or removal.
const FILE_EVENTS: u32 =
    libc::IN_MODIFY | libc::IN_ATTRIB | libc::IN_MOVE_SELF | libc::IN_DELETE_SELF;
/// What changes the directory's names: a new file at the path (a rotation), or one gone.
const DIR_EVENTS: u32 = libc::IN_CREATE | libc::IN_MOVED_TO | libc::IN_MOVED_FROM | libc::IN_DELETE;

/// An inotify instance watching one file and the directory its path is in.
#[derive(Debug)]
pub struct FileWatch {
    fd: OwnedFd,
    /// The file's watch descriptor: any event of it counts.
    file: i32,
    /// The path's file name: only the directory's events that name it count.
    name: Vec<u8>,
}

impl FileWatch {
    /// Watches the file `path` names now and the directory it is in; `None` where inotify
    /// refuses (no instance to be had, or the file cannot be watched).
    pub fn new(path: &Path) -> Option<Self> {
        // SAFETY: takes no pointers; returns a new descriptor, or -1.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let file = add(&fd, path, FILE_EVENTS)?;
        let name = path.file_name()?.as_bytes().to_vec();
        // Without it, a rotation is still seen at the next nap's end.
        let _ = add(&fd, crate::paths::dir_of(path), DIR_EVENTS);
        Some(Self { fd, file, name })
    }

    /// Waits until something watched changes or `timeout` passes (at least a millisecond),
    /// taking the events queued, so that the next wait waits for new ones.
    pub fn wait(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout.max(Duration::from_millis(1));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
            if ms == 0 || self.poll(ms) {
                return;
            }
        }
    }

    /// Whether something watched changed since the last look (taking the events queued).
    pub fn changed(&self) -> bool {
        self.poll(0)
    }

    /// Polls for up to `ms` milliseconds; whether an event that concerns the file came (all
    /// those queued are taken). `false` also where the wait ended early for nothing (a signal,
    /// or only other files' events in the directory): the caller looks at its clock.
    fn poll(&self, ms: i32) -> bool {
        let mut fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid `pollfd`, borrowed for the call only. An error (a signal's EINTR)
        // ends the wait early.
        let ready = unsafe { libc::poll(&raw mut fd, 1, ms) };
        if ready <= 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        let mut concerns = false;
        loop {
            // SAFETY: `buf` is writable for its length during the call; the descriptor is
            // non-blocking, so the loop ends at EAGAIN (or any error) once the queue is empty.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            let Ok(n) = usize::try_from(n) else { break };
            if n == 0 {
                break;
            }
            concerns |= events(&buf[..n]).any(|(wd, mask, name)| {
                wd == self.file || mask & libc::IN_Q_OVERFLOW != 0 || name == self.name
            });
        }
        concerns
    }
}

/// Watches `path` for `mask` on the inotify instance `fd`; its watch descriptor.
fn add(fd: &OwnedFd, path: &Path, mask: u32) -> Option<i32> {
    let name = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `name` is NUL-terminated and outlives the call; the descriptor is open.
    let wd = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), name.as_ptr(), mask) };
    (wd >= 0).then_some(wd)
}

/// The events in `buf` (what a read of an inotify descriptor gave: whole `inotify_event`s),
/// as (watch descriptor, mask, name without its NUL padding).
fn events(buf: &[u8]) -> impl Iterator<Item = (i32, u32, &[u8])> {
    const HEAD: usize = 16; // wd, mask, cookie, len: four 32-bit fields
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = buf.get(at..at + HEAD)?;
        let field = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        let wd = i32::from_ne_bytes(field(0));
        let mask = u32::from_ne_bytes(field(4));
        let len = u32::from_ne_bytes(field(12)) as usize;
        let name = buf.get(at + HEAD..at + HEAD + len)?;
        at += HEAD + len;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some((wd, mask, &name[..end]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A write to the file, and a new file at its path after a rename, end a wait; another
    /// file in the directory does not, nor anything queued once taken.
    #[test]
    fn a_write_or_a_new_file_at_the_path_is_seen_and_taken_once() {
        let dir = crate::test_support::fresh_dir("host-watch");
        let path = dir.join("app.log");
        std::fs::write(&path, "a\n").unwrap();
        let Some(watch) = FileWatch::new(&path) else {
            println!("SKIP: inotify is not available here");
            return;
        };
        assert!(!watch.changed(), "nothing yet");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"b\n").unwrap();
        assert!(watch.changed(), "a write");
        assert!(!watch.changed(), "taken");
        std::fs::write(dir.join("other.log"), "x\n").unwrap();
        std::fs::remove_file(dir.join("other.log")).unwrap();
        assert!(!watch.changed(), "another file's comings and goings");
        std::fs::rename(&path, dir.join("app.log.1")).unwrap();
        std::fs::write(&path, "c\n").unwrap();
        assert!(watch.changed(), "a rotation");
        assert!(!watch.changed(), "taken");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
