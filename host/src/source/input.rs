//! Opening line inputs before any thread starts, and reading them line by line with a bounded
//! buffer.
//!
//! A line longer than the record limit is never held whole: once it passes the limit its
//! bytes are counted and dropped until its line end, so memory stays bounded by the limit
//! whatever the input.

use std::fs::File;
use std::io::{self, Read, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use crate::position::FileKey;

/// The read buffer of one input.
const READ_BUFFER: usize = 256 << 10;
/// The bytes a file reader keeps of what it read last, to tell a file rewritten under its
/// read position from one appended to ([`LineReader::rewritten`]).
const RECENT: usize = 64;
/// The most one call of [`LineReader::next_line`] reads without finding a line end before it
/// returns "nothing now", so a caller inside an endless line still gets to look at its stop
/// flag.
const SCAN_LIMIT: u64 = 4 * READ_BUFFER as u64;

/// A file opened for reading, with its identity.
#[derive(Debug)]
pub struct OpenFile {
    pub file: File,
    pub key: FileKey,
    /// Its length when opened.
    pub len: u64,
}

/// Whether `file`, whose size says 0 bytes, gives data when read and still says 0 after:
/// a kernel pseudo-file (procfs), made up at each read. (A file written to meanwhile
/// says its new size.) Reads at most one byte, then goes back to the start.
fn has_data_past_its_size(mut file: &File) -> bool {
    use std::io::Seek as _;
    let mut byte = [0u8; 1];
    let read = file.read(&mut byte).unwrap_or(0);
    let _ = file.rewind();
    read > 0 && file.metadata().is_ok_and(|m| m.len() == 0)
}

/// Opens `path` for reading: a missing file, a directory or an unreadable file is an error,
/// one line for the user.
pub fn open_file(path: &Path) -> Result<OpenFile, String> {
    let p = path.display();
    // Look before opening: opening a FIFO blocks until a writer comes.
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        return Err(if meta.is_dir() {
            format!("file:{p} is a directory: give a file")
        } else {
            format!(
                "file:{p} is not a regular file (a pipe or device cannot be resumed): for a \
                 pipe use --source -"
            )
        });
    }
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!("file:{p}: no such file"),
        io::ErrorKind::PermissionDenied => format!("file:{p}: permission denied"),
        _ => format!("file:{p}: cannot open: {e}"),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("file:{p}: cannot read its metadata: {e}"))?;
    if meta.is_dir() {
        return Err(format!("file:{p} is a directory: give a file"));
    }
    if !meta.is_file() {
        return Err(format!(
            "file:{p} is not a regular file (a pipe or device cannot be resumed): for a pipe use \
             --source -"
        ));
    }
    // A directory opens on Linux but fails on read; anything else unreadable fails here too.
    let mut probe = [0u8; 0];
    (&file)
        .read(&mut probe)
        .map_err(|e| format!("file:{p}: cannot read: {e}"))?;
    if meta.len() == 0 && has_data_past_its_size(&file) {
        return Err(format!(
            "file:{p} says it has 0 bytes but has data (a /proc file): positions in it cannot \
             be resumed; copy it to a file, or pipe it in with --source -"
        ));
    }
    // One spelling per file: `./a.log`, `sub/../a.log` and a link to it name the same input.
    let path: PathBuf = std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_owned());
    Ok(OpenFile {
        key: FileKey {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
            born: crate::position::birth_ns(&meta),
        },
        len: meta.len(),
        file,
    })
}

/// The identity the path names now, if it names a file.
pub fn key_at(path: &Path) -> Option<(u64, u64)> {
    crate::paths::file_id(path)
}

/// Standard input, read directly from fd 0 after a `poll`, so a source waiting for input still
/// notices a stopping run: a read with nothing ready within the wait (50 ms, or none while the
/// source holds lines to push) fails with `WouldBlock` (the line reader reports "nothing
/// now"). Bypasses std's buffered `Stdin`, so no byte waits in a buffer `poll` cannot see.
#[derive(Debug)]
pub struct StdinPoll {
    /// Whether a read may wait for input.
    pub wait: bool,
    /// No more reads: the run stopped, and what is left on fd 0 stays there for whoever reads
    /// it next. A read then reports the end of the input.
    pub done: bool,
}

impl Read for StdinPoll {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let mut fds = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fds` is one valid, exclusively borrowed pollfd for the whole call, and nfds
        // is 1, so poll reads and writes only it.
        let ready = unsafe { libc::poll(&mut fds, 1, if self.wait { 50 } else { 0 }) };
        if ready < 0 {
            return Err(io::Error::last_os_error()); // EINTR is retried by the caller
        }
        if ready == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call, and read
        // writes at most that many; fd 0 is not closed by this process.
        let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl StdinPoll {
    /// Moves fd 0 back by `read_ahead` bytes, read from it but not taken, if it is a regular
    /// file: the next reader of the same descriptor then starts after the last line taken, as
    /// `head` leaves it. A pipe or terminal cannot go back: there the read-ahead is gone.
    /// Returns whether it moved.
    pub fn give_back(read_ahead: u64) -> bool {
        let Ok(back) = libc::off_t::try_from(read_ahead) else {
            return false;
        };
        if back == 0 {
            return false;
        }
        // SAFETY: `stat` is a plain C struct for which all zeroes is a valid value, and fstat
        // writes at most one `struct stat` into it; fd 0 is not closed by this process.
        let regular = unsafe {
            let mut stat: libc::stat = core::mem::zeroed();
            libc::fstat(libc::STDIN_FILENO, &mut stat) == 0
                && stat.st_mode & libc::S_IFMT == libc::S_IFREG
        };
        // SAFETY: lseek only moves fd 0's offset; on a regular file, back from the current
        // offset by bytes that were read from it, so never before its start.
        regular && unsafe { libc::lseek(libc::STDIN_FILENO, -back, libc::SEEK_CUR) } >= 0
    }
}

/// One line as read: its bytes without the line end, and how many bytes it took in the input.
#[derive(Debug)]
pub struct RawLine {
    /// Without `\n` or `\r\n`; empty when `too_long`.
    pub bytes: Vec<u8>,
    /// Bytes consumed from the input, line end included.
    pub consumed: u64,
    /// Longer than the record limit (its bytes were dropped).
    pub too_long: bool,
    /// Ended by a line end (`false`: the input ended first).
    pub terminated: bool,
}

/// Splits a byte stream into lines of at most `max` bytes (see the module docs).
#[derive(Debug)]
pub struct LineReader<R> {
    inner: R,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// The start of a line that crossed a buffer refill (at most `max + 1` bytes kept).
    carry: Vec<u8>,
    /// The bytes of that line so far, kept or dropped.
    carry_len: u64,
    max: usize,
    /// The input reported its end (a read of 0 bytes).
    eof: bool,
    /// The last bytes read from the input since the last seek, oldest first (`recent_len` of
    /// them, at the end of the array).
    recent: [u8; RECENT],
    recent_len: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: vec![0; READ_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            carry: Vec::new(),
            carry_len: 0,
            max,
            eof: false,
            recent: [0; RECENT],
            recent_len: 0,
        }
    }

    /// Whether the last read found the end of the input (a followed file may grow past it).
    pub fn at_eof(&self) -> bool {
        self.eof
    }

    /// The next complete line, or `None` at the end of what can be read now: the end of the
    /// input ([`LineReader::at_eof`]), nothing ready yet (`WouldBlock`), or a line still without
    /// its end after [`SCAN_LIMIT`] bytes (call again to read on). A partial last line stays
    /// pending: see [`LineReader::finish`].
    ///
    /// # Errors
    /// The input's read error.
    pub fn next_line(&mut self) -> io::Result<Option<RawLine>> {
        let mut scanned = 0u64;
        loop {
            let rest = &self.buf[self.start..self.end];
            if let Some(i) = memchr::memchr(b'\n', rest) {
                let line = &rest[..i];
                self.start += i + 1;
                if self.carry_len == 0 {
                    return Ok(Some(self.cut(line.to_vec(), i as u64 + 1, true)));
                }
                let consumed = self.carry_len + i as u64 + 1;
                let line = line.to_vec(); // short: the rest of a line that crossed a refill
                self.keep(&line);
                let bytes = std::mem::take(&mut self.carry);
                self.carry_len = 0;
                return Ok(Some(self.cut(bytes, consumed, true)));
            }
            let rest = rest.to_vec();
            self.keep(&rest);
            self.carry_len += rest.len() as u64;
            self.start = 0;
            self.end = 0;
            scanned += rest.len() as u64;
            if scanned >= SCAN_LIMIT {
                self.eof = false;
                return Ok(None);
            }
            let n = loop {
                match self.inner.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                    other => break other?,
                }
            };
            self.eof = n == 0;
            if n == 0 {
                return Ok(None);
            }
            self.end = n;
            self.note_read(n);
        }
    }

    /// At the real end of the input: the last line if it had no line end.
    pub fn finish(&mut self) -> Option<RawLine> {
        if self.carry_len == 0 {
            return None;
        }
        let consumed = self.carry_len;
        let bytes = std::mem::take(&mut self.carry);
        self.carry_len = 0;
        Some(self.cut(bytes, consumed, false))
    }

    /// Bytes read from the input past the last complete line returned (a partial line held).
    pub fn pending(&self) -> u64 {
        self.carry_len + (self.end - self.start) as u64
    }

    /// Drops what is buffered (a truncated input starts over).
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.carry.clear();
        self.carry_len = 0;
        self.recent_len = 0;
    }

    /// Keeps the last [`RECENT`] bytes read, the `n` just read into the buffer included.
    fn note_read(&mut self, n: usize) {
        let new = &self.buf[n.saturating_sub(RECENT)..n];
        let kept = self.recent_len.min(RECENT - new.len());
        self.recent
            .copy_within(RECENT - kept.., RECENT - kept - new.len());
        self.recent[RECENT - new.len()..].copy_from_slice(new);
        self.recent_len = kept + new.len();
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Appends to the carried line while it is within the limit (one byte over tells it is
    /// too long, a `\r` aside).
    fn keep(&mut self, bytes: &[u8]) {
        let room = (self.max + 2).saturating_sub(self.carry.len());
        self.carry
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Strips a `\r` before a `\n` and applies the limit.
    fn cut(&self, mut bytes: Vec<u8>, consumed: u64, had_newline: bool) -> RawLine {
        let mut len = consumed - u64::from(had_newline);
        if had_newline && bytes.last() == Some(&b'\r') {
            bytes.pop();
            len -= 1;
        }
        let too_long = len > self.max as u64;
        if too_long {
            bytes = Vec::new();
        }
        RawLine {
            bytes,
            consumed,
            too_long,
            terminated: had_newline,
        }
    }
}

impl LineReader<File> {
    /// Repositions a file input at `offset`, dropping what is buffered.
    pub fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.reset();
        self.inner.seek(SeekFrom::Start(offset)).map(drop)
    }

    /// Whether the bytes this reader read last (up to [`RECENT`] of them, since its last seek)
    /// are no longer what the file holds just before the read position: it was rewritten in
    /// place under the reader (a `copytruncate` refilled past the position between two looks,
    /// or new text written over the old), which the file's size alone does not show. A file
    /// only appended to never is; nor is one whose new text repeats those bytes there (then
    /// nothing before the position is lost by reading on). A file now shorter than the
    /// position is (`len < position`, the caller's truncation check, sees it first).
    ///
    /// # Errors
    /// The file's read error.
    pub fn rewritten(&mut self) -> io::Result<bool> {
        use std::os::unix::fs::FileExt as _;
        let len = self.recent_len;
        if len == 0 {
            return Ok(false);
        }
        let at = self.inner.stream_position()? - len as u64;
        let mut now = [0u8; RECENT];
        match self.inner.read_exact_at(&mut now[..len], at) {
            Ok(()) => Ok(now[..len] != self.recent[RECENT - len..]),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Whether `offset` with `tail` is still a position a run could have committed in `file`: just
/// after a line end (`tail` 0), or after a last line without its end, `tail` bytes long, that
/// starts the file or follows a line end (see `position::Resume`). A file rewritten in place
/// since the position was committed (truncated and written past it: `copytruncate` of a busy
/// log between two runs) fails this check unless a line end happens to fall at the same place
/// in its new text; a file only appended to always passes. `offset` must be within the file.
///
/// # Errors
/// The file's read error.
pub fn ends_a_line(file: &File, offset: u64, tail: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt as _;
    let Some(start) = offset.checked_sub(tail) else {
        return Ok(false);
    };
    let mut byte = [0u8; 1];
    if start > 0 {
        file.read_exact_at(&mut byte, start - 1)?;
        if byte[0] != b'\n' {
            return Ok(false);
        }
    }
    // The last line without its end has no line end in it.
    let mut buf = vec![0u8; usize::try_from(tail).unwrap_or(usize::MAX).min(READ_BUFFER)];
    let mut at = start;
    while at < offset {
        let want = usize::try_from(offset - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        file.read_exact_at(&mut buf[..want], at)?;
        if memchr::memchr(b'\n', &buf[..want]).is_some() {
            return Ok(false);
        }
        at += want as u64;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, u64, bool)> {
        let mut r = LineReader::new(input, max);
        r.buf = vec![0; 4].into_boxed_slice(); // lines cross refills
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.bytes, l.consumed, l.too_long));
        }
        out.extend(r.finish().map(|l| (l.bytes, l.consumed, l.too_long)));
        out
    }

    #[test]
    fn lines_lose_their_ends_and_keep_their_byte_counts() {
        assert_eq!(
            lines(b"ab\r\n\ncdefgh\nlast", 100),
            [
                (b"ab".to_vec(), 4, false),
                (b"".to_vec(), 1, false),
                (b"cdefgh".to_vec(), 7, false),
                (b"last".to_vec(), 4, false),
            ]
        );
    }

    #[test]
    fn a_line_over_the_limit_is_flagged_and_not_held() {
        assert_eq!(
            lines(b"12345\n123456\n1234\r\n123456", 5),
            [
                (b"12345".to_vec(), 6, false),
                (Vec::new(), 7, true),
                (b"1234".to_vec(), 6, false),
                (Vec::new(), 6, true),
            ]
        );
        // Exactly at the limit with a CRLF end is within it.
        assert_eq!(lines(b"12345\r\n", 5), [(b"12345".to_vec(), 7, false)]);
    }

    /// A file in a directory of its own under the system's temp dir, holding `text`.
    fn file_with(name: &str, text: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pc-input-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.log");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn overwrite(path: &Path, text: &[u8]) {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all(text).unwrap();
    }

    #[test]
    fn a_committed_position_fits_a_file_appended_to_and_not_one_rewritten_in_place() {
        let path = file_with("ends", b"ab\ncd\nef");
        let file = File::open(&path).unwrap();
        // After a line end, at the start, and after a last line without its end (2 bytes).
        for (offset, tail) in [(3, 0), (6, 0), (0, 0), (8, 2), (2, 2)] {
            assert!(ends_a_line(&file, offset, tail).unwrap(), "{offset} {tail}");
        }
        // Mid-line; a tail that does not start after a line end; one holding a line end.
        for (offset, tail) in [(4, 0), (8, 1), (7, 4), (1, 2)] {
            assert!(
                !ends_a_line(&file, offset, tail).unwrap(),
                "{offset} {tail}"
            );
        }
        // Rewritten in place past a committed position, the line ends elsewhere.
        overwrite(&path, b"0123456789\n");
        let file = File::open(&path).unwrap();
        assert!(!ends_a_line(&file, 3, 0).unwrap());
        assert!(
            !ends_a_line(&file, 8, 2).unwrap(),
            "the tail's line no longer starts at 6"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_reader_sees_text_written_over_what_it_read_and_not_text_appended() {
        let path = file_with("rewritten", b"first line\nsecond\n");
        let mut r = LineReader::new(File::open(&path).unwrap(), 100);
        r.buf = vec![0; 4].into_boxed_slice(); // what it read last spans several reads
        while r.next_line().unwrap().is_some() {}
        assert!(r.at_eof());
        assert!(!r.rewritten().unwrap(), "nothing changed");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"third\n"))
            .unwrap();
        assert!(!r.rewritten().unwrap(), "appended to");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, b"third");
        while r.next_line().unwrap().is_some() {}
        // One byte changed, 5 bytes before the read position; then the same text again.
        overwrite(&path, b"first line\nsecond\nthIrd\n");
        assert!(r.rewritten().unwrap());
        overwrite(&path, b"first line\nsecond\nthird\nmore\n");
        assert!(!r.rewritten().unwrap(), "the same bytes again, and more");
        // A seek forgets what was read: nothing to compare until the next read.
        r.seek(0).unwrap();
        overwrite(&path, b"FIRST");
        assert!(!r.rewritten().unwrap());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
