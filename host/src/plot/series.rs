//! The lines of the two charts, made from a run's intervals: throughput in msg/s and latency in
//! ms, each with its axis range.

use super::data::Interval;

/// A line: the name shown in the legend, and its points (seconds into the run, value), split
/// into segments where an interval has no value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: &'static str,
    pub segments: Vec<Vec<(f64, f64)>>,
}

impl Series {
    /// Builds the series from one value per interval (`None` breaks the line). `value` gets the
    /// interval and its length in seconds.
    fn of(
        name: &'static str,
        iv: &[Interval],
        value: impl Fn(&Interval, f64) -> Option<f64>,
    ) -> Self {
        let mut segments = vec![];
        let mut current: Vec<(f64, f64)> = vec![];
        let mut start = 0.0;
        for i in iv {
            let length = i.t_s - start;
            start = i.t_s;
            match value(i, length) {
                Some(v) if v.is_finite() => current.push((i.t_s, v)),
                _ if current.is_empty() => {}
                _ => segments.push(std::mem::take(&mut current)),
            }
        }
        if !current.is_empty() {
            segments.push(current);
        }
        Self { name, segments }
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.segments.iter().flatten().map(|&(_, v)| v)
    }
}

/// Produced and stored per second: each interval's count over its length (the first interval
/// starts at 0 s; an interval of no length has no rate).
pub fn throughput(iv: &[Interval]) -> Vec<Series> {
    let rate = |count: i64, length: f64| (length > 0.0).then(|| count as f64 / length);
    vec![
        Series::of("produced/s", iv, |i, len| rate(i.produced, len)),
        Series::of("stored/s", iv, |i, len| rate(i.stored, len)),
    ]
}

/// Latency p50, p99 and max of the messages settled in each interval, in ms.
pub fn latency(iv: &[Interval]) -> Vec<Series> {
    let ms = |ns: Option<i64>| ns.map(|ns| ns as f64 / 1e6);
    vec![
        Series::of("p50", iv, |i, _| ms(i.p50_ns)),
        Series::of("p99", iv, |i, _| ms(i.p99_ns)),
        Series::of("max", iv, |i, _| ms(i.max_ns)),
    ]
}

/// A value axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// From 0 up to this.
    Linear(f64),
    /// Logarithmic, between these values.
    Log(f64, f64),
}

/// How many decades the values must span for a log axis.
const LOG_DECADES: f64 = 2.0;
/// Room above the highest value.
const HEADROOM: f64 = 1.1;

/// The axis for `series`: logarithmic if `may_log` and its positive values span more than two
/// decades, otherwise linear from 0 with room above the highest value.
pub fn scale(series: &[Series], may_log: bool) -> Scale {
    let values = || series.iter().flat_map(Series::values);
    let hi = values().fold(0.0, f64::max);
    let lo = values().filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
    if hi <= 0.0 {
        return Scale::Linear(1.0);
    }
    if may_log && (hi / lo).log10() > LOG_DECADES {
        // From just below the decade under the lowest value (so that its power of ten gets a
        // tick label) to the decade over the highest.
        let decade = |v: f64| 10f64.powf(v);
        Scale::Log(decade(lo.log10().floor()) * 0.9, decade(hi.log10().ceil()))
    } else {
        Scale::Linear(hi * HEADROOM)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interval(t_s: f64, produced: i64, p50_ns: Option<i64>) -> Interval {
        Interval {
            t_s,
            produced,
            stored: produced,
            p50_ns,
            p99_ns: p50_ns,
            max_ns: p50_ns,
        }
    }

    #[test]
    fn rates_divide_each_count_by_its_own_interval_length() {
        let iv = [
            interval(0.5, 50, None),
            interval(1.0, 100, None),
            interval(1.25, 10, None),
        ];
        let produced = &throughput(&iv)[0];
        assert_eq!(
            produced.segments,
            vec![vec![(0.5, 100.0), (1.0, 200.0), (1.25, 40.0)]]
        );
    }

    #[test]
    fn a_missing_latency_breaks_the_line_instead_of_dropping_to_zero() {
        let iv = [
            interval(0.1, 1, Some(1_000_000)),
            interval(0.2, 0, None),
            interval(0.3, 1, Some(3_000_000)),
        ];
        let p50 = &latency(&iv)[0];
        assert_eq!(p50.segments, vec![vec![(0.1, 1.0)], vec![(0.3, 3.0)]]);
    }

    #[test]
    fn the_axis_is_logarithmic_only_beyond_two_decades_and_where_allowed() {
        let line = |values: &[f64]| Series {
            name: "x",
            segments: vec![values.iter().map(|&v| (0.0, v)).collect()],
        };
        let linear_to =
            |s: Scale, top: f64| matches!(s, Scale::Linear(hi) if (hi - top).abs() < 1e-9);
        assert!(linear_to(scale(&[line(&[1.0, 100.0])], true), 110.0));
        let wide = [line(&[0.5, 101.0])];
        let log = scale(&wide, true);
        assert!(
            matches!(log, Scale::Log(lo, hi) if lo > 0.05 && lo < 0.1 && hi >= 101.0),
            "{log:?}"
        );
        assert!(linear_to(scale(&wide, false), 111.1));
        assert_eq!(scale(&[line(&[])], true), Scale::Linear(1.0));
    }
}
