//! How sources use the one shared token bucket: tokens in chunks of about a millisecond of the
//! rate, naps short enough to notice a stop.

use std::sync::atomic::Ordering;
use std::time::Duration;

use pc_core::Grant;

use super::Context;

/// The longest pause between two checks of the stop flag while waiting for tokens.
const MAX_NAP: Duration = Duration::from_millis(5);

/// What a take gave.
#[derive(Debug)]
pub enum Take<'b> {
    /// Tokens (or, with no bucket, permission for `want` records), taken at clock `now`.
    Go { grant: Option<Grant<'b>>, now: u64 },
    /// Stop: the run is stopping, or the deadline has passed.
    Stop,
}

impl<'a> Context<'a> {
    /// Takes between 1 and `want` tokens (`want >= 1`), napping while none is due; with no
    /// bucket, returns at once.
    pub fn take(&self, want: u64) -> Take<'a> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Take::Stop;
            }
            let now = self.clock.now();
            if self.deadline.is_some_and(|d| now >= d) {
                return Take::Stop;
            }
            let Some(bucket) = self.bucket else {
                return Take::Go { grant: None, now };
            };
            match bucket.try_acquire_up_to(want, now) {
                // Granted tokens are due at or before `now`, so before the deadline.
                Ok(grant) => {
                    return Take::Go {
                        grant: Some(grant),
                        now,
                    };
                }
                Err(denied) => {
                    let wait = denied.wait_ns().map_or(MAX_NAP, Duration::from_nanos);
                    std::thread::sleep(wait.min(MAX_NAP));
                }
            }
        }
    }
}
