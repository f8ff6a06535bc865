//! Hand-written SVG charts for the report: a line chart (throughput
//! against writers) and a grouped bar chart in one or more panels
//! (latency percentiles per path, rates per daemon). Plain SVG 1.1: no
//! scripts, no CSS, no external fonts, so any browser, GitHub's Markdown
//! view and `rsvg-convert` draw it the same.

use std::fmt::Write as _;

/// Series colours (colour-blind safe, after Okabe and Ito), in order.
pub const PALETTE: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00",
];
const GREY: &str = "#666666";
const GRID: &str = "#dddddd";
const FONT: &str = "DejaVu Sans, Verdana, Arial, Helvetica, sans-serif";

/// Text for an SVG text node or attribute.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// A number with about three significant digits, no exponent.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else {
        // Three significant digits below 1.
        let d = (-a.log10().floor()) as usize + 2;
        format!("{x:.d$}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The step of about `n` linear ticks from 0 to `max`: 1, 2 or 5 × 10^k.
pub fn nice_step(max: f64, n: f64) -> f64 {
    if !max.is_finite() || max <= 0.0 {
        return 1.0;
    }
    let raw = max / n;
    let p = 10f64.powf(raw.log10().floor());
    let f = raw / p;
    let m = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * p
}

/// Linear ticks 0, step, .. up to the first at or above `max`.
pub fn linear_ticks(max: f64) -> Vec<f64> {
    let step = nice_step(max, 5.0);
    let n = (max / step).ceil().max(1.0) as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

/// Decades from below `min` to above `max`, for a log axis.
pub fn log_decades(min: f64, max: f64) -> (i32, i32) {
    let lo = min.max(f64::MIN_POSITIVE).log10().floor() as i32;
    let mut hi = max.max(f64::MIN_POSITIVE).log10().ceil() as i32;
    if hi <= lo {
        hi = lo + 1;
    }
    (lo, hi)
}

/// Rough width of `s` in pixels at font size `size`.
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.58
}

/// Breaks `s` into lines of at most `max` characters at spaces (a longer
/// word stays whole).
pub fn wrap(s: &str, max: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for w in s.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > max {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn header(m: &mut String, w: f64, h: f64) {
    let _ = writeln!(
        m,
        r#"<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="{FONT}" font-size="12">"#
    );
    let _ = writeln!(
        m,
        r#"<rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="white"/>"#
    );
}

fn text(m: &mut String, x: f64, y: f64, anchor: &str, extra: &str, s: &str) {
    let _ = writeln!(
        m,
        r#"<text x="{x:.1}" y="{y:.1}" text-anchor="{anchor}"{extra}>{}</text>"#,
        esc(s)
    );
}

fn line(m: &mut String, x1: f64, y1: f64, x2: f64, y2: f64, stroke: &str, extra: &str) {
    let _ = writeln!(
        m,
        r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}"{extra}/>"#
    );
}

/// Title and subtitle; returns the y below them.
fn titles(m: &mut String, w: f64, title: &str, subtitle: &str) -> f64 {
    text(
        m,
        w / 2.0,
        24.0,
        "middle",
        r#" font-size="16" font-weight="bold""#,
        title,
    );
    let mut y = 30.0;
    for l in wrap(subtitle, ((w - 40.0) / (12.0 * 0.58)) as usize) {
        y += 16.0;
        text(m, w / 2.0, y, "middle", &format!(r#" fill="{GREY}""#), &l);
    }
    y
}

/// One legend entry: a name, its colour, and whether its line is dashed
/// (`None`: a filled box, for bars).
struct Key<'a> {
    name: &'a str,
    color: &'a str,
    dashed: Option<bool>,
}

/// A legend laid out in rows between `x0` and `x1`, starting at `y`;
/// returns the y below it.
fn legend(m: &mut String, keys: &[Key<'_>], x0: f64, x1: f64, y: f64) -> f64 {
    let (mut x, mut y) = (x0, y + 16.0);
    for k in keys {
        let w = 28.0 + text_width(k.name, 12.0) + 18.0;
        if x > x0 && x + w > x1 {
            x = x0;
            y += 18.0;
        }
        match k.dashed {
            Some(d) => {
                let dash = if d { r#" stroke-dasharray="6 4""# } else { "" };
                line(
                    m,
                    x,
                    y - 4.0,
                    x + 22.0,
                    y - 4.0,
                    k.color,
                    &format!(r#" stroke-width="2.5"{dash}"#),
                );
                let _ = writeln!(
                    m,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                    x + 11.0,
                    y - 4.0,
                    k.color
                );
            }
            None => {
                let _ = writeln!(
                    m,
                    r#"<rect x="{:.1}" y="{:.1}" width="14" height="12" fill="{}"/>"#,
                    x + 4.0,
                    y - 10.0,
                    k.color
                );
            }
        }
        text(m, x + 28.0, y, "start", "", k.name);
        x += w;
    }
    y + 8.0
}

/// A point of a line, with an optional range (min–max over repetitions).
#[derive(Clone, Debug)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub range: Option<(f64, f64)>,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub name: String,
    pub dashed: bool,
    pub points: Vec<Point>,
}

/// Lines against a numeric x axis (log2 when `log2_x`), y linear from 0.
/// Every point is labelled with its value; ranges are drawn as whiskers.
#[derive(Clone, Debug)]
pub struct LineChart {
    pub title: String,
    pub subtitle: String,
    pub x_label: String,
    pub y_label: String,
    pub log2_x: bool,
    pub lines: Vec<Line>,
}

impl LineChart {
    pub fn svg(&self) -> String {
        let (w, h) = (760.0, 460.0);
        let mut m = String::new();
        header(&mut m, w, h);
        let y0 = titles(&mut m, w, &self.title, &self.subtitle);
        let keys: Vec<Key<'_>> = self
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| Key {
                name: &l.name,
                color: PALETTE[i % PALETTE.len()],
                dashed: Some(l.dashed),
            })
            .collect();
        let (left, right) = (78.0, w - 24.0);
        let top = legend(&mut m, &keys, left, right, y0) + 12.0;
        let bottom = h - 58.0;
        let pts = || self.lines.iter().flat_map(|l| l.points.iter());
        let tx = |x: f64| if self.log2_x { x.max(1e-9).log2() } else { x };
        let (mut xmin, mut xmax) = pts().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(tx(p.x)), b.max(tx(p.x)))
        });
        if !xmin.is_finite() {
            (xmin, xmax) = (0.0, 1.0);
        }
        let pad = ((xmax - xmin) * 0.06).max(0.5);
        let (xmin, xmax) = (xmin - pad, xmax + pad);
        let ymax = pts()
            .map(|p| p.range.map_or(p.y, |r| r.1.max(p.y)))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let ticks = linear_ticks(ymax * 1.08);
        let ytop = *ticks.last().unwrap_or(&1.0);
        let px = |x: f64| left + (tx(x) - xmin) / (xmax - xmin) * (right - left);
        let py = |y: f64| bottom - y / ytop * (bottom - top);
        for &t in &ticks {
            line(&mut m, left, py(t), right, py(t), GRID, "");
            text(&mut m, left - 8.0, py(t) + 4.0, "end", "", &fmt_num(t));
        }
        // X ticks: every x of the data.
        let mut xs: Vec<f64> = pts().map(|p| p.x).collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for &x in &xs {
            line(&mut m, px(x), bottom, px(x), bottom + 5.0, "#000000", "");
            text(&mut m, px(x), bottom + 19.0, "middle", "", &fmt_num(x));
        }
        line(&mut m, left, bottom, right, bottom, "#000000", "");
        line(&mut m, left, top, left, bottom, "#000000", "");
        text(
            &mut m,
            (left + right) / 2.0,
            h - 18.0,
            "middle",
            r#" font-size="13""#,
            &self.x_label,
        );
        let ymid = (top + bottom) / 2.0;
        text(
            &mut m,
            20.0,
            ymid,
            "middle",
            &format!(r#" font-size="13" transform="rotate(-90 20 {ymid:.1})""#),
            &self.y_label,
        );
        for (i, l) in self.lines.iter().enumerate() {
            let c = PALETTE[i % PALETTE.len()];
            let ok: Vec<&Point> = l.points.iter().filter(|p| p.y.is_finite()).collect();
            let path: Vec<String> = ok
                .iter()
                .map(|p| format!("{:.1},{:.1}", px(p.x), py(p.y)))
                .collect();
            let dash = if l.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                m,
                r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="2.5"{dash}/>"#,
                path.join(" ")
            );
            for p in ok {
                let (x, y) = (px(p.x), py(p.y));
                if let Some((lo, hi)) = p.range.filter(|r| r.0.is_finite() && r.1.is_finite()) {
                    if py(lo) - py(hi) > 1.0 {
                        line(&mut m, x, py(lo), x, py(hi), c, r#" stroke-width="1.5""#);
                        line(&mut m, x - 5.0, py(lo), x + 5.0, py(lo), c, "");
                        line(&mut m, x - 5.0, py(hi), x + 5.0, py(hi), c, "");
                    }
                }
                let _ = writeln!(
                    m,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{c}" stroke="white"/>"#
                );
                let top_of = p.range.map_or(y, |r| py(r.1).min(y));
                text(
                    &mut m,
                    x + 8.0,
                    top_of - 6.0,
                    "start",
                    &format!(r#" font-size="11" fill="{c}""#),
                    &fmt_num(p.y),
                );
            }
        }
        m.push_str("</svg>\n");
        m
    }
}

/// A group of bars: one value per series (`None`: not measured).
#[derive(Clone, Debug)]
pub struct Group {
    pub label: String,
    pub values: Vec<Option<f64>>,
}

#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub groups: Vec<Group>,
}

/// Grouped bars in side-by-side panels that share one y scale (log10
/// when `log_y`). Every bar is labelled with its value.
#[derive(Clone, Debug)]
pub struct BarChart {
    pub title: String,
    pub subtitle: String,
    pub y_label: String,
    pub log_y: bool,
    pub series: Vec<String>,
    pub panels: Vec<Panel>,
}

impl BarChart {
    pub fn svg(&self) -> String {
        let np = self.panels.len().max(1) as f64;
        let ng_max = self
            .panels
            .iter()
            .map(|p| p.groups.len())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let ns = self.series.len().max(1) as f64;
        // Room for each bar, at least 22 px; at least 300 px a panel.
        let axis_w = 62.0;
        // Chrome around the panels: left margin, each panel's axis, gaps, right margin.
        let chrome = 28.0 + np * axis_w + (np - 1.0) * 16.0 + 20.0;
        let panel_w = (ng_max * (ns * 24.0 + 26.0))
            .max(300.0)
            .max((600.0 - chrome) / np);
        let w = chrome + np * panel_w;
        let slot = panel_w / ng_max;
        let max_chars = ((slot - 6.0) / (11.0 * 0.58)).max(6.0) as usize;
        let label_lines = self
            .panels
            .iter()
            .flat_map(|p| p.groups.iter())
            .map(|g| wrap(&g.label, max_chars).len())
            .max()
            .unwrap_or(1);
        let has_titles = self.panels.iter().any(|p| !p.title.is_empty());
        // The height is fixed by the plot; the rest grows with the text.
        let mut probe = String::new();
        let y0 = titles(&mut probe, w, &self.title, &self.subtitle);
        let keys: Vec<Key<'_>> = self
            .series
            .iter()
            .enumerate()
            .map(|(i, s)| Key {
                name: s,
                color: PALETTE[i % PALETTE.len()],
                dashed: None,
            })
            .collect();
        let y1 = legend(&mut probe, &keys, 28.0 + axis_w, w - 20.0, y0);
        let top = y1 + if has_titles { 34.0 } else { 18.0 };
        let plot_h = 280.0;
        let bottom = top + plot_h;
        let h = bottom + 16.0 + label_lines as f64 * 14.0 + 12.0;

        let mut m = String::new();
        header(&mut m, w, h);
        titles(&mut m, w, &self.title, &self.subtitle);
        legend(&mut m, &keys, 28.0 + axis_w, w - 20.0, y0);

        let vals = || {
            self.panels
                .iter()
                .flat_map(|p| p.groups.iter())
                .flat_map(|g| g.values.iter().flatten().copied())
                .filter(|v| v.is_finite() && (*v > 0.0 || !self.log_y))
        };
        let vmax = vals().fold(0.0, f64::max);
        let vmin = vals().fold(f64::INFINITY, f64::min);
        // The y axis: where a value is, from 0 to 1, and the gridlines
        // (value, labelled).
        let mut grid: Vec<(f64, bool)> = Vec::new();
        let unit: (f64, f64, bool) = if self.log_y {
            let (lo, hi) = log_decades(if vmin.is_finite() { vmin } else { 1.0 }, vmax * 1.5);
            let span = f64::from(hi - lo);
            for d in lo..=hi {
                let p = 10f64.powi(d);
                grid.push((p, true));
                if d < hi {
                    for k in [2.0, 5.0] {
                        grid.push((k * p, span <= 3.0));
                    }
                }
            }
            (f64::from(lo), span, true)
        } else {
            let ticks = linear_ticks(vmax * 1.12);
            let top_v = *ticks.last().unwrap_or(&1.0);
            grid.extend(ticks.into_iter().map(|t| (t, true)));
            (0.0, top_v, false)
        };
        let scale = |v: f64| {
            let (from, span, log) = unit;
            let u = if log {
                (v.max(1e-300).log10() - from) / span
            } else {
                (v - from) / span
            };
            bottom - u * plot_h
        };
        let mut x = 28.0;
        for p in &self.panels {
            let left = x + axis_w;
            let right = left + panel_w;
            for &(t, labelled) in &grid {
                let y = scale(t);
                line(&mut m, left, y, right, y, GRID, "");
                if labelled {
                    text(&mut m, left - 8.0, y + 4.0, "end", "", &fmt_num(t));
                }
            }
            line(&mut m, left, bottom, right, bottom, "#000000", "");
            line(&mut m, left, top, left, bottom, "#000000", "");
            if !p.title.is_empty() {
                text(
                    &mut m,
                    (left + right) / 2.0,
                    top - 12.0,
                    "middle",
                    r#" font-size="13" font-weight="bold""#,
                    &p.title,
                );
            }
            let ng = p.groups.len().max(1) as f64;
            let slot = panel_w / ng;
            let bw = (slot * 0.8 / ns).min(60.0);
            for (gi, g) in p.groups.iter().enumerate() {
                let gx = left + slot * gi as f64 + (slot - bw * ns) / 2.0;
                for (si, v) in g.values.iter().enumerate() {
                    let bx = gx + bw * si as f64;
                    let c = PALETTE[si % PALETTE.len()];
                    let Some(v) = v.filter(|v| v.is_finite() && (*v > 0.0 || !self.log_y)) else {
                        text(
                            &mut m,
                            bx + bw / 2.0,
                            bottom - 4.0,
                            "middle",
                            &format!(r#" font-size="10" fill="{GREY}""#),
                            "n/a",
                        );
                        continue;
                    };
                    let y = scale(v).min(bottom);
                    let _ = writeln!(
                        m,
                        r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{c}"/>"#,
                        bx + 1.0,
                        bw - 2.0,
                        bottom - y
                    );
                    let label = fmt_num(v);
                    let (cx, ly) = (bx + bw / 2.0, y - 4.0);
                    if text_width(&label, 10.0) <= bw + 4.0 {
                        text(&mut m, cx, ly, "middle", r#" font-size="10""#, &label);
                    } else {
                        text(
                            &mut m,
                            cx + 3.5,
                            ly,
                            "start",
                            &format!(
                                r#" font-size="10" transform="rotate(-90 {:.1} {ly:.1})""#,
                                cx + 3.5
                            ),
                            &label,
                        );
                    }
                }
                let lx = left + slot * (gi as f64 + 0.5);
                for (k, l) in wrap(&g.label, max_chars).iter().enumerate() {
                    text(
                        &mut m,
                        lx,
                        bottom + 16.0 + 14.0 * k as f64,
                        "middle",
                        r#" font-size="11""#,
                        l,
                    );
                }
            }
            x = right + 16.0;
        }
        let ymid = (top + bottom) / 2.0;
        text(
            &mut m,
            16.0,
            ymid,
            "middle",
            &format!(r#" font-size="13" transform="rotate(-90 16 {ymid:.1})""#),
            &self.y_label,
        );
        m.push_str("</svg>\n");
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element opened is closed, in order (a minimal well-formedness
    /// check: the charts use no comments, CDATA or processing instructions).
    fn well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let j = rest[i..].find('>').expect("unclosed tag") + i;
            let tag = &rest[i + 1..j];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop().as_deref(), Some(name), "in {svg}");
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().expect("tag name");
                stack.push(name.to_string());
            }
            rest = &rest[j + 1..];
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
        // Every & starts an entity.
        for (i, _) in svg.match_indices('&') {
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| svg[i..].starts_with(e)),
                "raw & at {i}"
            );
        }
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    #[test]
    fn numbers_and_ticks() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(17.26), "17.3");
        assert_eq!(fmt_num(5.5), "5.5");
        assert_eq!(fmt_num(3612.4), "3612");
        assert_eq!(fmt_num(0.01234), "0.0123");
        assert_eq!(fmt_num(2.0), "2");
        assert_eq!(fmt_num(f64::NAN), "–");
        assert_eq!(linear_ticks(73.0), vec![0.0, 20.0, 40.0, 60.0, 80.0]);
        assert_eq!(linear_ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(linear_ticks(0.0), vec![0.0, 1.0]);
        assert_eq!(nice_step(1.3, 5.0), 0.5);
        assert_eq!(log_decades(3.5, 3612.0), (0, 4));
        assert_eq!(log_decades(10.0, 10.0), (1, 2));
        assert_eq!(
            wrap("memlogd, LinuxKit follower (mode byte 1)", 16),
            ["memlogd,", "LinuxKit", "follower (mode", "byte 1)"]
        );
        assert_eq!(esc("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }

    #[test]
    fn line_chart() {
        let c = LineChart {
            title: "Ingest <fd>".into(),
            subtitle: "4,000,000 lines of 100 bytes".into(),
            x_label: "writers".into(),
            y_label: "M lines/s".into(),
            log2_x: true,
            lines: vec![
                Line {
                    name: "memlogd".into(),
                    dashed: false,
                    points: [1.0, 4.0, 16.0, 64.0]
                        .iter()
                        .map(|&x| Point {
                            x,
                            y: 15.0 + x / 10.0,
                            range: Some((14.0, 18.0)),
                        })
                        .collect(),
                },
                Line {
                    name: "baseline & co".into(),
                    dashed: true,
                    points: vec![
                        Point {
                            x: 1.0,
                            y: 60.0,
                            range: None,
                        },
                        Point {
                            x: 64.0,
                            y: f64::NAN,
                            range: None,
                        },
                    ],
                },
            ],
        };
        let s = c.svg();
        well_formed(&s);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(s.contains("Ingest &lt;fd&gt;") && s.contains("baseline &amp; co"));
        assert_eq!(s.matches("<polyline").count(), 2);
        // 4 + 1 points, each with a marker.
        assert_eq!(s.matches("<circle").count(), 5 + 2);
        for x in ["1", "4", "16", "64"] {
            assert!(s.contains(&format!(">{x}</text>")), "x tick {x}");
        }
    }

    #[test]
    fn bar_chart() {
        let g = |l: &str, v: [f64; 3]| Group {
            label: l.into(),
            values: v.iter().map(|&x| (x > 0.0).then_some(x)).collect(),
        };
        for log_y in [false, true] {
            let c = BarChart {
                title: "Follow latency".into(),
                subtitle: String::new(),
                y_label: "µs".into(),
                log_y,
                series: vec!["p50".into(), "p90".into(), "p99".into()],
                panels: vec![
                    Panel {
                        title: "one CPU".into(),
                        groups: vec![
                            g("memlogd, extended follower", [5.5, 6.1, 7.7]),
                            g("baseline: bare relay thread", [3.7, 3.8, 0.0]),
                        ],
                    },
                    Panel {
                        title: "two CPUs".into(),
                        groups: vec![g("memlogd", [54.0, 300.0, 3612.0])],
                    },
                ],
            };
            let s = c.svg();
            well_formed(&s);
            // Background, legend, one bar per value given; a label for the missing one.
            assert_eq!(s.matches("<rect").count(), 1 + 3 + 8, "{s}");
            assert!(s.contains(">n/a</text>") && s.contains(">3612</text>"));
            assert!(s.contains(">one CPU</text>") && s.contains(">two CPUs</text>"));
        }
    }
}
