//! Model-based test: random single-thread sequences of single and batch operations and close,
//! run against both ring storages and a `VecDeque` reference model.

use std::collections::VecDeque;

use pc_core::{HeapRing, PopError, PushError, Ring, RingCore};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Push,
    Pop,
    PushBatch(usize),
    PopBatch(usize),
    Close,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Push),
        4 => Just(Op::Pop),
        2 => (0usize..12).prop_map(Op::PushBatch),
        2 => (0usize..12).prop_map(Op::PopBatch),
        1 => Just(Op::Close),
    ]
}

/// Runs `ops` on `ring` and on the model, comparing every result and the observable state.
fn check<S: pc_core::ring::Storage<u32>>(ring: &RingCore<u32, S>, ops: &[Op]) {
    let cap = ring.capacity();
    let mut model = VecDeque::new();
    let mut closed = false;
    let mut next = 0u32;
    for op in ops {
        match *op {
            Op::Push => {
                let got = ring.try_push(next);
                let want = if closed {
                    Err(PushError::Closed(next))
                } else if model.len() == cap {
                    Err(PushError::Full(next))
                } else {
                    model.push_back(next);
                    Ok(())
                };
                assert_eq!(got, want);
                next += 1;
            }
            Op::Pop => {
                let want = match model.pop_front() {
                    Some(v) => Ok(v),
                    None if closed => Err(PopError::Closed),
                    None => Err(PopError::Empty),
                };
                assert_eq!(ring.try_pop(), want);
            }
            Op::PushBatch(k) => {
                let mut items = next..next + k as u32;
                let got = ring.try_push_batch(&mut items);
                let fits = (cap - model.len()).min(k);
                let want = if closed {
                    Err(PushError::Closed(()))
                } else if k == 0 {
                    Ok(0)
                } else if fits == 0 {
                    Err(PushError::Full(()))
                } else {
                    model.extend(next..next + fits as u32);
                    Ok(fits)
                };
                assert_eq!(got, want);
                let taken = got.unwrap_or(0) as u32;
                assert_eq!(
                    items.next(),
                    (taken < k as u32).then_some(next + taken),
                    "untaken items stay"
                );
                next += k as u32;
            }
            Op::PopBatch(k) => {
                let mut out = Vec::new();
                let got = ring.try_pop_batch(&mut out, k);
                let n = k.min(model.len());
                let want = if k == 0 {
                    if closed && model.is_empty() {
                        Err(PopError::Closed)
                    } else {
                        Ok(0)
                    }
                } else if n == 0 {
                    Err(if closed {
                        PopError::Closed
                    } else {
                        PopError::Empty
                    })
                } else {
                    Ok(n)
                };
                assert_eq!(got, want);
                let expected: Vec<u32> = model.drain(..n.min(got.unwrap_or(0))).collect();
                assert_eq!(out, expected);
            }
            Op::Close => {
                assert_eq!(ring.close(), !closed);
                closed = true;
            }
        }
        assert_eq!(ring.len(), model.len());
        assert_eq!(ring.is_empty(), model.is_empty());
        assert_eq!(ring.is_full(), model.len() == cap);
        assert_eq!(ring.is_closed(), closed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn behaves_like_vecdeque_inline(ops in proptest::collection::vec(op(), 0..200)) {
        check(&Ring::<u32, 8>::new(), &ops);
    }

    #[test]
    fn behaves_like_vecdeque_heap(cap_log in 1u32..5, ops in proptest::collection::vec(op(), 0..200)) {
        check(&HeapRing::<u32>::with_capacity(1 << cap_log), &ops);
    }
}
