//! Small helpers for the run's threads.

use std::thread::{Scope, ScopedJoinHandle};

/// Runs its closure when dropped (also when the thread unwinds), unless disarmed (`None`).
pub struct OnDrop<F: FnOnce()>(pub Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Spawns a named scoped thread; a failure to spawn is recorded as a run error.
pub fn spawn<'scope, T: Send + 'scope>(
    s: &'scope Scope<'scope, '_>,
    name: String,
    errors: &mut Vec<String>,
    body: impl FnOnce() -> T + Send + 'scope,
) -> Option<ScopedJoinHandle<'scope, T>> {
    match std::thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(s, body)
    {
        Ok(handle) => Some(handle),
        Err(e) => {
            errors.push(format!("could not start thread {name}: {e}"));
            None
        }
    }
}
