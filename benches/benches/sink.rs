//! pc-host's SQLite sink: rows/s through pc-host's own writer (`pc_host::sink::sqlite::Writer`: the
//! schema, pragmas, WAL and cached multi-row INSERTs a run uses, with pc-host's checkpoint
//! thread running beside it), for 100, 1 000 and 10 000 rows per transaction, with
//! `--synchronous normal` and `full`.
//!
//! Each iteration commits one pre-built batch of 64-byte messages (pc-host's default payload,
//! 10 producers taking turns) as one transaction; criterion reports rows/s. The database is a
//! temp file, removed after each case. There is no peer here: it is pc-host's own ceiling.
//!
//! Run: `CARGO_TARGET_DIR=/work/target-h3 cargo bench -p pc-benches --bench sink`

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use pc_benches::sink::{SinkDb, messages};
use pc_host::config::Synchronous;

/// pc-host's default `--payload-size`, and its default `--producers`.
const PAYLOAD: usize = 64;
const PRODUCERS: u32 = 10;

fn sink(c: &mut Criterion) {
    let mut group = c.benchmark_group("sink_rows");
    // Every sample the same length: a commit costs milliseconds, and the checkpoint thread's
    // passes land in each sample alike.
    group.sampling_mode(SamplingMode::Flat);
    for synchronous in [Synchronous::Normal, Synchronous::Full] {
        for rows in [100usize, 1_000, 10_000] {
            let batches = vec![messages(rows, PRODUCERS, PAYLOAD)];
            let name = format!("{}-{rows}", synchronous.as_str());
            let mut db = SinkDb::create(&name, synchronous)
                .unwrap_or_else(|e| panic!("sink bench: cannot create the database: {e:#}"));
            group.throughput(Throughput::Elements(rows as u64));
            db.with_checkpointer(|writer| {
                group.bench_with_input(
                    BenchmarkId::new(format!("synchronous_{}", synchronous.as_str()), rows),
                    &batches,
                    |b, batches| b.iter(|| writer.commit(batches)),
                );
            });
            // Whatever criterion ran, every committed row must be there.
            assert!(
                db.rows().is_ok_and(|n| n > 0 && n % rows as u64 == 0),
                "sink bench: {} holds a partial batch",
                db.path().display()
            );
        }
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(15)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sink
}
criterion_main!(benches);
