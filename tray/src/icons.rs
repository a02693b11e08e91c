//! The tray's icons, drawn in code so no icon theme is needed: a green dot
//! (all well), an amber dot with `!` (needs attention), a grey ring (not
//! running), each at a few sizes as ARGB32 pixmaps. Pure.

use crate::model::IconKind;

/// The sizes drawn, in pixels: hosts pick the nearest.
pub const SIZES: [usize; 3] = [16, 22, 44];

/// An ARGB32 image, network byte order (A, R, G, B per pixel), row by row,
/// as StatusNotifierItem's `IconPixmap` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pixmap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 4` bytes.
    pub data: Vec<u8>,
}

impl Pixmap {
    /// The (A, R, G, B) of the pixel at `x`, `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 4] {
        let i = (y * self.width + x) * 4;
        [
            self.data[i],
            self.data[i + 1],
            self.data[i + 2],
            self.data[i + 3],
        ]
    }
}

/// Each kind's icon at every size in [`SIZES`].
pub fn pixmaps(kind: IconKind) -> Vec<Pixmap> {
    SIZES.iter().map(|&size| draw(kind, size)).collect()
}

const GREEN: [f32; 3] = [46.0, 158.0, 68.0];
const AMBER: [f32; 3] = [232.0, 163.0, 23.0];
const GREY: [f32; 3] = [140.0, 140.0, 140.0];
const WHITE: [f32; 3] = [255.0, 255.0, 255.0];

/// Samples per pixel along each axis (antialiasing).
const SAMPLES: usize = 4;

/// The dot's radius, as a share of the size.
const RADIUS: f32 = 0.42;

/// Whether the point (`x`, `y`) in the unit square is inside the shape.
fn in_shape(kind: IconKind, x: f32, y: f32) -> bool {
    let d = ((x - 0.5).powi(2) + (y - 0.5).powi(2)).sqrt();
    match kind {
        IconKind::Off => (0.26..=RADIUS).contains(&d),
        IconKind::Healthy | IconKind::Attention => d <= RADIUS,
    }
}

/// Whether the point is on the `!` of the attention icon.
fn in_mark(kind: IconKind, x: f32, y: f32) -> bool {
    if kind != IconKind::Attention {
        return false;
    }
    let bar = (x - 0.5).abs() <= 0.07 && (0.2..=0.6).contains(&y);
    let dot = ((x - 0.5).powi(2) + (y - 0.76).powi(2)).sqrt() <= 0.08;
    bar || dot
}

fn draw(kind: IconKind, size: usize) -> Pixmap {
    let base = match kind {
        IconKind::Healthy => GREEN,
        IconKind::Attention => AMBER,
        IconKind::Off => GREY,
    };
    let mut data = Vec::with_capacity(size * size * 4);
    let scale = size as f32;
    let total = (SAMPLES * SAMPLES) as f32;
    for py in 0..size {
        for px in 0..size {
            let (mut shape, mut mark) = (0usize, 0usize);
            for sy in 0..SAMPLES {
                for sx in 0..SAMPLES {
                    let x = (px as f32 + (sx as f32 + 0.5) / SAMPLES as f32) / scale;
                    let y = (py as f32 + (sy as f32 + 0.5) / SAMPLES as f32) / scale;
                    if in_shape(kind, x, y) {
                        shape += 1;
                        if in_mark(kind, x, y) {
                            mark += 1;
                        }
                    }
                }
            }
            if shape == 0 {
                data.extend_from_slice(&[0, 0, 0, 0]);
                continue;
            }
            let white = mark as f32 / shape as f32;
            let channel = |i: usize| (base[i] * (1.0 - white) + WHITE[i] * white).round() as u8;
            let alpha = (shape as f32 / total * 255.0).round() as u8;
            data.extend_from_slice(&[alpha, channel(0), channel(1), channel(2)]);
        }
    }
    Pixmap {
        width: size,
        height: size,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_comes_in_every_size_as_argb() {
        for kind in [IconKind::Healthy, IconKind::Attention, IconKind::Off] {
            let all = pixmaps(kind);
            assert_eq!(all.len(), SIZES.len());
            for (p, size) in all.iter().zip(SIZES) {
                assert_eq!((p.width, p.height), (size, size));
                assert_eq!(p.data.len(), size * size * 4);
                assert_eq!(p.pixel(0, 0), [0, 0, 0, 0], "corners are transparent");
            }
        }
    }

    #[test]
    fn the_kinds_look_different() {
        let healthy = draw(IconKind::Healthy, 44);
        assert_eq!(
            healthy.pixel(22, 22),
            [255, 46, 158, 68],
            "an opaque green centre"
        );
        let attention = draw(IconKind::Attention, 44);
        assert_eq!(
            attention.pixel(22, 14),
            [255, 255, 255, 255],
            "the `!` is white"
        );
        assert_eq!(attention.pixel(12, 22), [255, 232, 163, 23], "on amber");
        let off = draw(IconKind::Off, 44);
        assert_eq!(off.pixel(22, 22)[0], 0, "a ring: the centre is empty");
        assert_eq!(off.pixel(22, 6), [255, 140, 140, 140], "a grey ring");
    }
}
