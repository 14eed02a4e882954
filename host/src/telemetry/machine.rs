//! What a run cost the machine (Linux): this process's CPU time, the CPU time the hypervisor
//! took from the machine's virtual CPUs (steal), and the bytes this process sent to storage.
//!
//! Guarantees: the figures are differences of two snapshots, one when production starts and
//! one after the last commit, read from the kernel's own counters: `getrusage(RUSAGE_SELF)`
//! (every thread of the process, finished ones included, in microseconds), the `steal` column
//! of `/proc/stat` (every CPU of the machine, in clock ticks, usually 10 ms) and `write_bytes`
//! of `/proc/self/io`.
//!
//! Not guaranteed: steal is machine-wide (it is time a virtual CPU was ready to run and the
//! hypervisor ran something else, whoever was on it), and only a virtual machine has any.
//! `write_bytes` counts a page of the page cache when it becomes dirty, not when the disk
//! writes it: a page written twice before the disk took it counts once, a file on tmpfs counts
//! nothing. Where a counter cannot be read (not Linux, `/proc` not mounted), [`snapshot`]
//! returns `None` and the summary leaves the lines out.

use std::time::{Duration, Instant};

/// The machine's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// When it was read.
    at: Instant,
    /// This process's CPU time in user and in kernel mode.
    user: Duration,
    system: Duration,
    /// The machine's steal time, summed over its CPUs, in clock ticks.
    steal_ticks: u64,
    /// Clock ticks per second (`sysconf(_SC_CLK_TCK)`).
    ticks_per_s: u64,
    /// CPUs in `/proc/stat`.
    cpus: u32,
    /// Bytes this process caused to be written to storage.
    written: u64,
}

/// What a run cost the machine: the difference of two [`Snapshot`]s.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineUse {
    /// Wall-clock time between the two snapshots, in seconds.
    pub wall_s: f64,
    /// This process's CPU time, in seconds.
    pub user_s: f64,
    pub system_s: f64,
    /// CPU time the hypervisor took from the machine, summed over its CPUs, in seconds.
    pub steal_s: f64,
    /// The machine's CPUs.
    pub cpus: u32,
    /// Bytes this process caused to be written to storage.
    pub written_bytes: u64,
}

impl MachineUse {
    /// Steal as a share (0..=1) of the CPU time the machine had between the snapshots.
    #[must_use]
    pub fn steal_share(&self) -> f64 {
        let available = self.wall_s * f64::from(self.cpus.max(1));
        if available > 0.0 {
            (self.steal_s / available).min(1.0)
        } else {
            0.0
        }
    }
}

impl Snapshot {
    /// What happened between `self` and the later snapshot `end`.
    #[must_use]
    pub fn until(&self, end: &Snapshot) -> MachineUse {
        let ticks = end.steal_ticks.saturating_sub(self.steal_ticks);
        MachineUse {
            wall_s: end.at.saturating_duration_since(self.at).as_secs_f64(),
            user_s: end.user.saturating_sub(self.user).as_secs_f64(),
            system_s: end.system.saturating_sub(self.system).as_secs_f64(),
            steal_s: ticks as f64 / self.ticks_per_s.max(1) as f64,
            cpus: end.cpus,
            written_bytes: end.written.saturating_sub(self.written),
        }
    }
}

/// Reads the counters now; `None` where any of them cannot be read.
#[must_use]
pub fn snapshot() -> Option<Snapshot> {
    let at = Instant::now();
    let (user, system) = cpu_times()?;
    let (steal_ticks, cpus) = parse_steal(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let written = parse_write_bytes(&std::fs::read_to_string("/proc/self/io").ok()?)?;
    Some(Snapshot {
        at,
        user,
        system,
        steal_ticks,
        ticks_per_s: ticks_per_second()?,
        cpus,
        written,
    })
}

#[cfg(target_os = "linux")]
fn cpu_times() -> Option<(Duration, Duration)> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`; getrusage writes it whole when it
    // returns 0 (and RUSAGE_SELF cannot fail on Linux).
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so it initialised `usage` (it was zeroed before anyway).
    let usage = unsafe { usage.assume_init() };
    let time = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).ok()?)
            .checked_add(Duration::from_micros(u64::try_from(t.tv_usec).ok()?))
    };
    Some((time(usage.ru_utime)?, time(usage.ru_stime)?))
}

#[cfg(not(target_os = "linux"))]
fn cpu_times() -> Option<(Duration, Duration)> {
    None
}

#[cfg(target_os = "linux")]
fn ticks_per_second() -> Option<u64> {
    // SAFETY: sysconf only reads a constant of the system; no memory is passed.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&t| t > 0)
}

#[cfg(not(target_os = "linux"))]
fn ticks_per_second() -> Option<u64> {
    None
}

/// From `/proc/stat`: the `cpu` line's steal column (the 8th number), and how many `cpuN`
/// lines follow it.
fn parse_steal(text: &str) -> Option<(u64, u32)> {
    let mut lines = text.lines();
    let total = lines.next()?.strip_prefix("cpu ")?;
    let steal = total.split_whitespace().nth(7)?.parse().ok()?;
    let cpus = lines
        .take_while(|l| l.starts_with("cpu"))
        .filter(|l| l[3..].starts_with(|c: char| c.is_ascii_digit()))
        .count();
    Some((steal, u32::try_from(cpus).ok()?.max(1)))
}

/// From `/proc/self/io`: the `write_bytes:` line.
fn parse_write_bytes(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  104102 0 13938 41525 1116 0 203 841 0 0\n\
                        cpu0 52000 0 7000 20000 500 0 100 400 0 0\n\
                        cpu1 52102 0 6938 21525 616 0 103 441 0 0\n\
                        intr 123 4 5\nctxt 99\n";

    #[test]
    fn steal_is_the_eighth_column_of_the_cpu_line_and_cpus_are_counted() {
        assert_eq!(parse_steal(STAT), Some((841, 2)));
    }

    #[test]
    fn a_stat_without_a_steal_column_or_cpu_line_reads_as_none() {
        assert_eq!(
            parse_steal("cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\n"),
            None
        );
        assert_eq!(parse_steal("intr 1\n"), None);
        assert_eq!(parse_steal("cpu  1 2 3 4 5 6 7 x\n"), None);
    }

    #[test]
    fn write_bytes_is_read_from_its_own_line_not_from_cancelled_write_bytes() {
        let io = "rchar: 10\nwchar: 20\nsyscr: 1\nsyscw: 2\nread_bytes: 4096\n\
                  write_bytes: 1236992\ncancelled_write_bytes: 8192\n";
        assert_eq!(parse_write_bytes(io), Some(1_236_992));
        assert_eq!(parse_write_bytes("rchar: 10\n"), None);
    }

    #[test]
    fn use_is_the_difference_of_two_snapshots_and_steal_a_share_of_the_cpus_time() {
        let t0 = Instant::now();
        let at = |s, user_ms, steal_ticks, written| Snapshot {
            at: t0 + Duration::from_secs(s),
            user: Duration::from_millis(user_ms),
            system: Duration::from_millis(2 * user_ms),
            steal_ticks,
            ticks_per_s: 100,
            cpus: 2,
            written,
        };
        let used = at(0, 500, 800, 4096).until(&at(5, 1500, 900, 1 << 20));
        assert_eq!(used.wall_s, 5.0);
        assert_eq!(used.user_s, 1.0);
        assert_eq!(used.system_s, 2.0);
        assert_eq!(used.steal_s, 1.0);
        assert_eq!(used.written_bytes, (1 << 20) - 4096);
        // 1 s stolen of 2 CPUs x 5 s.
        assert_eq!(used.steal_share(), 0.1);
        let same = at(0, 0, 0, 0);
        assert_eq!(same.until(&same).steal_share(), 0.0, "no time, no share");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_snapshot_reads_this_process_and_counts_its_own_cpu_time() {
        let before = snapshot().expect("Linux has /proc and getrusage");
        let mut x = 0u64;
        // Enough work to show up in a microsecond counter.
        for i in 0..20_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let used = before.until(&snapshot().expect("still readable"));
        assert!(used.user_s + used.system_s > 0.0, "{used:?} after {x}");
        assert!(used.cpus >= 1);
    }
}
