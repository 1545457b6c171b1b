//! Inline SVG line charts for the HTML report: series over time with fault windows shaded,
//! phases labelled and SLO thresholds drawn.
//!
//! Drawn by hand on purpose: the report must be one file that works offline, and the charts
//! are a few paths, rectangles and labels. A plotting crate (plotters) would add font
//! handling and emit fixed styling, where here the look comes from the page's CSS classes
//! (so print and dark themes apply) and every element can carry a `<title>` tooltip.

use std::fmt::Write as _;

use html_escape::{encode_double_quoted_attribute as attr, encode_text as text};

/// Drawing area, in SVG user units; the SVG scales to the page width.
const W: f64 = 960.0;
const H: f64 = 280.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 34.0;
const BOTTOM: f64 = 34.0;

/// One line of a chart.
pub(crate) struct Series {
    /// Legend text.
    pub name: String,
    /// CSS class giving the stroke colour (`s1`..`s6`).
    pub class: &'static str,
    /// Points; `None` values leave a gap (no data that second).
    pub points: Vec<(f64, Option<f64>)>,
}

/// A shaded span of the x axis (a fault window) or a labelled one (a phase).
pub(crate) struct Span {
    pub start: f64,
    pub end: f64,
    pub label: String,
}

/// A line chart.
pub(crate) struct Chart {
    /// Element id, also used to link the title for screen readers.
    pub id: String,
    /// Accessible title.
    pub title: String,
    /// Unit of the y axis, shown on its ticks.
    pub y_unit: String,
    /// The x range shown.
    pub x_range: (f64, f64),
    /// Explicit x ticks and their labels; empty for automatic time ticks (`12s`).
    pub x_ticks: Vec<(f64, String)>,
    /// The x axis' caption.
    pub x_caption: String,
    pub series: Vec<Series>,
    /// Fault windows, shaded.
    pub faults: Vec<Span>,
    /// Phases, separated by dashed lines and named above the plot.
    pub phases: Vec<Span>,
    /// Horizontal threshold lines (SLO objectives) and their labels.
    pub thresholds: Vec<(f64, String)>,
    /// Per-x hover text (one invisible column per entry: x start, x end, text).
    pub hovers: Vec<(f64, f64, String)>,
    /// Instants worth a line of their own (a stop condition fired, a revert failed), in
    /// time order.
    pub markers: Vec<(f64, String)>,
    /// Largest y the axis needs to show (100 for percentages), whatever the headroom.
    pub y_cap: Option<f64>,
    /// Draw each point as a dot too: for charts over a handful of runs, where a line alone
    /// would hide a single point.
    pub dots: bool,
}

/// Fits a label into `width` user units (about 7 per character at 12px), eliding the end;
/// empty when not even two characters fit.
fn fit(label: &str, width: f64) -> String {
    let max = (width / 7.0).floor() as usize;
    let n = label.chars().count();
    if n <= max {
        label.to_owned()
    } else if max < 3 {
        String::new()
    } else {
        let mut s: String = label.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// A "nice" step (1, 2 or 5 times a power of ten) giving about `n` ticks up to `max`.
pub(crate) fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// A tick label with just the decimals its step needs (`0`, `0.5`, `0.25`).
fn fmt_tick(v: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{v:.decimals$}")
}

impl Chart {
    /// The SVG markup.
    pub fn render(&self) -> String {
        let (x0, x1) = self.x_range;
        let x_span = if x1 > x0 { x1 - x0 } else { 1.0 };
        let data_max = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter_map(|p| p.1))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        // Show a threshold on the scale only when it does not flatten the data into the
        // floor; otherwise say it is off the chart.
        let mut y_max = data_max;
        for (t, _) in &self.thresholds {
            if *t <= data_max.max(f64::MIN_POSITIVE) * 4.0 || data_max == 0.0 {
                y_max = y_max.max(*t);
            }
        }
        let mut step = nice_step(y_max * 1.08, 5.0);
        let mut y_top = ((y_max * 1.08) / step).ceil().max(1.0) * step;
        if let Some(cap) = self.y_cap {
            if y_top > cap && y_max <= cap {
                y_top = cap;
                step = nice_step(cap, 5.0);
            }
        }
        let pw = W - LEFT - RIGHT;
        let ph = H - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x0) / x_span * pw;
        let sy = |y: f64| TOP + ph - (y / y_top).clamp(0.0, 1.02) * ph;

        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg id="{id}" class="chart" viewBox="0 0 {W} {H}" role="img" aria-labelledby="{id}-t" xmlns="http://www.w3.org/2000/svg"><title id="{id}-t">{t}</title>"#,
            id = attr(&self.id),
            t = text(&self.title)
        );
        // Fault windows under everything else.
        for (i, f) in self.faults.iter().enumerate() {
            let a = sx(f.start.max(x0));
            let b = sx(f.end.min(x1));
            // Overlapping faults get their labels on staggered lines; a label may run past a
            // narrow (instant) fault's window, up to the plot's edge.
            let _ = write!(
                s,
                r#"<g class="fault"><rect x="{a:.1}" y="{TOP}" width="{w:.1}" height="{ph}"><title>{l}</title></rect><text x="{tx:.1}" y="{ty:.1}">{short}</text></g>"#,
                w = (b - a).max(1.5),
                l = text(&f.label),
                short = text(&fit(&f.label, W - RIGHT - a - 8.0)),
                tx = a + 4.0,
                ty = TOP + 13.0 + 14.0 * (i % 3) as f64
            );
        }
        // Grid and y ticks.
        let mut v = 0.0;
        while v <= y_top + step * 0.01 {
            let y = sy(v);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{tx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
                x2 = W - RIGHT,
                tx = LEFT - 6.0,
                ty = y + 4.0,
                label = text(&format!("{}{}", fmt_tick(v, step), self.y_unit))
            );
            v += step;
        }
        // X ticks.
        let ticks: Vec<(f64, String)> = if self.x_ticks.is_empty() {
            let st = nice_step(x_span, 10.0).max(1.0);
            let mut t = (x0 / st).ceil() * st;
            let mut out = Vec::new();
            while t <= x1 + 1e-9 {
                out.push((t, format!("{}s", fmt_tick(t, st))));
                t += st;
            }
            out
        } else {
            self.x_ticks.clone()
        };
        for (t, label) in &ticks {
            let x = sx(*t);
            let _ = write!(
                s,
                r#"<line class="axis" x1="{x:.1}" x2="{x:.1}" y1="{y1}" y2="{y2}"/><text class="tick" x="{x:.1}" y="{ty}" text-anchor="middle">{l}</text>"#,
                y1 = TOP + ph,
                y2 = TOP + ph + 4.0,
                ty = TOP + ph + 16.0,
                l = text(label)
            );
        }
        let _ = write!(
            s,
            r#"<text class="caption" x="{x}" y="{y}" text-anchor="end">{c}</text>"#,
            x = W - RIGHT,
            y = H - 4.0,
            c = text(&self.x_caption)
        );
        // Phases: a dashed line at each start and the name above the plot.
        for p in &self.phases {
            let a = sx(p.start.max(x0));
            let b = sx(p.end.min(x1));
            let _ = write!(
                s,
                r#"<line class="phase" x1="{a:.1}" x2="{a:.1}" y1="{y1}" y2="{y2}"/><text class="phase-label" x="{m:.1}" y="{ty}" text-anchor="middle">{l}</text>"#,
                y1 = TOP - 16.0,
                y2 = TOP + ph,
                m = (a + b) / 2.0,
                ty = TOP - 8.0,
                l = text(&fit(&p.label, b - a))
            );
        }
        // Axes.
        let _ = write!(
            s,
            r#"<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{yb}"/><line class="axis" x1="{LEFT}" x2="{xr}" y1="{yb}" y2="{yb}"/>"#,
            yb = TOP + ph,
            xr = W - RIGHT
        );
        // Thresholds.
        for (t, label) in &self.thresholds {
            if *t <= y_top {
                let y = sy(*t);
                let _ = write!(
                    s,
                    r#"<line class="threshold" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="threshold-label" x="{tx}" y="{ty:.1}" text-anchor="end">{l}</text>"#,
                    x2 = W - RIGHT,
                    tx = W - RIGHT - 4.0,
                    ty = y - 4.0,
                    l = text(label)
                );
            } else {
                let _ = write!(
                    s,
                    r#"<text class="threshold-label" x="{tx}" y="{ty}" text-anchor="end">{l} (above the chart)</text>"#,
                    tx = W - RIGHT - 4.0,
                    ty = TOP + 12.0,
                    l = text(label)
                );
            }
        }
        // Series: one path each, broken where a value is missing.
        for series in &self.series {
            let mut d = String::new();
            let mut pen_down = false;
            for (x, y) in &series.points {
                match y {
                    Some(y) if y.is_finite() => {
                        let _ = write!(
                            d,
                            "{}{:.1},{:.1}",
                            if pen_down { "L" } else { "M" },
                            sx(*x),
                            sy(*y)
                        );
                        pen_down = true;
                    }
                    _ => pen_down = false,
                }
            }
            let _ = write!(
                s,
                r#"<path class="series {c}" d="{d}"><title>{n}</title></path>"#,
                c = series.class,
                n = text(&series.name)
            );
            if self.dots {
                for (x, y) in &series.points {
                    if let Some(y) = y.filter(|y| y.is_finite()) {
                        let _ = write!(
                            s,
                            r#"<circle class="dot {c}" cx="{:.1}" cy="{:.1}" r="4"><title>{n}: {y:.1}</title></circle>"#,
                            sx(*x),
                            sy(y),
                            c = series.class,
                            n = text(&series.name)
                        );
                    }
                }
            }
        }
        // Markers close together (a fault erroring on every repeat) share one line and one
        // label, and labels alternate between lines so neighbours stay readable.
        let mut groups: Vec<(f64, Vec<&str>)> = Vec::new();
        for (t, label) in &self.markers {
            match groups.last_mut() {
                Some((t0, labels)) if *t - *t0 < x_span / 60.0 => labels.push(label),
                _ => groups.push((*t, vec![label])),
            }
        }
        for (i, (t, labels)) in groups.iter().enumerate() {
            let x = sx(*t);
            let label = if labels.len() == 1 {
                labels[0].to_owned()
            } else {
                format!("{} (+{} more)", labels[0], labels.len() - 1)
            };
            let full = labels.join("\n");
            let _ = write!(
                s,
                r#"<g class="marker"><line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{yb}"/><text x="{tx:.1}" y="{ty}">{l}</text><title>{full}</title></g>"#,
                yb = TOP + ph,
                tx = x + 3.0,
                ty = TOP + ph - 6.0 - 14.0 * (i % 3) as f64,
                l = text(&fit(&label, W - RIGHT - x - 6.0)),
                full = text(&full)
            );
        }
        for (a, b, t) in &self.hovers {
            let xa = sx(*a);
            let _ = write!(
                s,
                r#"<rect class="hover" x="{xa:.1}" y="{TOP}" width="{w:.1}" height="{ph}"><title>{t}</title></rect>"#,
                w = (sx(*b) - xa).max(0.5),
                t = text(t)
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// Size of a [`Sparkline`], in SVG user units (CSS scales it to the table cell).
const SPARK_W: f64 = 220.0;
const SPARK_H: f64 = 44.0;

/// A small inline chart for one table row (a fault's impact): a shaded span (the fault's
/// window), bars for a percentage on a 0–100 scale (errors per second) and a line for a
/// latency scaled to its own maximum, with a dashed reference (the baseline's p99).
pub(crate) struct Sparkline {
    /// Accessible title and tooltip.
    pub title: String,
    /// The x range shown.
    pub x_range: (f64, f64),
    /// The span to shade.
    pub shade: (f64, f64),
    /// Bars: x start, width, percentage.
    pub bars: Vec<(f64, f64, f64)>,
    /// The line's points; `None` leaves a gap.
    pub line: Vec<(f64, Option<f64>)>,
    /// A reference value for the line, drawn dashed.
    pub line_ref: Option<f64>,
}

impl Sparkline {
    /// The SVG markup.
    pub fn render(&self) -> String {
        let (x0, x1) = self.x_range;
        let span = if x1 > x0 { x1 - x0 } else { 1.0 };
        let sx = |x: f64| (x - x0) / span * SPARK_W;
        let pct_y = |p: f64| SPARK_H - (p / 100.0).clamp(0.0, 1.0) * (SPARK_H - 2.0);
        let top = self
            .line
            .iter()
            .filter_map(|p| p.1)
            .chain(self.line_ref)
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(f64::MIN_POSITIVE);
        let line_y = |v: f64| SPARK_H - 2.0 - (v / top).clamp(0.0, 1.0) * (SPARK_H - 6.0);
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="spark" viewBox="0 0 {SPARK_W} {SPARK_H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{t}</title>"#,
            t = text(&self.title)
        );
        let (a, b) = (sx(self.shade.0.max(x0)), sx(self.shade.1.min(x1)));
        let _ = write!(
            s,
            r#"<rect class="spark-shade" x="{a:.1}" y="0" width="{w:.1}" height="{SPARK_H}"/>"#,
            w = (b - a).max(1.0)
        );
        for (x, w, p) in &self.bars {
            if *p <= 0.0 {
                continue;
            }
            let y = pct_y(*p);
            let _ = write!(
                s,
                r#"<rect class="spark-bar" x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}"/>"#,
                sx(*x),
                (sx(x + w) - sx(*x) - 0.5).max(0.8),
                SPARK_H - y
            );
        }
        if let Some(r) = self.line_ref {
            let y = line_y(r);
            let _ = write!(
                s,
                r#"<line class="spark-ref" x1="0" x2="{SPARK_W}" y1="{y:.1}" y2="{y:.1}"/>"#
            );
        }
        let mut d = String::new();
        let mut pen_down = false;
        for (x, v) in &self.line {
            match v {
                Some(v) if v.is_finite() => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1}",
                        if pen_down { "L" } else { "M" },
                        sx(*x),
                        line_y(*v)
                    );
                    pen_down = true;
                }
                _ => pen_down = false,
            }
        }
        let _ = write!(s, r#"<path class="spark-line" d="{d}"/></svg>"#);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_draws_bars_for_bad_seconds_and_a_line_with_its_reference() {
        let svg = Sparkline {
            title: "slow-db <x>".into(),
            x_range: (0.0, 10.0),
            shade: (2.0, 6.0),
            bars: vec![(2.0, 1.0, 0.0), (3.0, 1.0, 50.0), (4.0, 1.0, 100.0)],
            line: vec![(0.5, Some(10.0)), (1.5, None), (2.5, Some(300.0))],
            line_ref: Some(10.0),
        }
        .render();
        assert!(svg.starts_with("<svg class=\"spark\""), "{svg}");
        assert!(
            svg.contains("<title>slow-db &lt;x&gt;</title>"),
            "escaped: {svg}"
        );
        assert_eq!(
            svg.matches("class=\"spark-bar\"").count(),
            2,
            "no bar for 0%"
        );
        assert_eq!(svg.matches("class=\"spark-ref\"").count(), 1);
        // The gap breaks the line: two moves, no line-to across the missing second.
        let d = svg.split("class=\"spark-line\" d=\"").nth(1).unwrap();
        assert_eq!(
            d.split('"').next().unwrap().matches('M').count(),
            2,
            "{svg}"
        );
    }

    #[test]
    fn nice_steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(9.0, 5.0), 2.0);
        assert_eq!(nice_step(0.3, 5.0), 0.1);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }

    #[test]
    fn ticks_carry_only_the_decimals_their_step_needs() {
        assert_eq!(fmt_tick(100.0, 50.0), "100");
        assert_eq!(fmt_tick(0.5, 0.5), "0.5");
        assert_eq!(fmt_tick(0.2, 0.1), "0.2");
        assert_eq!(fmt_tick(0.25, 0.05), "0.25");
    }

    #[test]
    fn missing_values_break_the_line() {
        let c = Chart {
            id: "c".into(),
            title: "t".into(),
            y_unit: " ms".into(),
            x_range: (0.0, 3.0),
            x_ticks: vec![],
            x_caption: "time".into(),
            series: vec![Series {
                name: "p99".into(),
                class: "s1",
                points: vec![
                    (0.0, Some(1.0)),
                    (1.0, None),
                    (2.0, Some(2.0)),
                    (3.0, Some(1.0)),
                ],
            }],
            faults: vec![],
            phases: vec![],
            thresholds: vec![],
            hovers: vec![],
            markers: vec![],
            y_cap: None,
            dots: false,
        };
        let svg = c.render();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "a gap starts a new subpath: {d}");
        assert_eq!(d.matches('L').count(), 1);
    }

    #[test]
    fn long_labels_are_elided_to_fit() {
        assert_eq!(fit("baseline", 100.0), "baseline");
        assert_eq!(fit("a-very-long-phase-name", 70.0), "a-very-lo…");
        assert_eq!(fit("chaos", 14.0), "");
    }

    #[test]
    fn labels_are_escaped() {
        let c = Chart {
            id: "c".into(),
            title: "<script>".into(),
            y_unit: String::new(),
            x_range: (0.0, 1.0),
            x_ticks: vec![],
            x_caption: String::new(),
            series: vec![],
            faults: vec![Span {
                start: 0.0,
                end: 1.0,
                label: "a<b&c".into(),
            }],
            phases: vec![],
            thresholds: vec![],
            hovers: vec![],
            markers: vec![],
            y_cap: None,
            dots: false,
        };
        let svg = c.render();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("a&lt;b&amp;c"));
    }
}
