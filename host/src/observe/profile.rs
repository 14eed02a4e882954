//! `--profile FILE.svg`: a CPU flame graph of the run (the `pprof` crate sampling every thread
//! at 999 Hz; stacks unwound with the platform unwinder), written when the run ends.
//!
//! The file is pc-host's: created new, or an earlier profile of pc-host's (its title names
//! it), replaced; anything else is refused before the run starts.

use std::fs::File;
use std::path::{Path, PathBuf};

use pprof::ProfilerGuard;

/// What the title of every profile pc-host writes starts with.
const TITLE: &str = "pc-host profile";
/// Samples per second per thread.
const FREQUENCY: i32 = 999;

/// A profile being taken.
pub struct Profile {
    guard: ProfilerGuard<'static>,
    path: PathBuf,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Checks `path` can be written.
    ///
    /// # Errors
    /// One line: a missing directory, an existing file that is not a pc-host profile, or a
    /// name not ending in `.svg`.
    /// `taken`: the paths the run uses for something else.
    pub fn check(path: &Path, taken: &[PathBuf]) -> Result<(), String> {
        super::own_file::check(
            ("--profile", path),
            ("pc-host profile", "profile.svg"),
            taken,
            is_profile,
        )?;
        crate::paths::svg_name("--profile", path)
    }

    /// Starts sampling.
    ///
    /// # Errors
    /// The profiler could not start (its signal handler or timer).
    pub fn start(path: &Path) -> Result<Self, String> {
        let guard = pprof::ProfilerGuardBuilder::default()
            .frequency(FREQUENCY)
            .blocklist(&["libc", "libgcc", "pthread", "vdso"])
            .build()
            .map_err(|e| format!("--profile: cannot start the profiler: {e}"))?;
        Ok(Self {
            guard,
            path: path.to_path_buf(),
        })
    }

    /// Stops sampling and writes the flame graph of run `run_id`.
    ///
    /// # Errors
    /// The report or the file could not be written.
    pub fn finish(self, run_id: i64) -> Result<PathBuf, String> {
        let shown = self.path.display().to_string();
        let report = self
            .guard
            .report()
            .build()
            .map_err(|e| format!("--profile {shown}: {e}"))?;
        drop(self.guard);
        if report.data.is_empty() {
            return Err(format!(
                "--profile {shown}: the run was too short to take a sample; nothing written"
            ));
        }
        let file = File::create(&self.path).map_err(|e| format!("--profile {shown}: {e}"))?;
        let mut options = pprof::flamegraph::Options::default();
        options.title = format!("{TITLE}: run {run_id}");
        report
            .flamegraph_with_options(file, &mut options)
            .map_err(|e| format!("--profile {shown}: {e}"))?;
        Ok(self.path)
    }
}

fn is_profile(path: &Path) -> bool {
    use std::io::Read as _;
    let Ok(f) = File::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    // inferno writes the title early in the document.
    if f.take(64 * 1024).read_to_end(&mut head).is_err() {
        return false;
    }
    String::from_utf8_lossy(&head).contains(TITLE)
}
