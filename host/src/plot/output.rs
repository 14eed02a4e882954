//! The output file: `plot` creates it, or replaces one that `plot` wrote before (its first line
//! is [`MARKER`]); any other file is left untouched.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read as _, Write as _};
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
    crate::paths::spelled_as_file("-o", out, "plot.svg").map_err(ConfigError)?;
    let target = place(out)?;
    // After the checks above, so that a file pc-host must not touch is named as such first.
    crate::paths::svg_name("-o", out).map_err(ConfigError)?;
    Ok(target)
}

/// What [`check`] allows at `out` (a spelling as a file and the name aside).
fn place(out: &Path) -> Result<Target, ConfigError> {
    let shown = out.display();
    let dir = directory(out);
    if !dir.is_dir() {
        let d = dir.display();
        let why = if dir.exists() {
            format!("{d} is not a directory")
        } else {
            format!("directory {d} does not exist")
        };
        return Err(ConfigError(format!("-o {shown}: {why}")));
    }
    let meta = match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Target::New(out.to_owned())),
        Err(e) => return Err(ConfigError(format!("-o {shown}: {e}"))),
        Ok(meta) => meta,
    };
    if !meta.is_file() {
        return Err(ConfigError(format!(
            "-o {shown} exists and is not a regular file; pc-host will not replace it: choose \
             another -o"
        )));
    }
    if !starts_with_marker(out).map_err(|e| ConfigError(format!("-o {shown}: {e}")))? {
        return Err(ConfigError(format!(
            "-o {shown} exists and was not written by pc-host plot; pc-host will not overwrite \
             it: remove it or choose another -o"
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
        Target::New(out) => {
            let file = OpenOptions::new().write(true).create_new(true).open(out);
            let mut file = match file {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    return Err(ConfigError(format!(
                        "-o {}: a file appeared there meanwhile; pc-host will not overwrite it",
                        out.display()
                    ))
                    .into());
                }
                other => other.map_err(|e| cannot_write(out, &e))?,
            };
            file.write_all(svg.as_bytes()).map_err(|e| {
                let _ = std::fs::remove_file(out);
                cannot_write(out, &e)
            })
        }
        Target::Replace(out) => replace(out, svg),
    }
}

/// Writes a temporary file beside `out` and renames it over `out`: readers see the old plot or
/// the new one, never a part.
fn replace(out: &Path, svg: &str) -> anyhow::Result<()> {
    let name = out
        .file_name()
        .map_or("plot".into(), |n| n.to_string_lossy());
    let tmp = directory(out).join(format!(".{name}.pc-host-plot-{}.tmp", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(svg.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, out));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        cannot_write(out, &e)
    })
}

/// The directory `out` is in (`.` for a bare file name).
fn directory(out: &Path) -> &Path {
    match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
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
