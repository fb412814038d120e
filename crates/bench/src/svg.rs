//! Small inline SVG charts for the HTML report: bars, a line and a scatter plot on linear
//! axes with ticks and labels. Plain text generation; no script, no external resource.

use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 44.0;

/// Escape text for XML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A "nice" tick step for a range.
fn step(range: f64) -> f64 {
    if !(range.is_finite() && range > 0.0) {
        return 1.0;
    }
    let raw = range / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    mag * if f < 1.5 {
        1.0
    } else if f < 3.5 {
        2.0
    } else if f < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.round() { format!("{v:.0}") } else { format!("{v:.2}") }
}

struct Frame {
    x0: f64,
    x1: f64,
    y1: f64,
    svg: String,
}

impl Frame {
    fn new(class: &str, title: &str, xlabel: &str, ylabel: &str, x: (f64, f64), y1: f64) -> Frame {
        let (x0, mut x1) = x;
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        let y1 = if y1 > 0.0 && y1.is_finite() { y1 } else { 1.0 };
        let mut svg = format!(
            "<svg class=\"{class}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\">\n<title>{}</title>\n<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
            escape(title),
            W / 2.0,
            escape(title)
        );
        let f = Frame { x0, x1, y1, svg: String::new() };
        let (px, py) = (f.px(x0), f.py(0.0));
        let _ = writeln!(
            svg,
            "<line x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#333\"/><line x1=\"{px:.1}\" y1=\"{py:.1}\" x2=\"{px:.1}\" y2=\"{TOP:.1}\" stroke=\"#333\"/>",
            W - RIGHT
        );
        let ys = step(y1);
        let mut v = 0.0;
        while v <= y1 * 1.0001 {
            let y = f.py(v);
            let _ = writeln!(
                svg,
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\">{}</text>",
                LEFT,
                W - RIGHT,
                LEFT - 4.0,
                y + 4.0,
                fmt_tick(v)
            );
            v += ys;
        }
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\">{}</text><text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
            (LEFT + W - RIGHT) / 2.0,
            H - 8.0,
            escape(xlabel),
            (TOP + H - BOTTOM) / 2.0,
            (TOP + H - BOTTOM) / 2.0,
            escape(ylabel)
        );
        Frame { svg, ..f }
    }

    fn px(&self, x: f64) -> f64 {
        LEFT + (x - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)
    }

    fn py(&self, y: f64) -> f64 {
        H - BOTTOM - y / self.y1 * (H - TOP - BOTTOM)
    }

    fn x_ticks(&mut self) {
        let xs = step(self.x1 - self.x0);
        let mut v = (self.x0 / xs).ceil() * xs;
        while v <= self.x1 * 1.0001 + 1e-12 {
            let x = self.px(v);
            let _ = writeln!(
                self.svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>",
                H - BOTTOM + 14.0,
                fmt_tick(v)
            );
            v += xs;
        }
    }

    fn finish(mut self) -> String {
        self.svg.push_str("</svg>\n");
        self.svg
    }
}

/// A bar chart of labelled values.
pub fn bars(class: &str, title: &str, xlabel: &str, ylabel: &str, data: &[(String, f64)]) -> String {
    let ymax = data.iter().map(|d| d.1).fold(0.0, f64::max);
    let mut f = Frame::new(class, title, xlabel, ylabel, (0.0, data.len().max(1) as f64), ymax * 1.05);
    let slot = (W - LEFT - RIGHT) / data.len().max(1) as f64;
    for (i, (label, v)) in data.iter().enumerate() {
        let (x, y) = (f.px(i as f64) + slot * 0.1, f.py(*v));
        let _ = writeln!(
            f.svg,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a7bd0\"><title>{}: {}</title></rect>",
            slot * 0.8,
            (f.py(0.0) - y).max(0.0),
            escape(label),
            fmt_tick(*v)
        );
        if i % data.len().div_ceil(15).max(1) == 0 {
            let _ = writeln!(
                f.svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
                x + slot * 0.4,
                H - BOTTOM + 14.0,
                escape(label)
            );
        }
    }
    f.finish()
}

/// A line through `points` (sorted by x).
pub fn line(class: &str, title: &str, xlabel: &str, ylabel: &str, points: &[(f64, f64)]) -> String {
    let x = (points.first().map_or(0.0, |p| p.0.min(0.0)), points.last().map_or(1.0, |p| p.0));
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let mut f = Frame::new(class, title, xlabel, ylabel, x, ymax);
    f.x_ticks();
    let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y))).collect();
    let _ = writeln!(
        f.svg,
        "<polyline fill=\"none\" stroke=\"#d0564a\" stroke-width=\"2\" points=\"{}\"/>",
        path.join(" ")
    );
    f.finish()
}

/// A scatter plot of `points`.
pub fn scatter(class: &str, title: &str, xlabel: &str, ylabel: &str, points: &[(f64, f64)]) -> String {
    let xmax = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let ymax = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.05;
    let mut f = Frame::new(class, title, xlabel, ylabel, (0.0, xmax), ymax);
    f.x_ticks();
    for &(x, y) in points {
        let _ = writeln!(
            f.svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.8\" fill=\"#2e8b57\" fill-opacity=\"0.6\"/>",
            f.px(x),
            f.py(y)
        );
    }
    f.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_closed_svg_with_their_marks() {
        let b = bars("b", "t<1>", "x", "y", &[("1".into(), 3.0), ("2".into(), 5.0)]);
        assert!(b.starts_with("<svg") && b.trim_end().ends_with("</svg>"));
        assert_eq!(b.matches("<rect").count(), 2);
        assert!(b.contains("t&lt;1&gt;"));
        let l = line("l", "cdf", "ms", "fraction", &[(1.0, 0.1), (2.0, 1.0)]);
        assert!(l.contains("<polyline"));
        let s = scatter("s", "time", "s", "ms", &[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]);
        assert_eq!(s.matches("<circle").count(), 3);
        // Empty data still draws axes.
        assert!(scatter("s", "e", "x", "y", &[]).contains("</svg>"));
        assert_eq!(step(100.0), 20.0);
        assert_eq!(step(0.0), 1.0);
    }
}
