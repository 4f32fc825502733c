//! The throughput ratios to the bare limit as a horizontal bar chart (PNG), so that the
//! figures of a run can be compared at a glance in `docs/benchmarks.png`.
//!
//! The text is drawn with plotters' pure-Rust `ab_glyph` renderer, which loads no system
//! fonts by itself: DejaVu Sans is read from its usual path at run time and registered once.
//! A machine without that font still gets the same chart, only without any text (no
//! labels, values, axis or title), rather than a failed bench run at its very end.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FAMILY: &str = "sans-serif";

const WIDTH: u32 = 960;
const MARGIN: i32 = 20;
/// From the top of the image to the first row: room for the title.
const TOP: i32 = 56;
/// From the last row to the bottom of the image: room for the axis values.
const BOTTOM: i32 = 44;
const ROW: i32 = 28;
const BAR: i32 = 18;
/// Between a label and the bars, and between a bar and its value.
const GAP: i32 = 8;
/// The label column when there is no font to measure the labels with.
const LABEL_COLUMN: i32 = 280;
/// Room right of the longest bar for its value.
const VALUE_COLUMN: i32 = 64;

/// One bar: its label and its ratio to the bare limit.
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

/// Whether the font is registered, reading it on the first call only: `register_font`
/// wants `'static` bytes, so they are leaked, once per process.
fn font() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| match std::fs::read(FONT) {
        Ok(bytes) => {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font(FAMILY, FontStyle::Normal, bytes).is_ok()
        }
        Err(_) => false,
    })
}

fn height(bars: usize) -> u32 {
    (TOP + bars as i32 * ROW + BOTTOM) as u32
}

/// Draws one row per bar, top to bottom, the label on the left and the length proportional
/// to the ratio; a black line marks the bare limit (1.0) and grey lines every 0.5.
pub fn draw(path: &Path, bars: &[Bar]) -> Result<()> {
    render(path, bars, font())
}

/// [`draw`], with text only if `text` (the font is registered).
fn render(path: &Path, bars: &[Bar], text: bool) -> Result<()> {
    let height = height(bars.len());
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    let fail = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let style = |size: f64, h: HPos, v: VPos| {
        TextStyle::from((FAMILY, size).into_font()).pos(Pos::new(h, v))
    };
    let write = |s: &str, style: &TextStyle, at: (i32, i32)| -> Result<()> {
        if text {
            root.draw_text(s, style, at).map_err(|e| fail(&e))?;
        }
        Ok(())
    };
    root.fill(&WHITE).map_err(|e| fail(&e))?;

    let label_style = style(14.0, HPos::Right, VPos::Center);
    let mut label_column = LABEL_COLUMN;
    if text {
        label_column = 0;
        for bar in bars {
            let (w, _) = root
                .estimate_text_size(&bar.label, &label_style)
                .map_err(|e| fail(&e))?;
            label_column = label_column.max(w as i32);
        }
        label_column = label_column.min(WIDTH as i32 / 2);
    }

    // The axis ends on a grid line, and a non-finite ratio (no bare figure) draws no bar.
    let length = |ratio: f64| {
        if ratio.is_finite() {
            ratio.max(0.0)
        } else {
            0.0
        }
    };
    let top = bars.iter().map(|b| length(b.ratio)).fold(1.0, f64::max);
    let steps = (top * 2.0).ceil() as usize;
    let top = steps as f64 / 2.0;
    let x0 = MARGIN + label_column + GAP;
    let x1 = WIDTH as i32 - MARGIN - VALUE_COLUMN;
    let x = |ratio: f64| x0 + (ratio / top * (x1 - x0) as f64).round() as i32;
    let y_top = TOP;
    let y_bottom = TOP + bars.len() as i32 * ROW;

    write(
        "Throughput as a ratio to the bare broker limit (same run)",
        &style(18.0, HPos::Center, VPos::Center),
        (WIDTH as i32 / 2, TOP / 2),
    )?;
    let axis_style = style(13.0, HPos::Center, VPos::Top);
    for step in 0..=steps {
        let ratio = step as f64 / 2.0;
        let line = PathElement::new(
            vec![(x(ratio), y_top - 4), (x(ratio), y_bottom + 4)],
            RGBColor(210, 210, 210),
        );
        root.draw(&line).map_err(|e| fail(&e))?;
        let value = if step == 0 {
            "0".to_string()
        } else {
            format!("{ratio:.1}")
        };
        write(&value, &axis_style, (x(ratio), y_bottom + 10))?;
    }
    for (i, bar) in bars.iter().enumerate() {
        let middle = TOP + i as i32 * ROW + ROW / 2;
        let colour = COLOURS[bar.group % COLOURS.len()];
        let rect = Rectangle::new(
            [
                (x(0.0), middle - BAR / 2),
                (x(length(bar.ratio)), middle + BAR / 2),
            ],
            colour.filled(),
        );
        root.draw(&rect).map_err(|e| fail(&e))?;
    }
    let bare = PathElement::new(
        vec![(x(1.0), y_top - 4), (x(1.0), y_bottom + 4)],
        BLACK.stroke_width(2),
    );
    root.draw(&bare).map_err(|e| fail(&e))?;
    // The text of the rows goes last, over the lines.
    let value_style = style(13.0, HPos::Left, VPos::Center);
    for (i, bar) in bars.iter().enumerate() {
        // plotters' ab_glyph renderer sets centred text about 2 px above the centre.
        let middle = TOP + i as i32 * ROW + ROW / 2 + 2;
        write(&bar.label, &label_style, (x0 - GAP, middle))?;
        let value = format!("{:.2}×", bar.ratio);
        let at = (x(length(bar.ratio)) + GAP / 2, middle);
        if text {
            // On white, since the value of a bar just short of 1.0 lies across the black line.
            let (w, h) = root
                .estimate_text_size(&value, &value_style)
                .map_err(|e| fail(&e))?;
            let (w, h) = (w as i32, h as i32);
            let under = Rectangle::new(
                [
                    (at.0 - 1, at.1 - h / 2 - 2),
                    (at.0 + w + 2, at.1 + h / 2 + 2),
                ],
                WHITE.filled(),
            );
            root.draw(&under).map_err(|e| fail(&e))?;
        }
        write(&value, &value_style, at)?;
    }
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The width and height in the header of the PNG at `path`.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    fn bars(n: usize) -> Vec<Bar> {
        (0..n)
            .map(|i| Bar {
                label: format!("scenario {i}, {} hooks", 10 * i),
                ratio: 0.1 + 0.45 * i as f64,
                group: i,
            })
            .collect()
    }

    /// With the font if this machine has it, and always without text, as on a machine
    /// without the font.
    #[test]
    fn draws_a_png_whose_height_grows_with_the_bars() {
        let mut heights = Vec::new();
        for n in [1, 3, 8] {
            for text in [font(), false] {
                let path = std::env::temp_dir().join(format!(
                    "hookbus-plot-test-{}-{n}-{text}.png",
                    std::process::id()
                ));
                let drawn = render(&path, &bars(n), text);
                let size = drawn.map(|()| png_size(&path));
                let _ = std::fs::remove_file(&path);
                let (width, height) = size.unwrap();
                assert_eq!(width, WIDTH);
                assert_eq!(height, super::height(n));
                heights.push(height);
            }
        }
        let per_bars: Vec<u32> = heights
            .chunks(2)
            .map(|both| {
                assert_eq!(both[0], both[1], "the same size with and without text");
                both[0]
            })
            .collect();
        assert_eq!(per_bars[1] - per_bars[0], 2 * ROW as u32);
        assert_eq!(per_bars[2] - per_bars[1], 5 * ROW as u32);
        assert!(per_bars[0] >= 100, "room for a title, a row and the axis");
    }
}
