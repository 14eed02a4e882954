//! A `--lanes` run's sources: each lane's token bucket (its share of `--rps`) and chunk, which
//! lane each producer feeds, and each generator's share of `--messages`. The split rule is
//! `config::lanes::split`.
//!
//! Lanes are independent sources: a generator thread feeds one lane only and takes tokens
//! from that lane's bucket only, so a full lower lane blocks its own producers and never a
//! higher lane's records.

use std::ops::Range;

use anyhow::anyhow;
use pc_core::TokenBucket;

use crate::config::lanes::split;
use crate::config::{Config, Stop};
use crate::report::summary::plural;
use crate::source::Context;

/// One lane's side of the sources.
#[derive(Debug)]
pub struct Lane {
    /// Records/s for this lane (0: unlimited).
    pub rps: u64,
    pub burst: u64,
    pub chunk: u64,
    /// Unlimited: `None`. Taken by [`buckets`] when the run starts.
    pub bucket: Option<TokenBucket>,
    /// The generator threads (producer ids) that feed it; empty for other sources.
    pub producers: Range<usize>,
    /// A generator with `--messages`: the lane's share.
    pub messages: Option<u64>,
}

/// The lanes' plan; empty without `--lanes`. The config has checked that every total splits.
///
/// # Errors
/// A lane's rate the bucket cannot take.
pub fn plan(cfg: &Config) -> anyhow::Result<Vec<Lane>> {
    if cfg.lanes.is_empty() {
        return Ok(Vec::new());
    }
    let weights: Vec<u64> = cfg.lanes.iter().map(|l| l.weight).collect();
    let k = weights.len();
    let fed = cfg.fed_lanes();
    let rates = match cfg.rps {
        0 => vec![0; k],
        rps => split_over_fed(rps, &weights, &fed)
            .ok_or_else(|| anyhow!("--rps {rps}: too low for the lanes"))?,
    };
    let (producers, messages) = if cfg.generated() {
        let p = split(cfg.producers as u64, &weights)
            .ok_or_else(|| anyhow!("--producers {}: fewer than the lanes", cfg.producers))?;
        let m = match cfg.stop {
            Stop::Messages(n) => Some(
                split(n, &weights)
                    .ok_or_else(|| anyhow!("--messages {n}: fewer than the lanes"))?,
            ),
            _ => None,
        };
        (p, m)
    } else {
        (vec![0; k], None)
    };
    let mut first = 0;
    let mut lanes = Vec::with_capacity(k);
    for (i, &rps) in rates.iter().enumerate() {
        let n = producers[i] as usize;
        let threads = if cfg.generated() {
            n
        } else {
            cfg.sources.iter().filter(|s| cfg.lane_of(s) == i).count()
        };
        let chunk = crate::flow::chunk(rps, threads, cfg.capacity);
        let burst = (rps / 10).max(chunk);
        let bucket = match rps {
            0 => None,
            r => Some(
                TokenBucket::try_per_second(r, burst)
                    .map_err(|e| anyhow!("lane {}: {r} records/s: {e}", cfg.lanes[i].name))?,
            ),
        };
        lanes.push(Lane {
            rps,
            burst,
            chunk,
            bucket,
            producers: first..first + n,
            messages: messages.as_ref().map(|m| m[i]),
        });
        first += n;
    }
    Ok(lanes)
}

/// `total` split by weight over the fed lanes only (a lane no source feeds would never use
/// its share); the others get 0.
fn split_over_fed(total: u64, weights: &[u64], fed: &[bool]) -> Option<Vec<u64>> {
    let fed_weights: Vec<u64> = weights
        .iter()
        .zip(fed)
        .filter(|&(_, &f)| f)
        .map(|(&w, _)| w)
        .collect();
    let mut shares = split(total, &fed_weights)?.into_iter();
    Some(
        fed.iter()
            .map(|&f| if f { shares.next().unwrap_or(0) } else { 0 })
            .collect(),
    )
}

/// Each generator thread's lane and share of `--messages` (`None`: until stopped), by
/// producer id. Without lanes: lane 0, and `--messages` split evenly (the first ones take the
/// remainder). With lanes, the same within each lane, of the lane's share.
pub fn generators(cfg: &Config, lanes: &[Lane]) -> Vec<(u8, Option<u64>)> {
    let even = |total: Option<u64>, n: usize| -> Vec<Option<u64>> {
        let n64 = n as u64;
        (0..n64)
            .map(|i| total.map(|t| t / n64 + u64::from(i < t % n64)))
            .collect()
    };
    if lanes.is_empty() {
        let total = match cfg.stop {
            Stop::Messages(n) => Some(n),
            _ => None,
        };
        return even(total, cfg.producers)
            .into_iter()
            .map(|q| (0, q))
            .collect();
    }
    let mut out = Vec::with_capacity(cfg.producers);
    for (i, lane) in lanes.iter().enumerate() {
        let quotas = even(lane.messages, lane.producers.len());
        out.extend(quotas.into_iter().map(|q| (i as u8, q)));
    }
    out
}

/// The lane of each producer slot in the stats: the generators', or each source's.
pub fn producer_lanes(cfg: &Config, lanes: &[Lane]) -> Vec<u8> {
    if cfg.generated() {
        generators(cfg, lanes).iter().map(|g| g.0).collect()
    } else {
        cfg.sources.iter().map(|s| cfg.lane_of(s) as u8).collect()
    }
}

/// Each lane's bucket, taken out of the plan and started empty at `start`.
pub fn buckets(lanes: &mut [Lane], start: u64) -> Vec<Option<TokenBucket>> {
    lanes
        .iter_mut()
        .map(|l| l.bucket.take().map(|b| b.starting_empty_at(start)))
        .collect()
}

/// One source context per lane: `cx` with the lane's number, bucket and chunk.
pub fn contexts<'a>(
    cx: Context<'a>,
    lanes: &[Lane],
    buckets: &'a [Option<TokenBucket>],
) -> Vec<Context<'a>> {
    lanes
        .iter()
        .zip(buckets)
        .enumerate()
        .map(|(i, (lane, bucket))| Context {
            lane: i as u8,
            bucket: bucket.as_ref(),
            chunk: lane.chunk,
            ..cx
        })
        .collect()
}

/// The header's line: each lane's producers and rate.
pub fn describe(cfg: &Config, lanes: &[Lane]) -> Option<String> {
    if lanes.is_empty() {
        return None;
    }
    let each: Vec<String> = cfg
        .lanes
        .iter()
        .zip(lanes)
        .zip(cfg.fed_lanes())
        .map(|((l, p), fed)| {
            let rate = match p.rps {
                _ if !fed => "no source".to_string(),
                0 => "unlimited".to_string(),
                r => format!("{r} records/s"),
            };
            let mut s = format!("{} (weight {}): {rate}", l.name, l.weight);
            if cfg.generated() {
                s.push_str(&format!(", {}", plural(p.producers.len(), "producer")));
            }
            if let Some(m) = p.messages {
                s.push_str(&format!(", {}", plural(m, "record")));
            }
            s
        })
        .collect();
    Some(format!(
        "lanes, highest priority first, each its own ring and bucket: {}",
        each.join("; ")
    ))
}
