//! Where a file input resumes: its identity, and the position committed with its rows.
//!
//! Sources ask for a resume point when they open a file; sinks store the position after the
//! last committed line in the same transaction as the rows (see `sink::Sink`). Both sides
//! depend on this module and not on each other.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

mod displaced;

pub use displaced::{
    Displaced, displaced, not_read_by, read_by_this_run, unread_elsewhere, unread_said,
};

/// A file's identity: a renamed-away (rotated) file and the new file at the same path are two
/// inputs; the same file under the same path is one, across runs. Where the file system
/// records birth times (`born`), the same file under a new path (renamed between runs) is
/// still that input, and a file deleted and created again is a new input even when the file
/// system reuses its inode.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// The path as opened, made canonical (absolute, links resolved).
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Birth time, unix ns (`None` where the file system does not record it).
    pub born: Option<i64>,
}

/// A file's birth time (the [`FileKey::born`] of its key), unix ns, where the file system
/// records it.
pub fn birth_ns(meta: &std::fs::Metadata) -> Option<i64> {
    meta.created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
}

/// Where reading an input starts, as committed by earlier runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Resume {
    /// The input's id (the `producer` of its rows).
    pub input: u32,
    /// Bytes already committed: reading continues here.
    pub offset: u64,
    /// Lines already committed (stored or rejected): the next line's number.
    pub line: u64,
    /// Bytes of a last line committed without its line end (the file ended there when it was
    /// read), just before `offset`; 0 when `offset` is at a line end. If the file grows, that
    /// line is read again whole and its row replaced.
    pub tail: u64,
    /// The [`Window::mark`] of the bytes just before `offset` as they were read, or, after a
    /// last line without its end (`tail` > 0), before that line (read again whole once it
    /// has one, whatever it holds by then): a resume finds the file rewritten in place if they
    /// are no longer there. `None` where it is not known (a position committed by an older
    /// pc-host, or at the start).
    pub mark: Option<u32>,
    /// The input was read again from its start (truncated, or rewritten in place) and no
    /// record made since: a last line stored without its end before then belongs to the
    /// earlier text, and its row stays ([`stale_fragment`]). Not stored.
    pub restarted: bool,
}

/// The last bytes read before a position, up to [`Window::BYTES`], kept as a file is read line
/// by line, and their mark: what a resume compares with the file to tell a file only
/// appended to from one rewritten in place under the committed position.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    bytes: [u8; Self::BYTES],
    /// How many of `bytes` (at its end) are known.
    len: usize,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            bytes: [0; Self::BYTES],
            len: 0,
        }
    }
}

impl Window {
    /// The most bytes a mark covers.
    pub const BYTES: usize = 64;

    /// A window holding `bytes`' last [`Self::BYTES`].
    pub fn of(bytes: &[u8]) -> Self {
        let mut w = Self::default();
        w.push(bytes);
        w
    }

    /// Appends bytes read next.
    pub fn push(&mut self, new: &[u8]) {
        let new = &new[new.len().saturating_sub(Self::BYTES)..];
        let kept = self.len.min(Self::BYTES - new.len());
        self.bytes
            .copy_within(Self::BYTES - kept.., Self::BYTES - kept - new.len());
        self.bytes[Self::BYTES - new.len()..].copy_from_slice(new);
        self.len = kept + new.len();
    }

    /// Appends a line read next and, if it had one (`end`), its line end: as `push(line)` and
    /// then `push(b"\n")`, moving the bytes it keeps once.
    pub fn push_line(&mut self, line: &[u8], end: bool) {
        if !end {
            return self.push(line);
        }
        let line = &line[line.len().saturating_sub(Self::BYTES - 1)..];
        let new = line.len() + 1;
        let kept = self.len.min(Self::BYTES - new);
        self.bytes
            .copy_within(Self::BYTES - kept.., Self::BYTES - kept - new);
        self.bytes[Self::BYTES - new..Self::BYTES - 1].copy_from_slice(line);
        self.bytes[Self::BYTES - 1] = b'\n';
        self.len = kept + new;
    }

    /// Forgets what it held: the bytes before the next position are not known (a reader that
    /// starts over from a file's start, where there are none).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// How many bytes before the position it covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The bytes it holds, oldest first.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[Self::BYTES - self.len..]
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes' mark: how many there are (1 to [`Self::BYTES`], in the low 7 bits) and a
    /// 25-bit hash of them. `None` when it holds none, or a NUL byte: a writer that sets a
    /// file's size before its bytes (preallocation, NFS write-back) may not have filled it in
    /// yet, and the text that comes later makes no rewrite. Stored in databases, so the same
    /// bytes give the same mark in every build: its hash is defined here, not borrowed.
    pub fn mark(&self) -> Option<u32> {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        const LOW: u64 = 0x0101_0101_0101_0101;
        let step = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(31);
        // Whether a word holds a zero byte (exact: a borrow into a byte's top bit needs a
        // zero byte below it).
        let has_nul = |word: u64| word.wrapping_sub(LOW) & !word & (LOW << 7) != 0;
        if self.len == 0 {
            return None;
        }
        // The bytes in 8-byte little-endian words from the oldest, the last one zero-padded.
        let mut h = self.len as u64;
        let mut words = self.bytes().chunks_exact(8);
        for word in &mut words {
            let word = word.try_into().map_or(0, u64::from_le_bytes);
            if has_nul(word) {
                return None;
            }
            h = step(h, word);
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            if rest.contains(&0) {
                return None;
            }
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            h = step(h, u64::from_le_bytes(word));
        }
        h = (h ^ (h >> 29)).wrapping_mul(K);
        let hash = (h >> 32) as u32;
        Some((hash & !0x7F) | self.len as u32)
    }

    /// How many bytes before its position `mark` covers.
    pub fn covered(mark: u32) -> usize {
        (mark & 0x7F) as usize
    }
}

/// The line whose row a move of an input's position from `from` to `to` leaves stale, if any.
///
/// A last line committed without its end (`from.tail > 0`) is read again whole once the file
/// grows, and the position then moves past `from.offset`. If a record of the same transaction
/// holds that line (`replaced(input, line)`: it `replaces` the row), its insert and removal
/// take care of it. If none does, the whole line was rejected at read (invalid, or over the
/// limit), and the fragment's row must go with the move, or the table would keep a line the
/// file no longer has; unless the input started over since (`to.restarted`).
pub fn stale_fragment(
    from: Resume,
    to: Resume,
    replaced: impl Fn(u32, u64) -> bool,
) -> Option<u64> {
    let line = from.line.checked_sub(1)?;
    let stale = from.tail > 0 && to.offset > from.offset && !to.restarted;
    (stale && !replaced(from.input, line)).then_some(line)
}

/// A run of another pc-host that published records to a broker (NATS), as its records name
/// it: the sink that stores them keeps them as rows of a run of its own for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The publishing run's id (random, unique among publishers).
    pub run: i64,
    /// Its generator threads.
    pub producers: u32,
    /// Unix ns (of the first of its records this sink saw).
    pub started_at: i64,
}

/// How a publishing run ended, as it announced on the broker after its last record.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OriginEnd {
    pub finished_at: i64,
    /// Every record it accepted was published and acknowledged by the broker.
    pub completed: bool,
    /// Records per producer (its seqs are 0 .. n).
    pub per_producer: Vec<u64>,
    pub produced: u64,
    /// Published (acknowledged by the broker).
    pub stored: u64,
    pub dead_lettered: u64,
    pub not_stored: u64,
    pub elapsed_s: f64,
}

/// A registration that failed in a way that may pass, and was not tried again because the run
/// is stopping ([`Positions::register`]'s `stop`): nothing was registered.
#[derive(Debug, thiserror::Error)]
#[error("{0} (not retried: the run is stopping)")]
pub struct StoppedRetrying(pub String);

/// Registers inputs with the sink that will hold their positions.
pub trait Positions: Sync + std::fmt::Debug {
    /// The resume point of `file` (registering it, at offset 0, if it is new). `None` is
    /// stdin: an input with an id but no position. A failure that may pass is retried, until
    /// `stop` is set.
    ///
    /// # Errors
    /// The sink's, in one line; [`StoppedRetrying`] for one that may pass, given up at `stop`.
    fn register(&self, file: Option<&FileKey>, stop: &AtomicBool) -> anyhow::Result<Resume>;

    /// The run that holds `origin`'s records in the sink, recorded there if new.
    ///
    /// # Errors
    /// The sink's, or a sink that cannot hold another process's records.
    fn origin_run(&self, origin: &Origin) -> anyhow::Result<i64>;

    /// Records how a publishing run ended (`run_id`: its run in the sink).
    ///
    /// # Errors
    /// The sink's.
    fn origin_ended(&self, run_id: i64, end: &OriginEnd) -> anyhow::Result<()>;
}

/// An input as a run starts reading it: its name and where it resumed.
#[derive(Clone, Debug)]
pub struct InputStart {
    /// The file's absolute path, or `stdin`.
    pub name: String,
    pub resume: Resume,
}

/// Says that `path` is a file read before under the name `was` (renamed, rotated), which its
/// device, inode and birth time identify: it resumes where that input was committed.
/// `line` and `tail` are its committed position's: a last line stored without its end is read
/// again whole, so the run resumes after the line before it (as its header says).
pub fn renamed(path: &std::path::Path, was: &str, line: i64, tail: i64) {
    let line = if tail > 0 { line - 1 } else { line };
    tracing::info!(
        "file:{}: the file read before as {was} (the same device, inode and birth time): \
         resuming it after line {line}",
        path.display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_pushed_with_its_end_leaves_the_window_a_push_of_each_would() {
        let text: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
        for start in [0, 1, 30, 63, 64, 100] {
            for len in [0, 1, 10, 62, 63, 64, 65, 150] {
                for end in [false, true] {
                    let mut pieces = Window::of(&text[..start]);
                    let mut line = pieces;
                    let read = &text[start..(start + len).min(text.len())];
                    pieces.push(read);
                    if end {
                        pieces.push(b"\n");
                    }
                    line.push_line(read, end);
                    assert_eq!(
                        (line.bytes(), line.mark()),
                        (pieces.bytes(), pieces.mark()),
                        "after {start} bytes, a line of {len}, end {end}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_window_keeps_the_last_64_bytes_and_marks_them_whatever_the_pieces() {
        let text: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
        let mut w = Window::default();
        assert_eq!(w.mark(), None);
        for piece in text.chunks(7) {
            w.push(piece);
        }
        assert_eq!(w.bytes(), &text[200 - 64..]);
        assert_eq!(
            w.mark(),
            Window::of(&text).mark(),
            "pieces or whole, one mark"
        );
        let mark = w.mark().unwrap();
        assert_eq!(Window::covered(mark), 64);
        // Short windows cover what they hold; any byte changed changes the mark.
        assert_eq!(Window::covered(Window::of(b"ab\n").mark().unwrap()), 3);
        let mut changed = text.clone();
        changed[150] = b'!';
        assert_ne!(Window::of(&changed).mark(), Some(mark));
        assert_ne!(Window::of(b"ab\n").mark(), Window::of(b"ac\n").mark());
        // A NUL byte anywhere, or nothing: no mark.
        assert_eq!(Window::of(b"a\0b").mark(), None);
        for at in 0..64 {
            let mut nul = text[..64].to_vec();
            nul[at] = 0;
            assert_eq!(Window::of(&nul).mark(), None, "a NUL at {at}");
            nul[at] = 0x80;
            assert!(
                Window::of(&nul).mark().is_some(),
                "no NUL, a high byte at {at}"
            );
        }
        w.clear();
        assert_eq!((w.len(), w.mark()), (0, None));
    }

    /// Marks are stored in databases: the same bytes must give the same mark in every build.
    #[test]
    fn a_mark_is_the_same_in_every_build() {
        assert_eq!(
            Window::of(b"2026-12-06 05:00:00 INFO started\n").mark(),
            Some(0x8e54_b8a1)
        );
        // Whole words only (64 bytes), and a part word only (3 bytes).
        let text: Vec<u8> = (0..200u8).map(|i| b'a' + i % 26).collect();
        assert_eq!(Window::of(&text).mark(), Some(0x729a_a340));
        assert_eq!(Window::of(b"ab\n").mark(), Some(0xffc9_aa03));
    }
}
