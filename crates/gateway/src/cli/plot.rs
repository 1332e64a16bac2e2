//! `--plot`: a PNG of the eight DTMF band levels over time with each detected press marked.
//!
//! Drawn with plotters' bitmap backend and no font: the few labels (band frequencies, seconds,
//! the keys) use a 3x5 pixel font defined here, so the picture renders the same on a server
//! with no fonts installed.

use std::path::Path;

use plotters::prelude::*;
use tonegate_media::inband::InbandPress;

const WIDTH: u32 = 1400;
const STRIP: i32 = 70;
const LEFT: i32 = 60;
const TOP: i32 = 40;
const FLOOR_DBM0: f32 = -60.0;
const BANDS: [&str; 8] = ["697", "770", "852", "941", "1209", "1336", "1477", "1633"];
const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// 3x5 glyphs, one row per 3 bits (MSB left).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '*' => [0, 5, 2, 5, 0],
        '#' => [5, 7, 5, 7, 5],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        's' => [0, 7, 4, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '?' => [7, 1, 2, 0, 2],
        _ => return None,
    })
}

fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    s: &str,
    x: i32,
    y: i32,
    scale: i32,
    colour: RGBColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, c) in s.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let ox = x + i as i32 * 4 * scale;
        for (r, bits) in rows.iter().enumerate() {
            for b in 0..3 {
                if bits & (4 >> b) != 0 {
                    let px = ox + b * scale;
                    let py = y + r as i32 * scale;
                    area.draw(&Rectangle::new(
                        [(px, py), (px + scale, py + scale)],
                        colour.filled(),
                    ))?;
                }
            }
        }
    }
    Ok(())
}

/// Draws `bands` (one entry of eight dBm0 levels per 10 ms block) and `presses` to `png`.
pub(crate) fn timeline(
    png: &Path,
    bands: &[[f32; 8]],
    presses: &[InbandPress],
    samples: usize,
    show_keys: bool,
) -> anyhow::Result<()> {
    let height = (TOP + 8 * STRIP + 40) as u32;
    let root = BitMapBackend::new(png, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let plot_w = WIDTH as i32 - LEFT - 20;
    let total = samples.max(1) as f64;
    let x_of = |sample: f64| LEFT + (sample / total * f64::from(plot_w)) as i32;
    // Presses: a shaded column over every strip, the key above, the two tones' strips darker.
    for p in presses {
        let start = p.press.start().ticks() as f64;
        let end = start + p.press.duration().ticks() as f64;
        let (x0, x1) = (x_of(start), x_of(end).max(x_of(start) + 1));
        root.draw(&Rectangle::new(
            [(x0, TOP), (x1, TOP + 8 * STRIP)],
            RGBColor(255, 235, 150).filled(),
        ))?;
        let label = super::output::key_label(p.press.key(), show_keys);
        text(&root, &label, x0, 8, 5, BLACK)?;
    }
    for (band, name) in BANDS.iter().enumerate() {
        // Low group at the bottom, high group on top, as a keypad is read.
        let y0 = TOP + (7 - band as i32) * STRIP;
        root.draw(&PathElement::new(
            vec![(LEFT, y0 + STRIP), (LEFT + plot_w, y0 + STRIP)],
            RGBColor(200, 200, 200),
        ))?;
        text(&root, name, 4, y0 + STRIP / 2 - 6, 3, COLOURS[band])?;
        let points: Vec<(i32, i32)> = bands
            .iter()
            .enumerate()
            .map(|(i, levels)| {
                let level = levels[band].clamp(FLOOR_DBM0, 0.0);
                let y = y0 + STRIP
                    - 2
                    - ((level - FLOOR_DBM0) / -FLOOR_DBM0 * (STRIP - 6) as f32) as i32;
                (x_of((i * 80 + 40) as f64), y)
            })
            .collect();
        root.draw(&PathElement::new(points, COLOURS[band].stroke_width(2)))?;
    }
    // Seconds along the bottom.
    let seconds = (samples / 8000) as i32;
    let step = (seconds / 20).max(1);
    for s in (0..=seconds).step_by(step as usize) {
        let x = x_of(f64::from(s) * 8000.0);
        root.draw(&PathElement::new(
            vec![(x, TOP + 8 * STRIP), (x, TOP + 8 * STRIP + 6)],
            BLACK,
        ))?;
        text(
            &root,
            &format!("{s}s"),
            x - 4,
            TOP + 8 * STRIP + 10,
            3,
            BLACK,
        )?;
    }
    root.present()?;
    Ok(())
}
