//! The rule for the files the observers write (`--latency-log`, `--profile`): pc-host writes a
//! file it creates, or one it wrote before (recognised by its own mark), in a directory it may
//! write to, and never a path the run uses for something else.

use std::path::{Path, PathBuf};

use crate::paths::{dir_of, same_place, spelled_as_file, writable};

/// Checks that `path` (given as `flag`) is spelled as a file (not ending in `/`: the line then
/// suggests `example` inside it), is in an existing, writable directory, is none of `taken`,
/// is not a link to nothing, and, if it exists, that it is a regular file (a FIFO would block
/// the look inside) that `is_ours` recognises as a `what` pc-host wrote.
///
/// # Errors
/// One line saying which of these fails.
pub fn check(
    (flag, path): (&str, &Path),
    (what, example): (&str, &str),
    taken: &[PathBuf],
    is_ours: impl FnOnce(&Path) -> bool,
) -> Result<(), String> {
    spelled_as_file(flag, path, example)?;
    let shown = path.display();
    let dir = dir_of(path);
    if !dir.is_dir() {
        return Err(format!(
            "{flag} {shown}: directory {} does not exist",
            dir.display()
        ));
    }
    if !writable(dir) {
        return Err(format!(
            "{flag} {shown}: directory {} is not writable",
            dir.display()
        ));
    }
    if taken.iter().any(|t| same_place(t, path)) {
        return Err(format!(
            "{flag} {shown} is a file this run already uses (the database, an input or another \
             output): use another path"
        ));
    }
    crate::paths::link_to_nothing(flag, path)?;
    // Through a link: what would be written is its target.
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => Err(format!(
            "{flag} {shown} exists and is not a regular file; pc-host will not write to it: \
             use another path"
        )),
        Ok(_) if !is_ours(path) => Err(format!(
            "{flag} {shown} exists and is not a {what}; pc-host will not write to it: use \
             another path"
        )),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{flag} {shown}: {e}")),
    }
}
