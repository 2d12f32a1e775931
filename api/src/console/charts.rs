//! Charts drawn on the server as inline SVG: no chart library to ship or
//! run, nothing for the CSP to allow, and the page is complete before any
//! script runs. Each bar carries a `<title>` (its value on hover), and each
//! chart is followed by its figures as a table for screen readers and for
//! copying.

use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};

/// Colours for stacked series, distinguishable and AA-contrast on white.
const PALETTE: &[&str] = &[
    "#0b5cad", "#c4391d", "#1a7f37", "#8250df", "#b35900", "#0a7f8c", "#6e7781", "#bf3989",
];

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 8.0;

/// One bar's stack: its label (a day, an hour) and a value per series
/// (same order as the series names).
pub(super) struct Bar {
    /// In each segment's hover text.
    pub(super) label: String,
    /// Under the axis (every few bars).
    pub(super) tick: String,
    pub(super) values: Vec<f64>,
}

impl Bar {
    /// A day's bar.
    pub(super) fn day(day: NaiveDate, values: Vec<f64>) -> Self {
        Self {
            label: day.to_string(),
            tick: day.format("%m-%d").to_string(),
            values,
        }
    }

    /// An hour's bar (UTC).
    pub(super) fn hour(hour: DateTime<Utc>, values: Vec<f64>) -> Self {
        Self {
            label: hour.format("%Y-%m-%d %H:00 UTC").to_string(),
            tick: hour.format("%H:00").to_string(),
            values,
        }
    }
}

/// Grid lines above the axis.
const STEPS: u32 = 4;

/// The axis maximum for data up to `max`: [`STEPS`] round steps (1, 2,
/// 2.5 or 5 times a power of ten, at least `min_step`) reaching `max`.
fn axis_max(max: f64, min_step: f64) -> f64 {
    let wanted = (max / f64::from(STEPS)).max(min_step);
    let magnitude = 10f64.powf(wanted.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= wanted)
        .unwrap_or(10.0 * magnitude);
    step * f64::from(STEPS)
}

/// A stacked bar chart of `days` (one bar each, one colour per series),
/// with a legend, labelled `label`; `unit` formats a value, and the grid's
/// steps are at least `min_step` (1 for counts).
pub(super) fn stacked_bars(
    label: &str,
    series: &[String],
    days: &[Bar],
    min_step: f64,
    unit: &dyn Fn(f64) -> String,
) -> Markup {
    let max = axis_max(
        days.iter()
            .map(|d| d.values.iter().sum::<f64>())
            .fold(0.0, f64::max),
        min_step,
    );
    let plot_w = WIDTH - LEFT - 8.0;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar_w = (slot * 0.8).max(1.0);
    let y = |v: f64| TOP + plot_h - v / max * plot_h;
    let label_every = (days.len() / 10).max(1);
    // Each day's segments, bottom up: (x, top, height, colour, hover text).
    let mut segments = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let x = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut below = 0.0;
        for (s, v) in d.values.iter().enumerate().filter(|(_, v)| **v > 0.0) {
            let name = series.get(s).map_or("", String::as_str);
            segments.push((
                x,
                y(below + v),
                (v / max * plot_h).max(0.5),
                PALETTE[s % PALETTE.len()],
                format!("{}: {name} {}", d.label, unit(*v)),
            ));
            below += v;
        }
    }
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) {
                @for i in 0..=STEPS {
                    @let v = max * f64::from(i) / f64::from(STEPS);
                    line x1=(LEFT) x2=(WIDTH - 8.0) y1=(y(v)) y2=(y(v)) stroke="#d0d7de" {}
                    text x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" font-size="11" fill="#4a5260" { (unit(v)) }
                }
                @for (x, top, height, colour, hover) in &segments {
                    rect x=(x) y=(top) width=(bar_w) height=(height) fill=(colour) { title { (hover) } }
                }
                @for (i, d) in days.iter().enumerate() {
                    @if i % label_every == 0 {
                        text x=(LEFT + slot * i as f64 + slot / 2.0) y=(HEIGHT - 6.0) text-anchor="middle" font-size="11" fill="#4a5260" {
                            (d.tick)
                        }
                    }
                }
            }
            @if series.len() > 1 {
                figcaption.legend {
                    @for (s, name) in series.iter().enumerate() {
                        span {
                            svg.swatch width="12" height="12" aria-hidden="true" { rect width="12" height="12" fill=(PALETTE[s % PALETTE.len()]) {} }
                            " " (name)
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_has_four_round_steps_reaching_the_data() {
        assert_eq!(axis_max(0.0, 1.0), 4.0);
        assert_eq!(axis_max(3.0, 1.0), 4.0);
        assert_eq!(axis_max(5.0, 1.0), 8.0);
        assert_eq!(axis_max(37.0, 1.0), 40.0);
        assert_eq!(axis_max(633.0, 1.0), 800.0);
        assert_eq!(axis_max(2.1, 0.5), 4.0);
        assert_eq!(axis_max(1.2, 0.1), 2.0);
    }
}
