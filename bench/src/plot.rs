//! The throughput ratios to the bare limit as a bar chart (PNG), drawn with plotters'
//! bitmap backend and no text, so that it needs no system fonts: the labels of the bars,
//! in order, are written under the image in `docs/BENCHMARKS.md`.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 400;
const MARGIN: i32 = 20;

/// One bar: its label (for the Markdown) and its ratio to the bare limit.
pub struct Bar {
    pub label: String,
    pub ratio: f64,
    /// Bars of one group share a colour.
    pub group: usize,
}

const COLOURS: [RGBColor; 7] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draws `bars` left to right, the height proportional to the ratio; a black line marks
/// the bare limit (1.0) and grey lines every 0.5.
pub fn draw(path: &Path, bars: &[Bar]) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let top = bars.iter().map(|b| b.ratio).fold(1.0, f64::max).max(1.0) * 1.1;
    let plot_h = HEIGHT as i32 - 2 * MARGIN;
    let y = |ratio: f64| HEIGHT as i32 - MARGIN - (ratio / top * plot_h as f64) as i32;
    let mut grid = 0.5;
    while grid < top {
        let line = PathElement::new(
            vec![(MARGIN, y(grid)), (WIDTH as i32 - MARGIN, y(grid))],
            RGBColor(210, 210, 210),
        );
        root.draw(&line).map_err(|e| fail(&e))?;
        grid += 0.5;
    }
    let slot = (WIDTH as i32 - 2 * MARGIN) / bars.len().max(1) as i32;
    for (i, bar) in bars.iter().enumerate() {
        let x0 = MARGIN + i as i32 * slot + slot / 6;
        let x1 = MARGIN + (i as i32 + 1) * slot - slot / 6;
        let colour = COLOURS[bar.group % COLOURS.len()];
        let rect = Rectangle::new([(x0, y(bar.ratio)), (x1, y(0.0))], colour.filled());
        root.draw(&rect).map_err(|e| fail(&e))?;
    }
    let bare = PathElement::new(
        vec![(MARGIN, y(1.0)), (WIDTH as i32 - MARGIN, y(1.0))],
        BLACK.stroke_width(2),
    );
    root.draw(&bare).map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}
