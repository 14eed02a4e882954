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
                "--profile {shown}: no sample was taken (the run used too little CPU time for \
                 one at {FREQUENCY} Hz); nothing written"
            ));
        }
        let mut svg = Vec::new();
        let mut options = pprof::flamegraph::Options::default();
        options.title = format!("{TITLE}: run {run_id}");
        report
            .flamegraph_with_options(&mut svg, &mut options)
            .map_err(|e| format!("--profile {shown}: {e}"))?;
        write(&self.path, &svg)?;
        Ok(self.path)
    }
}

/// Writes `svg` at `path` as [`Profile::check`] allowed before the run, looked at again now
/// (a long run leaves time for another file to be put there): through links, as the check
/// looked; created if nothing is there, replaced whole if a pc-host profile is, and otherwise
/// not written.
fn write(given: &Path, svg: &[u8]) -> Result<(), String> {
    let shown = given.display();
    // A link to nothing put there would have the profile made wherever it points.
    crate::paths::link_to_nothing("--profile", given)?;
    let target = crate::paths::through_links(given);
    let path = target.as_deref().unwrap_or(given);
    let refused = || {
        format!(
            "--profile {shown}: a file pc-host did not write is there now; it is left as it is \
             and the profile is not written"
        )
    };
    let written = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match crate::paths::create_with(path, svg) {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(refused()),
                other => other,
            }
        }
        Err(e) => Err(e),
        Ok(meta) if meta.is_file() && is_profile(path) => {
            crate::paths::replace_with(path, "profile", svg)
        }
        Ok(_) => return Err(refused()),
    };
    written.map_err(|e| format!("--profile {shown}: {e}"))
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

#[cfg(test)]
mod tests {
    use super::{TITLE, write};

    /// A file put at the profile's path during the run, directly or behind a link, is left as
    /// it is; nothing there, or an earlier profile, gets the new one.
    #[test]
    fn a_file_put_at_the_path_during_the_run_is_not_overwritten() {
        let dir = crate::test_support::fresh_dir("profile");
        let path = dir.join("p.svg");
        let svg = format!("<svg><title>{TITLE}: run 1</title></svg>");

        std::fs::write(&path, "theirs").unwrap();
        let refused = write(&path, svg.as_bytes()).unwrap_err();
        assert!(refused.contains("did not write"), "{refused}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "theirs");

        std::fs::remove_file(&path).unwrap();
        let target = dir.join("theirs.svg");
        std::fs::write(&target, "theirs").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(write(&path, svg.as_bytes()).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "theirs");

        std::fs::remove_file(&path).unwrap();
        write(&path, svg.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), svg);
        let again = svg.replace("run 1", "run 2");
        write(&path, again.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), again);

        // A link to an earlier profile, as the check allows: its target gets the new one.
        let latest = dir.join("latest.svg");
        std::os::unix::fs::symlink(&path, &latest).unwrap();
        let third = svg.replace("run 1", "run 3");
        write(&latest, third.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), third);
        assert!(std::fs::symlink_metadata(&latest).unwrap().is_symlink());
        std::fs::remove_file(&latest).unwrap();

        // A link to nothing put at the path: nothing is made where it points.
        std::os::unix::fs::symlink(dir.join("elsewhere.svg"), &latest).unwrap();
        assert!(write(&latest, svg.as_bytes()).is_err());
        assert!(!dir.join("elsewhere.svg").exists());
        std::fs::remove_file(&latest).unwrap();
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 2, "no temporary file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
