//! Driving a scaled run (`--consumers 1..2`) from the test: the load is what the test writes
//! into the run's stdin while it holds the sink, so the queue fills and empties when the test
//! says, not when a clock does.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::{Out, Stderr, finish, start_command};

/// The lines written: `line 0` .. `line N-1`.
pub fn line(i: usize) -> String {
    format!("line {i}")
}

/// Runs `cmd` (a `pc_host` command reading `--source stdin` with `--consumers 1..2` and a short
/// `--scale-interval`): once its header is out, blocks the sink with `block` (its guard frees
/// it when dropped), writes `lines` lines, waits for the scale-up line, frees the sink, waits
/// for the scale-down line with stdin still open and idle, then closes stdin. Returns the run's
/// output, every stderr line included.
pub fn up_then_down<G>(cmd: Command, lines: usize, block: impl FnOnce() -> G) -> Out {
    up_then_down_and(cmd, lines, block, |_| {})
}

/// [`up_then_down`], and `released` is shown the run's stderr once the sink is free again,
/// before the scale-down line is waited for.
pub fn up_then_down_and<G>(
    mut cmd: Command,
    lines: usize,
    block: impl FnOnce() -> G,
    released: impl FnOnce(&mut Stderr),
) -> Out {
    cmd.stdin(Stdio::piped());
    let mut r = start_command(cmd);
    let mut stdin = r.child.stdin.take().expect("stdin is piped");
    r.err
        .wait("naming the stdin input (the sink is open)", |l| {
            l.contains("input ") && l.contains(": stdin")
        });
    let guard = block();
    // On a thread: the pipe fills while the sink is held.
    let writer = std::thread::spawn(move || {
        let text: String = (0..lines).map(|i| line(i) + "\n").collect();
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
        stdin
    });
    r.err.wait("scaling up while the sink is held", |l| {
        l.contains("scale up, consumers 1 -> 2")
    });
    drop(guard);
    released(&mut r.err);
    let stdin = writer.join().expect("the stdin writer");
    r.err.wait("scaling down once the queue stays empty", |l| {
        l.contains("scale down, consumers 2 -> 1")
    });
    drop(stdin);
    finish(r)
}
