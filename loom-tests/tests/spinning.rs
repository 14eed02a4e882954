//! Loom model of the shared ring's `try_pop_batch_spinning` wait: its count lives in the
//! consumers' word beside the copy of the closed mark, and a close racing the count's updates
//! must never be lost (a pop after both says `Closed`, not `Empty` for ever). Against the
//! mutant `pop_wait_store` (the count written with a plain store, which can overwrite the
//! closed bit set just before) the model fails; `.ci/run` requires it.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use pc_core::{PopError, Ring};

#[test]
fn spinning_pop_keeps_a_racing_close() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32, 2>::new());
        let closer = {
            let ring = Arc::clone(&ring);
            thread::spawn(move || {
                ring.close();
            })
        };
        // The first call finds the ring empty (or closed) and starts the wait; the second
        // counts a waiting call (or sees the close): both write the count.
        let mut out = Vec::new();
        for _ in 0..2 {
            let popped = ring.try_pop_batch_spinning(&mut out, 2);
            assert!(matches!(popped, Err(PopError::Empty | PopError::Closed)));
        }
        closer.join().unwrap();
        assert_eq!(ring.try_pop(), Err(PopError::Closed), "the close was lost");
        assert_eq!(
            ring.try_pop_batch_spinning(&mut out, 2),
            Err(PopError::Closed)
        );
    });
}
