//! Iterating a split ring's consumer (feature `std`; also under loom): the values, each popped
//! with the blocking `pop`, until the ring is closed and drained, as a channel receiver's
//! `iter` gives them.

#![cfg(any(feature = "std", loom))]

use core::fmt;
use core::iter::FusedIterator;

use super::{Consumer, Storage};

/// The values a [`Consumer`] pops, each waiting while the ring is empty, until the ring is
/// closed and drained: [`Consumer::iter`], or `for v in &consumer`. Once it has returned
/// `None` it always does (a closed ring stays closed).
#[must_use = "iterators are lazy and do nothing unless consumed"]
pub struct Iter<'c, 'a, T, S: Storage<T>> {
    consumer: &'c Consumer<'a, T, S>,
}

impl<'c, 'a, T, S: Storage<T>> Iter<'c, 'a, T, S> {
    pub(super) fn new(consumer: &'c Consumer<'a, T, S>) -> Self {
        Self { consumer }
    }
}

impl<T, S: Storage<T>> Iterator for Iter<'_, '_, T, S> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.consumer.pop().ok()
    }
}

impl<T, S: Storage<T>> FusedIterator for Iter<'_, '_, T, S> {}

impl<T, S: Storage<T>> fmt::Debug for Iter<'_, '_, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("consumer", self.consumer)
            .finish()
    }
}

impl<'c, 'a, T, S: Storage<T>> IntoIterator for &'c Consumer<'a, T, S> {
    type Item = T;
    type IntoIter = Iter<'c, 'a, T, S>;

    /// [`Consumer::iter`]: `for v in &consumer`.
    fn into_iter(self) -> Iter<'c, 'a, T, S> {
        Iter::new(self)
    }
}
