//! How a handle of a split ring reaches its ring: borrowed for `'a` ([`RingCore::split`]), or
//! owned together with the other handles ([`RingCore::into_split`], feature `alloc`).
//!
//! Either way a handle holds a pointer to the ring, read without a branch on the hot paths;
//! an owned split also holds a share of the `Arc` that keeps the ring alive, so the ring is
//! dropped with the last of its handles, producers and consumers alike.

use core::marker::PhantomData;
use core::ptr::NonNull;

#[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
use alloc::sync::Arc;

use super::{RingCore, Storage};

/// A handle's way to its ring. Invariant: `ring` is valid for as long as this `Link` lives:
/// it points at a ring borrowed for `'a` (which outlives the `Link`), or at the ring that
/// `owner` keeps alive.
pub(super) struct Link<'a, T, S: Storage<T>> {
    ring: NonNull<RingCore<T, S>>,
    /// The share of an owned split's ring (`None` for a borrowed split).
    #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
    owner: Option<Arc<RingCore<T, S>>>,
    borrow: PhantomData<&'a RingCore<T, S>>,
}

// SAFETY: a `Link` is a `&'a RingCore` (which is `Send` when the ring is `Sync`), or an `Arc`
// of it (`Send` when the ring is `Send` and `Sync`) and a pointer into that `Arc`, which is
// valid on any thread while the `Arc` is held. `RingCore` is `Send` and `Sync` under the same
// bound (`T: Send`).
unsafe impl<T, S: Storage<T>> Send for Link<'_, T, S> where RingCore<T, S>: Send + Sync {}

impl<'a, T, S: Storage<T>> Link<'a, T, S> {
    /// A link to a ring borrowed for `'a`.
    pub(super) fn borrowed(ring: &'a RingCore<T, S>) -> Self {
        Self {
            ring: NonNull::from(ring),
            #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
            owner: None,
            borrow: PhantomData,
        }
    }

    /// A link that keeps `ring` alive (a share of it).
    #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
    pub(super) fn owned(ring: Arc<RingCore<T, S>>) -> Self {
        Self {
            ring: NonNull::from(&*ring),
            owner: Some(ring),
            borrow: PhantomData,
        }
    }

    /// The ring, for as long as this link is borrowed.
    #[inline(always)]
    pub(super) fn get(&self) -> &RingCore<T, S> {
        // SAFETY: valid while `self` lives (the type's invariant), and only shared references
        // to the ring are ever made from it (a split ring is reached only through `&`).
        unsafe { self.ring.as_ref() }
    }

    /// Test support: the ring for all of `'a`, which only a borrowed split's link can give.
    ///
    /// # Panics
    /// For an owned split's link, whose ring lives only as long as its handles.
    #[cfg(test)]
    pub(super) fn borrowed_ring(&self) -> &'a RingCore<T, S> {
        #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
        assert!(
            self.owner.is_none(),
            "an owned split's ring is not borrowed"
        );
        // SAFETY: a borrowed split's pointer comes from a `&'a RingCore` (`borrowed`).
        unsafe { self.ring.as_ref() }
    }
}

impl<T, S: Storage<T>> Clone for Link<'_, T, S> {
    fn clone(&self) -> Self {
        Self {
            ring: self.ring,
            #[cfg(all(feature = "alloc", target_has_atomic = "ptr"))]
            owner: self.owner.clone(),
            borrow: PhantomData,
        }
    }
}
