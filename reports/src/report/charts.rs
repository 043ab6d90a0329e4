//! Chart descriptions and their drawing with plotters, once to an SVG string and once to PNG.
//!
//! Layout rules that keep charts readable: the title sits above everything, the legend has its
//! own panel to the right of the plot (it never covers data), and category labels are turned
//! upright when the widest one does not fit its slot.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontStyle;

use super::fmt_num;
use super::raster::GlyphText;
use crate::error::ReportError;

/// Pixel size of every chart (SVG and PNG).
pub(crate) const WIDTH: u32 = 960;
pub(crate) const HEIGHT: u32 = 540;
const LEGEND_WIDTH: u32 = 230;
const FONT: &str = "sans-serif";
const TITLE_SIZE: f64 = 24.0;
const LABEL_SIZE: f64 = 15.0;
const DESC_SIZE: f64 = 17.0;

pub(crate) static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");
static FONT_LOADED: OnceLock<bool> = OnceLock::new();

// plotters' ab_glyph text needs the font registered once per process before any drawing.
fn ensure_font() -> Result<(), ReportError> {
    let ok = FONT_LOADED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES).is_ok()
    });
    if *ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

/// One legend entry.
#[derive(Debug, Clone)]
pub(crate) struct Series {
    pub label: String,
    pub color: RGBColor,
}

/// A value with an optional 95% interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bar {
    pub value: f64,
    pub ci: Option<(f64, f64)>,
}

/// A horizontal line across the plot, listed in the legend.
#[derive(Debug, Clone)]
pub(crate) struct HLine {
    pub y: f64,
    pub label: String,
    pub color: RGBColor,
}

/// Categories along x (`groups`), one bar or point per series in each.
#[derive(Debug, Clone)]
pub(crate) struct Grouped {
    pub groups: Vec<String>,
    pub series: Vec<Series>,
    /// `values[series][group]`.
    pub values: Vec<Vec<Option<Bar>>>,
    pub lines: Vec<HLine>,
    /// Bars (with error bars) or points.
    pub bars: bool,
}

/// One point of a scatter chart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub x: f64,
    pub y: f64,
    /// Index into `Scatter::series` (colour).
    pub series: usize,
    /// Index into `Scatter::shapes` (marker).
    pub shape: usize,
    /// Filled marker; hollow when false.
    pub filled: bool,
}

/// Numeric x against numeric y; colour is the series, marker the shape, fill a flag.
#[derive(Debug, Clone)]
pub(crate) struct Scatter {
    pub series: Vec<Series>,
    pub shapes: Vec<String>,
    /// Legend text for filled and hollow markers.
    pub fill_labels: (String, String),
    pub points: Vec<Point>,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Grouped(Grouped),
    Scatter(Scatter),
}

/// Everything needed to draw one chart.
#[derive(Debug, Clone)]
pub(crate) struct Chart {
    /// File stem (`decode_tps`).
    pub stem: String,
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub body: Body,
}

/// Draws `chart` as an SVG string and as a PNG file at `png`.
pub(crate) fn draw(chart: &Chart, png: &Path) -> Result<String, ReportError> {
    ensure_font()?;
    let fail = |message: String| ReportError::Chart {
        chart: chart.stem.clone(),
        message,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_on(chart, &root).map_err(fail)?;
        root.present().map_err(|e| fail(e.to_string()))?;
    }
    let root = GlyphText(BitMapBackend::new(png, (WIDTH, HEIGHT))).into_drawing_area();
    draw_on(chart, &root).map_err(fail)?;
    root.present().map_err(|e| fail(e.to_string()))?;
    Ok(svg)
}

fn draw_on<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let body = root
        .titled(&chart.title, (FONT, TITLE_SIZE).into_font().color(&BLACK))
        .map_err(e)?;
    let (plot, legend) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
    match &chart.body {
        Body::Grouped(g) => {
            draw_grouped(chart, g, &plot)?;
            let mut entries: Vec<Entry> = g
                .series
                .iter()
                .map(|s| Entry::Swatch(s.label.clone(), s.color, g.bars))
                .collect();
            entries.extend(
                g.lines
                    .iter()
                    .map(|l| Entry::Line(l.label.clone(), l.color)),
            );
            draw_legend(&legend, &entries)
        }
        Body::Scatter(s) => {
            draw_scatter(chart, s, &plot)?;
            let mut entries: Vec<Entry> = s
                .series
                .iter()
                .map(|s| Entry::Swatch(s.label.clone(), s.color, true))
                .collect();
            if s.shapes.len() > 1 {
                entries.push(Entry::Gap);
                entries.extend(
                    s.shapes
                        .iter()
                        .enumerate()
                        .map(|(i, name)| Entry::Marker(name.clone(), i, true)),
                );
            }
            entries.push(Entry::Gap);
            entries.push(Entry::Marker(s.fill_labels.0.clone(), 0, true));
            entries.push(Entry::Marker(s.fill_labels.1.clone(), 0, false));
            draw_legend(&legend, &entries)
        }
    }
}

/// Category axis: group `i` is centred on `i as f64`, so bars can sit at fractional offsets.
struct GroupAxis {
    labels: Vec<String>,
}

impl Ranged for GroupAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let n = self.labels.len().max(1) as f64;
        let frac = (value + 0.5) / n;
        limit.0 + (f64::from(limit.1 - limit.0) * frac).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        match hint.weight() {
            KeyPointWeight::Bold => (0..self.labels.len()).map(|i| i as f64).collect(),
            KeyPointWeight::Any => Vec::new(),
        }
    }

    fn range(&self) -> Range<f64> {
        -0.5..(self.labels.len() as f64 - 0.5)
    }
}

impl ValueFormatter<f64> for GroupAxis {
    fn format_ext(&self, value: &f64) -> String {
        let i = value.round();
        if (value - i).abs() < 1e-6 && i >= 0.0 {
            self.labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    }
}

fn text_width<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, size: f64) -> u32 {
    area.estimate_text_size(text, &TextStyle::from((FONT, size).into_font()))
        .map_or(text.len() as u32 * 8, |(w, _)| w)
}

// Room the category labels need below the plot, and whether they must be turned upright.
fn x_label_layout<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    labels: &[String],
) -> (u32, bool) {
    let widest = labels
        .iter()
        .map(|l| text_width(area, l, LABEL_SIZE))
        .max()
        .unwrap_or(0);
    let slot = (area.dim_in_pixel().0.saturating_sub(100)) / labels.len().max(1) as u32;
    if widest + 12 > slot {
        (widest + 24 + DESC_SIZE as u32 * 2, true)
    } else {
        (LABEL_SIZE as u32 * 2 + DESC_SIZE as u32 * 2 + 8, false)
    }
}

fn y_top(values: impl Iterator<Item = f64>) -> f64 {
    let max = values.filter(|v| v.is_finite()).fold(0.0_f64, f64::max);
    if max > 0.0 {
        max * 1.15
    } else {
        1.0
    }
}

fn draw_grouped<DB: DrawingBackend>(
    chart: &Chart,
    g: &Grouped,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let top = y_top(
        g.values
            .iter()
            .flatten()
            .flatten()
            .flat_map(|b| [b.value, b.ci.map_or(b.value, |c| c.1)])
            .chain(g.lines.iter().map(|l| l.y)),
    );
    let (label_area, upright) = x_label_layout(area, &g.groups);
    let mut cc = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(label_area)
        .y_label_area_size(80)
        .build_cartesian_2d(
            GroupAxis {
                labels: g.groups.clone(),
            },
            0.0..top,
        )
        .map_err(e)?;
    let label_font = (FONT, LABEL_SIZE).into_font();
    // Upright labels are drawn below, so that they end at their tick rather than cross it.
    let blank = |_: &f64| String::new();
    let mut mesh = cc.configure_mesh();
    if upright {
        mesh.x_label_formatter(&blank);
    }
    mesh.disable_x_mesh()
        .x_labels(g.groups.len())
        .y_labels(8)
        .x_label_style(label_font.clone())
        .y_label_style(label_font.clone())
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(e)?;
    if upright {
        let style = TextStyle::from(label_font.transform(FontTransform::Rotate270))
            .pos(Pos::new(HPos::Right, VPos::Center));
        let (ox, oy) = area.get_base_pixel();
        for (i, label) in g.groups.iter().enumerate() {
            let (x, y) = cc.backend_coord(&(i as f64, 0.0));
            area.draw(&Text::new(
                label.as_str(),
                (x - ox, y - oy + 8),
                style.clone(),
            ))
            .map_err(e)?;
        }
    }

    let n_series = g.series.len().max(1) as f64;
    let slot = 0.8 / n_series;
    // Points shrink with their slot so that neighbours do not cover each other.
    let slot_px = f64::from(cc.backend_coord(&(slot, 0.0)).0 - cc.backend_coord(&(0.0, 0.0)).0);
    let radius = (slot_px * 0.45).clamp(3.0, 6.0) as u32;
    for (j, (series, values)) in g.series.iter().zip(&g.values).enumerate() {
        let x0 = |i: usize| i as f64 - 0.4 + j as f64 * slot;
        for (i, bar) in values.iter().enumerate() {
            let Some(bar) = bar else { continue };
            let left = x0(i) + slot * 0.08;
            let right = x0(i) + slot * 0.92;
            let mid = (left + right) / 2.0;
            if g.bars {
                cc.draw_series(std::iter::once(Rectangle::new(
                    [(left, 0.0), (right, bar.value)],
                    series.color.filled(),
                )))
                .map_err(e)?;
            } else {
                cc.draw_series(std::iter::once(Circle::new(
                    (mid, bar.value),
                    radius,
                    series.color.filled(),
                )))
                .map_err(e)?;
            }
            if let Some((lo, hi)) = bar.ci {
                let cap = slot * 0.2;
                let style = BLACK.stroke_width(2);
                cc.draw_series([
                    PathElement::new(vec![(mid, lo), (mid, hi)], style),
                    PathElement::new(vec![(mid - cap, lo), (mid + cap, lo)], style),
                    PathElement::new(vec![(mid - cap, hi), (mid + cap, hi)], style),
                ])
                .map_err(e)?;
            }
        }
    }
    let span = (-0.5, g.groups.len() as f64 - 0.5);
    for line in &g.lines {
        cc.draw_series(std::iter::once(PathElement::new(
            vec![(span.0, line.y), (span.1, line.y)],
            line.color.stroke_width(2),
        )))
        .map_err(e)?;
    }
    Ok(())
}

fn draw_scatter<DB: DrawingBackend>(
    chart: &Chart,
    s: &Scatter,
    area: &DrawingArea<DB, Shift>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let x_top = y_top(s.points.iter().map(|p| p.x));
    let y_max = y_top(s.points.iter().map(|p| p.y));
    let mut cc = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(LABEL_SIZE as u32 * 2 + DESC_SIZE as u32 * 2 + 8)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_top, 0.0..y_max)
        .map_err(e)?;
    cc.configure_mesh()
        .x_labels(8)
        .y_labels(8)
        .label_style((FONT, LABEL_SIZE))
        .x_label_formatter(&|v| fmt_num(*v))
        .y_label_formatter(&|v| fmt_num(*v))
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .axis_desc_style((FONT, DESC_SIZE))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.12))
        .draw()
        .map_err(e)?;
    let plotting = cc.plotting_area().strip_coord_spec();
    let (ox, oy) = plotting.get_base_pixel();
    for p in &s.points {
        let color = s.series.get(p.series).map_or(BLACK, |s| s.color);
        let (x, y) = cc.backend_coord(&(p.x, p.y));
        draw_marker(&plotting, (x - ox, y - oy), p.shape, color, p.filled).map_err(e)?;
    }
    Ok(())
}

// Markers are drawn in pixels relative to `area`, so that every shape has the same size.
fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    shape: usize,
    color: RGBColor,
    filled: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let style = if filled {
        color.filled()
    } else {
        color.stroke_width(2)
    };
    let r = 7;
    match shape % 4 {
        0 => area.draw(&Circle::new((x, y), r, style)),
        1 => area
            .draw(&Polygon::new(
                vec![(x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)],
                style,
            ))
            .and_then(|()| {
                if filled {
                    Ok(())
                } else {
                    area.draw(&PathElement::new(
                        vec![
                            (x, y - r - 1),
                            (x - r - 1, y + r),
                            (x + r + 1, y + r),
                            (x, y - r - 1),
                        ],
                        style,
                    ))
                }
            }),
        2 => area.draw(&Rectangle::new([(x - r, y - r), (x + r, y + r)], style)),
        _ => area
            .draw(&Polygon::new(
                vec![
                    (x, y - r - 1),
                    (x + r + 1, y),
                    (x, y + r + 1),
                    (x - r - 1, y),
                ],
                style,
            ))
            .and_then(|()| {
                if filled {
                    Ok(())
                } else {
                    area.draw(&PathElement::new(
                        vec![
                            (x, y - r - 1),
                            (x + r + 1, y),
                            (x, y + r + 1),
                            (x - r - 1, y),
                            (x, y - r - 1),
                        ],
                        style,
                    ))
                }
            }),
    }
}

enum Entry {
    /// Colour swatch: a filled square for bars, a dot for points.
    Swatch(String, RGBColor, bool),
    Line(String, RGBColor),
    /// Black marker of a shape index, filled or hollow.
    Marker(String, usize, bool),
    Gap,
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    let font = (FONT, LABEL_SIZE).into_font().color(&BLACK);
    let max_text = LEGEND_WIDTH.saturating_sub(44);
    let mut y = 20;
    for entry in entries {
        let (label, swatch_x, swatch_y) = (34, 10, y);
        match entry {
            Entry::Gap => {
                y += 10;
                continue;
            }
            Entry::Swatch(_, color, true) => area
                .draw(&Rectangle::new(
                    [(swatch_x, swatch_y), (swatch_x + 16, swatch_y + 16)],
                    color.filled(),
                ))
                .map_err(e)?,
            Entry::Swatch(_, color, false) => area
                .draw(&Circle::new(
                    (swatch_x + 8, swatch_y + 8),
                    6,
                    color.filled(),
                ))
                .map_err(e)?,
            Entry::Line(_, color) => area
                .draw(&PathElement::new(
                    vec![(swatch_x, swatch_y + 8), (swatch_x + 18, swatch_y + 8)],
                    color.stroke_width(3),
                ))
                .map_err(e)?,
            Entry::Marker(_, shape, filled) => {
                draw_marker(area, (swatch_x + 8, swatch_y + 8), *shape, BLACK, *filled)
                    .map_err(e)?
            }
        }
        let text = match entry {
            Entry::Swatch(t, ..) | Entry::Line(t, _) | Entry::Marker(t, ..) => t,
            Entry::Gap => continue,
        };
        for line in wrap(area, text, max_text) {
            area.draw(&Text::new(line, (label, y), font.clone()))
                .map_err(e)?;
            y += LABEL_SIZE as i32 + 5;
        }
        y += 6;
    }
    Ok(())
}

// Legend labels wrap at spaces onto further lines rather than being cut or overflowing.
fn wrap<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str, max: u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split(' ') {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if !current.is_empty() && text_width(area, &candidate, LABEL_SIZE) > max {
            lines.push(std::mem::replace(&mut current, word.to_owned()));
        } else {
            current = candidate;
        }
    }
    lines.push(current);
    lines
}

/// Okabe–Ito colours (readable for colour-blind readers) for the ternary formats; greys for
/// the baselines, so the formats under test stand out.
pub(crate) fn format_color(format: &str) -> Option<RGBColor> {
    Some(match format {
        "tq1_0" => RGBColor(0xE6, 0x9F, 0x00),
        "tq2_0" => RGBColor(0x00, 0x72, 0xB2),
        "i2_s" => RGBColor(0x00, 0x9E, 0x73),
        "tl1" => RGBColor(0xD5, 0x5E, 0x00),
        "tl2" => RGBColor(0xCC, 0x79, 0xA7),
        "f16" => RGBColor(0x80, 0x80, 0x80),
        "bf16" => RGBColor(0xB0, 0xB0, 0xB0),
        "q4_0" => RGBColor(0x33, 0x33, 0x33),
        "q4_k" => RGBColor(0x5A, 0x5A, 0x5A),
        "q8_0" => RGBColor(0x9A, 0x9A, 0x9A),
        _ => return None,
    })
}

/// Colours for series that are not one-per-format (several kernels of one format).
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x80, 0x80, 0x80),
    RGBColor(0x33, 0x33, 0x33),
];

/// Red for measured-bandwidth lines, grey for the "no speedup" reference.
pub(crate) const LINE_RED: RGBColor = RGBColor(0xC0, 0x1C, 0x28);
pub(crate) const LINE_GREY: RGBColor = RGBColor(0x60, 0x60, 0x60);
