//! Draws the two charts, throughput above latency, into one SVG document held in memory.

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::series::{Scale, Series};

/// The picture's size in pixels.
const SIZE: (u32, u32) = (1000, 780);
/// The colour of each series, by name; any other name is drawn black.
const COLOURS: [(&str, RGBColor); 5] = [
    ("produced/s", RGBColor(31, 119, 180)),
    ("stored/s", RGBColor(44, 160, 44)),
    ("p50", RGBColor(148, 103, 189)),
    ("p99", RGBColor(255, 127, 14)),
    ("max", RGBColor(214, 39, 40)),
];

/// The room right of each chart, where its legend goes (so that it never hides a line).
const LEGEND_WIDTH: u32 = 130;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// What one chart shows.
struct Chart<'s> {
    caption: String,
    y_desc: &'static str,
    series: &'s [Series],
    /// Whether a wide range of values gets a logarithmic axis (latency: yes; throughput: no,
    /// its zeros are what a stall looks like).
    may_log: bool,
}

/// The SVG document: `title` above the throughput chart and the latency chart, both over
/// `0 ..= end_s` seconds.
///
/// # Errors
/// Only if plotters fails to lay out the drawing (it writes to memory).
pub fn svg(
    title: &str,
    end_s: f64,
    throughput: &[Series],
    latency: &[Series],
) -> anyhow::Result<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(title, ("sans-serif", 24))?;
        let (top, bottom) = root.split_vertically(root.dim_in_pixel().1 / 2);
        let x = 0.0..end_s.max(f64::MIN_POSITIVE);
        let rate = Chart {
            caption: "Throughput".into(),
            y_desc: "msg/s",
            series: throughput,
            may_log: false,
        };
        draw_scaled(&top, x.clone(), &rate)?;
        let lat = Chart {
            // The clock starts as each run's summary says: at the intended send (generated),
            // the read (files, stdin), or the publisher's creation (NATS).
            caption: "Latency of the messages settled in each interval (intended send, read \
                      or publisher's creation -> committed)"
                .into(),
            y_desc: "latency (ms)",
            series: latency,
            may_log: true,
        };
        draw_scaled(&bottom, x, &lat)?;
        root.present()?;
    }
    Ok(buf)
}

/// Draws `chart` on a linear or logarithmic value axis, as its values need, with its legend to
/// the right.
fn draw_scaled(area: &Area, x: Range<f64>, chart: &Chart) -> anyhow::Result<()> {
    let (plot, side) = area.split_horizontally(area.dim_in_pixel().0 - LEGEND_WIDTH);
    let top = match super::series::scale(chart.series, chart.may_log) {
        Scale::Linear(hi) => draw(&plot, x, 0.0..hi, 0.0, &chart.caption, chart)?,
        Scale::Log(lo, hi) => {
            let caption = format!("{} (log scale)", chart.caption);
            draw(&plot, x, (lo..hi).log_scale(), lo, &caption, chart)?
        }
    };
    legend(&side, top - side.get_base_pixel().1, chart.series)
}

/// Draws one chart under `caption`: axes with their units and every series (values below
/// `floor` drawn at it). Returns the top of its plotting area, in pixels of the picture.
fn draw<Y>(
    area: &Area,
    x: Range<f64>,
    y: Y,
    floor: f64,
    caption: &str,
    chart: &Chart,
) -> anyhow::Result<i32>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut ctx = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    ctx.configure_mesh()
        .x_desc("time into the run (s)")
        .y_desc(chart.y_desc)
        .y_label_formatter(&|v| number(*v))
        .x_label_formatter(&|v| number(*v))
        .label_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for s in chart.series {
        let style = colour(s.name).stroke_width(2);
        let lines = s.segments.iter().map(|seg| {
            let points: Vec<_> = seg.iter().map(|&(t, v)| (t, v.max(floor))).collect();
            PathElement::new(points, style)
        });
        // A point between two gaps would be an invisible line: mark it.
        let dots = s.segments.iter().filter(|seg| seg.len() == 1).map(|seg| {
            let (t, v) = seg[0];
            Circle::new((t, v.max(floor)), 3, style.filled())
        });
        ctx.draw_series(lines)?;
        ctx.draw_series(dots)?;
    }
    Ok(ctx.plotting_area().get_pixel_range().1.start)
}

/// Draws the legend of `series` in `area`, `top` pixels down: a sample of each line with its
/// name at the same height, in a box.
fn legend(area: &Area, top: i32, series: &[Series]) -> anyhow::Result<()> {
    const ROW: i32 = 20;
    let rows = i32::try_from(series.len())?;
    let right = i32::try_from(LEGEND_WIDTH)? - 8;
    let frame = [(8, top), (right, top + ROW * rows + 8)];
    area.draw(&Rectangle::new(frame, BLACK.stroke_width(1)))?;
    let font = ("sans-serif", 14)
        .into_font()
        .into_text_style(area)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (row, s) in (0..).zip(series) {
        let y = top + 4 + ROW * row + ROW / 2;
        let sample = vec![(16, y), (40, y)];
        area.draw(&PathElement::new(sample, colour(s.name).stroke_width(2)))?;
        area.draw(&Text::new(s.name, (48, y), font.clone()))?;
    }
    Ok(())
}

fn colour(name: &str) -> RGBColor {
    COLOURS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(BLACK, |&(_, c)| c)
}

/// An axis label: at most three decimals, no trailing zeros.
fn number(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::number;

    #[test]
    fn axis_labels_drop_trailing_zeros() {
        assert_eq!(number(1000.0), "1000");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(0.0001), "0");
        assert_eq!(number(-0.0), "0");
    }
}
