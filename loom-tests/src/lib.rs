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
