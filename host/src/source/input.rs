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

use crate::position::{FileKey, Window};

/// The read buffer of one input.
const READ_BUFFER: usize = 256 << 10;
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
    /// A read found the input's own end (not the one `done` reports).
    pub saw_end: bool,
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
        self.saw_end |= n == 0 && !buf.is_empty();
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }
}

impl StdinPoll {
    /// Whether the input on fd 0 has ended, without reading it: a regular file read to its
    /// size, or a pipe or terminal every writer has closed with nothing left in it. A pipe a
    /// writer still holds has not ended, whether or not bytes wait in it.
    pub fn ended() -> bool {
        if let Some(stat) = regular_stdin() {
            // SAFETY: lseek with offset 0 and SEEK_CUR only reports fd 0's offset.
            let at = unsafe { libc::lseek(libc::STDIN_FILENO, 0, libc::SEEK_CUR) };
            return at >= 0 && at >= stat.st_size;
        }
        let mut fds = libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `fds` is one valid, exclusively borrowed pollfd for the whole call, and nfds
        // is 1, so poll reads and writes only it; a timeout of 0 returns at once.
        let ready = unsafe { libc::poll(&mut fds, 1, 0) };
        ready > 0 && fds.revents & libc::POLLHUP != 0 && fds.revents & libc::POLLIN == 0
    }

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
        // SAFETY: lseek only moves fd 0's offset; on a regular file, back from the current
        // offset by bytes that were read from it, so never before its start.
        regular_stdin().is_some()
            && unsafe { libc::lseek(libc::STDIN_FILENO, -back, libc::SEEK_CUR) } >= 0
    }
}

/// fd 0's `stat`, if fd 0 is a regular file.
fn regular_stdin() -> Option<libc::stat> {
    // SAFETY: `stat` is a plain C struct for which all zeroes is a valid value, and fstat
    // writes at most one `struct stat` into it; fd 0 is not closed by this process.
    let stat = unsafe {
        let mut stat: libc::stat = core::mem::zeroed();
        (libc::fstat(libc::STDIN_FILENO, &mut stat) == 0).then_some(stat)
    }?;
    (stat.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(stat)
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
    /// The mark of the bytes just before the position after it (`position::Window::mark`),
    /// or, for a line without its end, before the line; 0: none.
    pub mark: u32,
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
    /// The last bytes of that line, kept or dropped (what the line window takes of a line
    /// too long to keep whole).
    carry_end: Window,
    /// The bytes of that line so far, kept or dropped.
    carry_len: u64,
    max: usize,
    /// The input reported its end (a read of 0 bytes).
    eof: bool,
    /// The last bytes read from the input since the last seek: what a file holds just before
    /// the read position, unless it was rewritten under the reader ([`Source::holds`]).
    recent: Window,
    /// The last bytes before the end of the line returned last (before the seek position,
    /// after a seek): each line's [`RawLine::mark`].
    lines: Window,
}

/// What a [`LineReader`] reads: a byte stream; a file also says whether it still holds the
/// bytes read last, just before the read position.
pub trait Source: Read {
    /// Whether the input still holds `recent` just before the read position. Only a file can
    /// tell; a stream says yes.
    ///
    /// # Errors
    /// The input's read error.
    fn holds(&mut self, recent: &Window) -> io::Result<bool> {
        let _ = recent;
        Ok(true)
    }
}

impl Source for StdinPoll {}

impl Source for &[u8] {}

impl Source for File {
    /// A file now shorter than the read position holds them (its truncation is seen by its
    /// size, and said as one); so does one where they hold a NUL byte: a writer that sets a
    /// file's size before its bytes (NFS write-back, preallocation, `pwrite` at reserved
    /// offsets) has not filled them in yet, and the text that comes later is no rewrite.
    fn holds(&mut self, recent: &Window) -> io::Result<bool> {
        if recent.is_empty() || recent.bytes().contains(&0) {
            return Ok(true);
        }
        let at = self.stream_position()?;
        match bytes_before(self, at, recent.len()) {
            Ok(now) => Ok(now.bytes() == recent.bytes()),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// The error [`LineReader::next_line`] returns when the file no longer holds what it read
/// just before the read position (see [`Source::holds`]): rewritten in place under the
/// reader.
#[derive(Debug)]
pub struct Rewritten;

impl std::fmt::Display for Rewritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bytes just before the read position, read already, changed")
    }
}

impl std::error::Error for Rewritten {}

/// Whether `e` is [`Rewritten`]'s.
pub fn is_rewritten(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Rewritten>())
}

impl<R: Source> LineReader<R> {
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
            recent: Window::default(),
            lines: Window::default(),
            carry_end: Window::default(),
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
                let line = line.to_vec(); // the rest of a line that crossed a refill
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
            // Before reading on: the bytes read last are still there (a file rewritten in place
            // under the reader is read on from mid-text otherwise, its new start skipped).
            if !self.inner.holds(&self.recent)? {
                return Err(io::Error::other(Rewritten));
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
            self.recent.push(&self.buf[..n]);
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

    /// The bytes of a last line without its end, if the reader is at the input's end holding
    /// only those (every complete line before them returned); else 0.
    pub fn held_last_line(&self) -> u64 {
        if self.eof && self.start == self.end {
            self.carry_len
        } else {
            0
        }
    }

    /// Drops what is buffered (a truncated input starts over).
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.carry.clear();
        self.carry_len = 0;
        self.recent.clear();
        self.lines.clear();
        self.carry_end.clear();
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Appends to the carried line while it is within the limit (one byte over tells it is
    /// too long, a `\r` aside).
    fn keep(&mut self, bytes: &[u8]) {
        self.carry_end.push(bytes);
        let room = (self.max + 2).saturating_sub(self.carry.len());
        self.carry
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Strips a `\r` before a `\n` and applies the limit; moves the line window on.
    fn cut(&mut self, mut bytes: Vec<u8>, consumed: u64, had_newline: bool) -> RawLine {
        // A line without its end is marked by the bytes before it (see below).
        let before = if had_newline { None } else { self.lines.mark() };
        let mut len = consumed - u64::from(had_newline);
        // A line too long to keep whole had its last bytes kept apart.
        let read = if bytes.len() as u64 == len {
            &bytes[..]
        } else {
            self.carry_end.bytes()
        };
        self.lines.push_line(read, had_newline);
        self.carry_end.clear();
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
            // A line without its end is read again whole once it has one: its position is
            // marked by the bytes before it (`position::Resume::mark`).
            mark: if had_newline {
                self.lines.mark()
            } else {
                before
            }
            .unwrap_or(0),
        }
    }
}

impl LineReader<File> {
    /// Repositions a file input at `offset`, dropping what is buffered; the line window starts
    /// with the bytes the file holds before `offset`.
    pub fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.reset();
        // A file cut below `offset` since it was looked at: nothing known before it (the
        // truncation is seen by its size).
        self.lines = match bytes_before(&self.inner, offset, Window::BYTES) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Window::default(),
            before => before?,
        };
        self.inner.seek(SeekFrom::Start(offset)).map(drop)
    }

    /// The mark of the bytes before the end of the line returned last, or before the seek
    /// position (see [`RawLine::mark`]).
    pub fn line_mark(&self) -> Option<u32> {
        self.lines.mark()
    }
}

/// The up to `most` (at most [`Window::BYTES`]) bytes `file` holds before `offset`.
///
/// # Errors
/// The file's read error; `UnexpectedEof` if it is shorter than `offset`.
fn bytes_before(file: &File, offset: u64, most: usize) -> io::Result<Window> {
    use std::os::unix::fs::FileExt as _;
    let most = most.min(Window::BYTES);
    let n = usize::try_from(offset).map_or(most, |o| o.min(most));
    let mut buf = [0u8; Window::BYTES];
    file.read_exact_at(&mut buf[..n], offset - n as u64)?;
    Ok(Window::of(&buf[..n]))
}

/// Whether `file` still holds, just before `offset`, the bytes of `mark` (a committed
/// position's [`Window::mark`](crate::position::Window::mark)): `false` once it was rewritten
/// in place there since, unless the new bytes there hash the same (one chance in 2^25).
///
/// # Errors
/// The file's read error.
pub fn holds_mark(file: &File, offset: u64, mark: u32) -> io::Result<bool> {
    let n = Window::covered(mark);
    if n as u64 > offset || n > Window::BYTES {
        return Ok(false);
    }
    Ok(bytes_before(file, offset, n)?.mark() == Some(mark))
}

/// Whether a line starts at `offset` in `file`: the file's start, or just after a line end.
/// Every line a run commits past does, and so does a last line it stored without its end. A
/// file rewritten in place since (truncated and written past that point: `copytruncate` of a
/// busy log between two runs) fails this unless a line end happens to fall just before it in
/// its new text; a file only appended to always passes. `offset` must be within the file.
///
/// # Errors
/// The file's read error.
pub fn starts_a_line(file: &File, offset: u64) -> io::Result<bool> {
    use std::os::unix::fs::FileExt as _;
    if offset == 0 {
        return Ok(true);
    }
    let mut byte = [0u8; 1];
    file.read_exact_at(&mut byte, offset - 1)?;
    Ok(byte[0] == b'\n')
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
        for offset in [0, 3, 6] {
            assert!(starts_a_line(&file, offset).unwrap(), "{offset}");
        }
        for offset in [1, 4, 7, 8] {
            assert!(!starts_a_line(&file, offset).unwrap(), "{offset}");
        }
        // Rewritten in place past a committed position, the line ends elsewhere.
        overwrite(&path, b"0123456789\n");
        let file = File::open(&path).unwrap();
        assert!(!starts_a_line(&file, 3).unwrap());
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// Reads `r` to the end of what the file holds now.
    fn read_to_end(r: &mut LineReader<File>) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            lines.push(line.bytes);
        }
        lines
    }

    #[test]
    fn a_held_last_line_is_only_a_partial_line_at_the_end_with_nothing_before_it_unread() {
        let path = file_with("held", b"one\ntwo\npart");
        let mut r = LineReader::new(File::open(&path).unwrap(), 100);
        assert_eq!(r.held_last_line(), 0, "nothing read");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, b"one");
        // Read to the end, but "two" not returned yet: no line is held alone.
        assert_eq!((r.at_eof(), r.held_last_line()), (false, 0));
        assert_eq!(read_to_end(&mut r), [b"two".to_vec()]);
        assert_eq!((r.at_eof(), r.held_last_line()), (true, 4));
        assert_eq!(r.finish().unwrap().bytes, b"part");
        assert_eq!(r.held_last_line(), 0, "taken by finish");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_reader_sees_text_written_over_what_it_read_and_not_text_appended() {
        let path = file_with("rewritten", b"first line\nsecond\n");
        let mut r = LineReader::new(File::open(&path).unwrap(), 100);
        r.buf = vec![0; 4].into_boxed_slice(); // what it read last spans several reads
        assert_eq!(read_to_end(&mut r).len(), 2);
        assert!(r.at_eof());
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"third\n"))
            .unwrap();
        assert_eq!(read_to_end(&mut r), [b"third".to_vec()], "appended to");
        // One byte changed, 5 bytes before the read position, and a line added: the reader
        // stops before reading on.
        overwrite(&path, b"first line\nsecond\nthIrd\nfourth\n");
        let e = r.next_line().unwrap_err();
        assert!(is_rewritten(&e), "{e}");
        // The same bytes again, and more: read on.
        overwrite(&path, b"first line\nsecond\nthird\nfourth\n");
        assert_eq!(read_to_end(&mut r), [b"fourth".to_vec()]);
        // A seek forgets what was read, and starts from the bytes before its position.
        r.seek(0).unwrap();
        assert_eq!(r.line_mark(), None);
        overwrite(&path, b"FIRST");
        assert_eq!(read_to_end(&mut r)[0], b"FIRST line");
        r.seek(11).unwrap();
        assert_eq!(r.line_mark(), Window::of(b"FIRST line\n").mark());
        // Read on from mid-file: what it read since the seek is fewer bytes than the file
        // holds before the position, and still all there.
        let rest = [b"second".to_vec(), b"third".to_vec(), b"fourth".to_vec()];
        assert_eq!(read_to_end(&mut r), rest);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// A writer that sets the file's size before its bytes (preallocation, NFS write-back):
    /// the reader read NULs, and the text that fills them in is not a rewrite.
    /// A line too long to keep whole still leaves its last bytes in the window: the mark
    /// after it covers them, as it covers a kept line's.
    #[test]
    fn the_mark_after_a_line_too_long_to_keep_covers_its_last_bytes() {
        let text = b"0123456789abcdefghij\r\nxy\n";
        let mut r = LineReader::new(&text[..], 5);
        r.buf = vec![0; 4].into_boxed_slice(); // the long line crosses refills
        let long = r.next_line().unwrap().unwrap();
        assert!(long.too_long);
        assert_eq!(long.mark, Window::of(&text[..22]).mark().unwrap());
        let short = r.next_line().unwrap().unwrap();
        assert_eq!(short.mark, Window::of(text).mark().unwrap());
    }

    #[test]
    fn nul_bytes_filled_in_later_are_not_a_rewrite() {
        let path = file_with("nul", b"one\n\0\0\0\0");
        let mut r = LineReader::new(File::open(&path).unwrap(), 100);
        assert_eq!(read_to_end(&mut r), [b"one".to_vec()]);
        overwrite(&path, b"one\ntwo\nthree\n");
        assert_eq!(r.next_line().unwrap().unwrap().bytes, b"\0\0\0\0three");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
