//! The output file: `plot` creates it, or replaces one that `plot` wrote before (its first line
//! is [`MARKER`]); any other file is left untouched.

use std::io::{ErrorKind, Read as _};
use std::path::{Path, PathBuf};

use anyhow::anyhow;

use crate::config::ConfigError;

/// The first line of every file `plot` writes: what marks it as pc-host's to replace.
pub const MARKER: &str = "<!-- pc-host plot -->";

/// Where the drawing goes, once [`check`] has allowed it.
#[derive(Debug)]
pub enum Target {
    /// Nothing is there: create the file (failing if one appears meanwhile).
    New(PathBuf),
    /// An earlier plot is there: replace it whole (write beside it, then rename).
    Replace(PathBuf),
}

/// Allows `out` if it is spelled as a file (not `out/`) named `*.svg`, its directory exists,
/// and it is either absent or a regular file starting with [`MARKER`]. Reads only.
///
/// # Errors
/// A [`ConfigError`] naming `out` otherwise.
pub fn check(out: &Path) -> Result<Target, ConfigError> {
    crate::paths::spelled_as_file("--output", out, "plot.svg").map_err(ConfigError)?;
    let target = place(out)?;
    // After the checks above, so that a file pc-host must not touch is named as such first.
    crate::paths::svg_name("--output", out).map_err(ConfigError)?;
    Ok(target)
}

/// What [`check`] allows at `out` (a spelling as a file and the name aside).
fn place(out: &Path) -> Result<Target, ConfigError> {
    let shown = out.display();
    let dir = crate::paths::dir_of(out);
    if !dir.is_dir() {
        let d = dir.display();
        let why = if dir.exists() {
            format!("{d} is not a directory")
        } else {
            format!("directory {d} does not exist")
        };
        return Err(ConfigError(format!("--output {shown}: {why}")));
    }
    let meta = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Target::New(out.to_owned())),
        Err(e) => return Err(ConfigError(format!("--output {shown}: {e}"))),
        Ok(meta) => meta,
    };
    if !meta.is_file() {
        return Err(ConfigError(format!(
            "--output {shown} exists and is not a regular file; pc-host will not replace it: choose \
             another --output"
        )));
    }
    if !starts_with_marker(out).map_err(|e| ConfigError(format!("--output {shown}: {e}")))? {
        return Err(ConfigError(format!(
            "--output {shown} exists and was not written by pc-host plot; pc-host will not overwrite \
             it: remove it or choose another --output"
        )));
    }
    Ok(Target::Replace(out.to_owned()))
}

/// Writes `svg` (which must start with [`MARKER`]) to `target`. A failure leaves no partial
/// file behind, and an earlier plot as it was.
///
/// # Errors
/// A [`ConfigError`] if a file appeared at a [`Target::New`] path meanwhile; others if the
/// write fails.
pub fn write(target: &Target, svg: &str) -> anyhow::Result<()> {
    debug_assert!(svg.starts_with(MARKER));
    match target {
        Target::New(out) => match crate::paths::create_with(out, svg.as_bytes()) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(ConfigError(format!(
                "--output {}: a file appeared there meanwhile; pc-host will not overwrite it",
                out.display()
            ))
            .into()),
            other => other.map_err(|e| cannot_write(out, &e)),
        },
        Target::Replace(out) => crate::paths::replace_with(out, "plot", svg.as_bytes())
            .map_err(|e| cannot_write(out, &e)),
    }
}

fn starts_with_marker(path: &Path) -> std::io::Result<bool> {
    let mut head = Vec::with_capacity(MARKER.len());
    std::fs::File::open(path)?
        .take(MARKER.len() as u64)
        .read_to_end(&mut head)?;
    Ok(head == MARKER.as_bytes())
}

fn cannot_write(out: &Path, e: &std::io::Error) -> anyhow::Error {
    anyhow!("cannot write {}: {e}", out.display())
}
