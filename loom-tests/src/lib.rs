//! Loom model checks of pc-core live in `tests/`, one file per structure. They compile only with
//! `RUSTFLAGS="--cfg loom"`; see `.ci/run`. What the models share lives here.

/// Checks that `consumers` (each in pop order) hold exactly the pushed prefix of every
/// producer's values, each once, each producer's in order.
pub fn check_history(producers: &[(&[u32], usize)], consumers: &[Vec<u32>]) {
    let mut expected: Vec<u32> = producers
        .iter()
        .flat_map(|(v, n)| v[..*n].to_vec())
        .collect();
    let mut all: Vec<u32> = consumers.concat();
    expected.sort_unstable();
    all.sort_unstable();
    assert_eq!(all, expected, "values lost or duplicated");
    for got in consumers {
        for (values, _) in producers {
            let order: Vec<usize> = got
                .iter()
                .filter_map(|x| values.iter().position(|v| v == x))
                .collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "FIFO per producer: {got:?}"
            );
        }
    }
}

/// How many times a thread retries a full or empty ring before giving up. Loom cannot schedule
/// several spinning threads fairly, so the models' retry loops are bounded.
#[cfg(loom)]
pub const PATIENCE: usize = 2;

/// Pushes `values` in order with `push` (a `try_push`); stops at the first value still refused
/// after `PATIENCE` retries. Returns how many were pushed.
#[cfg(loom)]
pub fn push_with(
    values: &[u32],
    mut push: impl FnMut(u32) -> Result<(), pc_core::PushError<u32>>,
) -> usize {
    for (i, &v) in values.iter().enumerate() {
        let mut tries = 0;
        loop {
            match push(v) {
                Ok(()) => break,
                Err(pc_core::PushError::Full(_)) if tries < PATIENCE => {
                    tries += 1;
                    loom::thread::yield_now();
                }
                Err(_) => return i,
            }
        }
    }
    values.len()
}

/// Runs `pop` (which adds what it pops to its argument) until `n` values, `Closed`, or
/// `PATIENCE` consecutive `Empty` results.
#[cfg(loom)]
pub fn pop_with(
    n: usize,
    mut pop: impl FnMut(&mut Vec<u32>) -> Result<(), pc_core::PopError>,
) -> Vec<u32> {
    let mut got = Vec::new();
    let mut tries = 0;
    while got.len() < n {
        match pop(&mut got) {
            Ok(()) => tries = 0,
            Err(pc_core::PopError::Empty) if tries < PATIENCE => {
                tries += 1;
                loom::thread::yield_now();
            }
            Err(_) => break,
        }
    }
    got
}
