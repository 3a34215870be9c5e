//! Decode: image bytes to the small greyscale picture the hash is computed from.
//!
//! First step after fetching. JPEG, PNG, WebP and GIF (its first frame) go through the
//! `image` crate with its limits set before any pixel is decoded: the declared width, height
//! and the decoder's allocations are bounded, so a small file declaring a huge canvas (a
//! decompression bomb) is refused from its header. EXIF orientation is applied, transparent
//! pixels are composited on white (the background marketplaces show images on), and a
//! uniform frame around the picture is trimmed, so that a copy with a border added matches.
//! What is left is averaged down to [`SIDE`] × [`SIDE`] grey levels.
//!
//! Nearly every listing photo is a YCbCr JPEG, and the hash reads grey levels only: such a
//! JPEG takes the fast path of [`super::jpeg`], decoded by libjpeg-turbo to grey at reduced
//! scale. CMYK, YCCK, RGB and lossless JPEGs, a JPEG libjpeg-turbo has a complaint about, and
//! every other format take the `image` crate's path.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::jpeg::decode_jpeg_grey;

/// Width and height of the thumbnail the hash reads.
pub const SIDE: usize = 32;

/// What a decoder may be asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Declared width × height above which an image is refused before decoding.
    pub max_pixels: u64,
    /// Longest side accepted.
    pub max_side: u32,
    /// Shortest side accepted: below it there is nothing to compare.
    pub min_side: u32,
    /// Bytes the decoder may allocate.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_pixels: 40_000_000,
            max_side: 12_000,
            min_side: 16,
            max_alloc_bytes: 256 * 1024 * 1024,
        }
    }
}

/// An image that could not be turned into a thumbnail, with a stable reason code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the image is empty (zero bytes)")]
    Empty,
    #[error("not an image in a supported format (JPEG, PNG, WebP, GIF)")]
    UnsupportedFormat,
    #[error("the image declares {width}×{height} pixels, over the limits ({limit})")]
    TooLarge {
        width: u32,
        height: u32,
        limit: String,
    },
    #[error("the image is {width}×{height} pixels, under the minimum side of {min_side}")]
    TooSmall {
        width: u32,
        height: u32,
        min_side: u32,
    },
    #[error("the decoder would need more memory than allowed: {0}")]
    OverMemoryLimit(String),
    #[error("the image data is broken: {0}")]
    Corrupt(String),
    #[error("the file ends before the image does")]
    Truncated,
    #[error("the JPEG has more than {0} scans")]
    TooManyScans(u32),
}

impl DecodeError {
    /// The code problems are counted and reported by.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::UnsupportedFormat => "unsupported_format",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::TooSmall { .. } => "too_small",
            DecodeError::OverMemoryLimit(_) => "over_memory_limit",
            DecodeError::Corrupt(_) => "corrupt",
            DecodeError::Truncated => "truncated",
            DecodeError::TooManyScans(_) => "too_many_scans",
        }
    }
}

/// A picture reduced to [`SIDE`] × [`SIDE`] grey levels (0–255), row by row, twice.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// Plain averages: what the detail measures read. Empty for an inset crop, which is only
    /// hashed (see [`thumbnails_of`]).
    pub pixels: Vec<f32>,
    /// Averages of the grey levels clamped to the picture's middle half (between its lower
    /// and upper quartile, [`CLAMP_SHARE`]): what the hash reads. Marks laid over a small part
    /// of the picture, far lighter or darker than it (a watermark's letters, a logo), then
    /// weigh no more than its own contrast, which on a low-contrast texture they would
    /// otherwise outweigh.
    pub clamped: Vec<f32>,
}

/// Share of a picture's pixels clamped up to its lower quantile, and down to its upper one.
/// Chosen on the test photos (`cargo bench --bench image_accuracy` and a trial of other
/// shares): a tenth left the watermarked low-contrast texture (brick) 16 bits from its
/// original, 0.15 and 0.20 at 12 (the threshold itself); a quarter brings it to 10, while
/// resizing stays within 10 bits and distinct photos 18 bits or more apart.
pub const CLAMP_SHARE: f64 = 0.25;

/// Rows the clamping levels are counted on, at most about.
const CLAMP_ROWS: usize = 64;

impl Thumbnail {
    /// A thumbnail whose plain and clamped grey levels are the same.
    pub fn unclamped(pixels: Vec<f32>) -> Thumbnail {
        Thumbnail {
            clamped: pixels.clone(),
            pixels,
        }
    }

    /// The same picture mirrored left to right.
    pub fn mirrored(&self) -> Thumbnail {
        let mirror = |levels: &[f32]| {
            let mut levels = levels.to_vec();
            for row in levels.chunks_exact_mut(SIDE) {
                row.reverse();
            }
            levels
        };
        Thumbnail {
            pixels: mirror(&self.pixels),
            clamped: mirror(&self.clamped),
        }
    }
}

/// Decodes `bytes` into a thumbnail, within `limits`.
pub fn decode_thumbnail(bytes: &[u8], limits: &DecodeLimits) -> Result<Thumbnail, DecodeError> {
    Ok(decode_thumbnails(bytes, limits, &[0.0])?.swap_remove(0))
}

/// Decodes `bytes` into thumbnails with each of `insets` cut off every side of its content
/// (see [`thumbnails_of`]), within `limits`.
pub fn decode_thumbnails(
    bytes: &[u8],
    limits: &DecodeLimits,
    insets: &[f64],
) -> Result<Vec<Thumbnail>, DecodeError> {
    if let Some(grey) = decode_jpeg_grey(bytes, limits)? {
        let (width, height) = (grey.width() as usize, grey.height() as usize);
        return Ok(thumbnails_of_grey(grey.as_raw(), width, height, insets));
    }
    let image = decode_image(bytes, limits)?;
    Ok(thumbnails_of(&image, insets))
}

pub(crate) fn check_size(
    width: u32,
    height: u32,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    let too_large = |limit: String| DecodeError::TooLarge {
        width,
        height,
        limit,
    };
    if width > limits.max_side || height > limits.max_side {
        return Err(too_large(format!("{} pixels a side", limits.max_side)));
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(too_large(format!("{} pixels", limits.max_pixels)));
    }
    if width < limits.min_side || height < limits.min_side {
        return Err(DecodeError::TooSmall {
            width,
            height,
            min_side: limits.min_side,
        });
    }
    Ok(())
}

/// The thumbnail of a decoded image.
pub fn thumbnail_of(image: &DynamicImage) -> Thumbnail {
    thumbnails_of(image, &[0.0]).swap_remove(0)
}

/// Thumbnails of a decoded image with each of `insets` (a share of the width and of the
/// height) cut off every side of its content first. Only the first has its plain levels:
/// the others are inset crops, only ever hashed, and summing their plain levels too cost
/// about a twentieth of a listing image's decode and hash on the speed bench.
pub fn thumbnails_of(image: &DynamicImage, insets: &[f64]) -> Vec<Thumbnail> {
    let (grey, width, height) = grey_on_white(image);
    thumbnails_of_grey(&grey, width, height, insets)
}

/// [`thumbnails_of`] a `width` × `height` picture of grey levels.
fn thumbnails_of_grey(grey: &[u8], width: usize, height: usize, insets: &[f64]) -> Vec<Thumbnail> {
    if width == 0 || height == 0 {
        let blank = Thumbnail::unclamped(vec![255.0; SIDE * SIDE]);
        return vec![blank; insets.len()];
    }
    let (x0, y0, x1, y1) = content_box(grey, width, height);
    insets
        .iter()
        .enumerate()
        .map(|(number, &inset)| {
            let dx = ((x1 - x0) as f64 * inset) as usize;
            let dy = ((y1 - y0) as f64 * inset) as usize;
            let frame = if x1 - x0 > 2 * dx && y1 - y0 > 2 * dy {
                (x0 + dx, y0 + dy, x1 - dx, y1 - dy)
            } else {
                (x0, y0, x1, y1)
            };
            area_average(grey, width, frame, number == 0)
        })
        .collect()
}

/// Decodes `bytes` into an upright image, within `limits`.
pub fn decode_image(bytes: &[u8], limits: &DecodeLimits) -> Result<DynamicImage, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|err| DecodeError::Corrupt(err.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Jpeg) => super::jpeg::check_complete(bytes)?,
        Some(ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif) => {}
        _ => return Err(DecodeError::UnsupportedFormat),
    }
    let mut decoder_limits = image::Limits::default();
    decoder_limits.max_image_width = Some(limits.max_side);
    decoder_limits.max_image_height = Some(limits.max_side);
    decoder_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(decoder_limits);

    let mut decoder = reader
        .into_decoder()
        .map_err(|err| map_error(err, limits, bytes))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    // A broken EXIF block only loses the orientation, not the image.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|err| map_error(err, limits, bytes))?;
    image.apply_orientation(orientation);
    Ok(image)
}

fn map_error(err: image::ImageError, limits: &DecodeLimits, bytes: &[u8]) -> DecodeError {
    match err {
        image::ImageError::Limits(limit) => match limit.kind() {
            image::error::LimitErrorKind::DimensionError => {
                let (width, height) = declared_size(bytes, limits).unwrap_or((0, 0));
                DecodeError::TooLarge {
                    width,
                    height,
                    limit: format!("{} pixels a side", limits.max_side),
                }
            }
            _ => DecodeError::OverMemoryLimit(limit.to_string()),
        },
        image::ImageError::Unsupported(_) => DecodeError::UnsupportedFormat,
        other => DecodeError::Corrupt(other.to_string()),
    }
}

/// The width and height an image's header declares, for the message of one refused by the
/// decoder's side limit (which says only that a side is over it). Read with the allocation
/// limit alone: the header is all a decoder reads before it is asked for pixels.
fn declared_size(bytes: &[u8], limits: &DecodeLimits) -> Option<(u32, u32)> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut header_limits = image::Limits::no_limits();
    header_limits.max_alloc = Some(limits.max_alloc_bytes);
    reader.limits(header_limits);
    reader.into_dimensions().ok()
}

/// Grey levels of `image`, transparent pixels composited on white.
fn grey_on_white(image: &DynamicImage) -> (Vec<u8>, usize, usize) {
    let width = image.width() as usize;
    let height = image.height() as usize;
    let grey = match image {
        DynamicImage::ImageLuma8(grey) => grey.as_raw().clone(),
        DynamicImage::ImageRgb8(rgb) => rgb
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        other if !other.color().has_alpha() => other
            .to_rgb8()
            .as_raw()
            .chunks_exact(3)
            .map(|p| luma(p[0], p[1], p[2]))
            .collect(),
        other => other
            .to_rgba8()
            .as_raw()
            .chunks_exact(4)
            .map(|p| {
                let y = f32::from(luma(p[0], p[1], p[2]));
                let alpha = f32::from(p[3]) / 255.0;
                (y * alpha + 255.0 * (1.0 - alpha)).round() as u8
            })
            .collect(),
    };
    (grey, width, height)
}

/// ITU-R BT.601 luma, in integers (weights sum to 1024).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((306 * u32::from(r) + 601 * u32::from(g) + 117 * u32::from(b) + 512) >> 10) as u8
}

/// The part of the picture inside a uniform frame, as `(x0, y0, x1, y1)`, end exclusive.
///
/// A row or column belongs to the frame when its grey levels span at most
/// [`FRAME_TOLERANCE`] and it is the colour of the outermost one; at most a quarter of each
/// side is trimmed, so a picture that is mostly flat is not trimmed away.
fn content_box(grey: &[u8], width: usize, height: usize) -> (usize, usize, usize, usize) {
    let row = |y: usize| grey[y * width..(y + 1) * width].iter().copied();
    let column = |x: usize| (0..height).map(move |y| grey[y * width + x]);
    let (mut x0, mut y0, mut x1, mut y1) = (0, 0, width, height);

    if let Some(colour) = frame_colour(row(0)) {
        while y0 < height / 4 && is_frame(row(y0), colour) {
            y0 += 1;
        }
    }
    if let Some(colour) = frame_colour(row(height - 1)) {
        while y1 > height - height / 4 && is_frame(row(y1 - 1), colour) {
            y1 -= 1;
        }
    }
    if let Some(colour) = frame_colour(column(0)) {
        while x0 < width / 4 && is_frame(column(x0), colour) {
            x0 += 1;
        }
    }
    if let Some(colour) = frame_colour(column(width - 1)) {
        while x1 > width - width / 4 && is_frame(column(x1 - 1), colour) {
            x1 -= 1;
        }
    }
    (x0, y0, x1, y1)
}

/// Grey levels a frame's line may span: JPEG noise around a flat border stays within it.
const FRAME_TOLERANCE: u8 = 12;

fn frame_colour(line: impl Iterator<Item = u8>) -> Option<u8> {
    let (lo, hi, sum, n) = line.fold((u8::MAX, 0u8, 0u64, 0u64), |(lo, hi, sum, n), v| {
        (lo.min(v), hi.max(v), sum + u64::from(v), n + 1)
    });
    (n > 0 && hi - lo <= FRAME_TOLERANCE).then(|| (sum / n) as u8)
}

fn is_frame(line: impl Iterator<Item = u8>, colour: u8) -> bool {
    frame_colour(line).is_some_and(|c| c.abs_diff(colour) <= FRAME_TOLERANCE / 2)
}

/// The grey levels `(low, high)` that [`CLAMP_SHARE`] of the `frame`'s pixels lie below and
/// above, counted on at most about [`CLAMP_ROWS`] of its rows, evenly spaced: some tens of thousands
/// of pixels place the quartiles about as well as a million, in a fraction of the time.
fn clamp_levels(grey: &[u8], width: usize, frame: (usize, usize, usize, usize)) -> (u8, u8) {
    let (x0, y0, x1, y1) = frame;
    let step = ((y1 - y0) / CLAMP_ROWS).max(1);
    let mut histogram = [0u64; 256];
    for y in (y0..y1).step_by(step) {
        for &v in &grey[y * width + x0..y * width + x1] {
            histogram[usize::from(v)] += 1;
        }
    }
    let total: u64 = histogram.iter().sum();
    let share = (total as f64 * CLAMP_SHARE) as u64;
    let mut seen = 0;
    let mut low = 0u8;
    for (level, &count) in histogram.iter().enumerate() {
        seen += count;
        if seen > share {
            low = level as u8;
            break;
        }
    }
    seen = 0;
    let mut high = 255u8;
    for (level, &count) in histogram.iter().enumerate().rev() {
        seen += count;
        if seen > share {
            high = level as u8;
            break;
        }
    }
    (low, high.max(low))
}

/// Averages the `frame` of a `width`-wide grey picture down to [`SIDE`] × [`SIDE`], clamped,
/// and plain too when `plain`.
fn area_average(
    grey: &[u8],
    width: usize,
    frame: (usize, usize, usize, usize),
    plain: bool,
) -> Thumbnail {
    let (x0, y0, x1, y1) = frame;
    let (w, h) = (x1 - x0, y1 - y0);
    // Source columns of each output column; at least one, so a narrow picture still fills
    // every cell.
    let span = |i: usize, len: usize, start: usize| {
        let a = start + i * len / SIDE;
        let b = (start + (i + 1) * len / SIDE).max(a + 1);
        (a, b)
    };
    let columns: Vec<(usize, usize)> = (0..SIDE).map(|i| span(i, w, x0)).collect();
    let (low, high) = clamp_levels(grey, width, frame);

    let mut pixels = if plain {
        vec![0f32; SIDE * SIDE]
    } else {
        Vec::new()
    };
    let mut clamped = vec![0f32; SIDE * SIDE];
    // Each band of rows is first summed down its columns, whole rows at a time (loops the
    // compiler vectorises), then across each cell's columns.
    let mut down = vec![0u32; if plain { w } else { 0 }];
    let mut clamped_down = vec![0u32; w];
    for oy in 0..SIDE {
        let (ya, yb) = span(oy, h, y0);
        down.fill(0);
        clamped_down.fill(0);
        for y in ya..yb {
            let line = &grey[y * width + x0..y * width + x1];
            for (sum, &v) in down.iter_mut().zip(line) {
                *sum += u32::from(v);
            }
            for (sum, &v) in clamped_down.iter_mut().zip(line) {
                *sum += u32::from(v.clamp(low, high));
            }
        }
        for (ox, &(xa, xb)) in columns.iter().enumerate() {
            let count = ((xb - xa) * (yb - ya)) as f32;
            let across = |sums: &[u32]| sums[xa - x0..xb - x0].iter().sum::<u32>() as f32;
            if plain {
                pixels[oy * SIDE + ox] = across(&down) / count;
            }
            clamped[oy * SIDE + ox] = across(&clamped_down) / count;
        }
    }
    Thumbnail { pixels, clamped }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_of_white_and_black_is_exact() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(0, 0, 0), 0);
    }

    #[test]
    fn a_uniform_frame_is_trimmed_and_the_picture_kept() {
        // A 40×40 white frame, 10 wide, around a 20×20 chequerboard.
        let (width, height) = (40, 40);
        let mut grey = vec![255u8; width * height];
        for y in 10..30 {
            for x in 10..30 {
                grey[y * width + x] = if (x + y) % 2 == 0 { 0 } else { 200 };
            }
        }
        assert_eq!(content_box(&grey, width, height), (10, 10, 30, 30));
    }

    #[test]
    fn clamping_keeps_the_middle_half_of_the_grey_levels() {
        // Levels 0..=99, a hundred pixels each: a quarter lie below 25 and above 74.
        let grey: Vec<u8> = (0..100u8).flat_map(|v| [v; 100]).collect();
        assert_eq!(clamp_levels(&grey, 100, (0, 0, 100, 100)), (25, 74));
        // A flat picture clamps to its one level.
        assert_eq!(clamp_levels(&[9; 64], 8, (0, 0, 8, 8)), (9, 9));
    }

    #[test]
    fn a_few_bright_marks_move_the_clamped_thumbnail_little() {
        // A mid-grey picture with a tenth of its rows white: the plain average of their cells
        // jumps, the clamped one stays at the picture's own level.
        let (width, height) = (64, 64);
        let mut grey: Vec<u8> = (0..width * height).map(|i| 100 + (i % 7) as u8).collect();
        for v in &mut grey[40 * width..46 * width] {
            *v = 255;
        }
        let thumb = area_average(&grey, width, (0, 0, width, height), true);
        let cell = 21 * SIDE + 5;
        assert!(thumb.pixels[cell] > 200.0, "{}", thumb.pixels[cell]);
        assert!(thumb.clamped[cell] < 110.0, "{}", thumb.clamped[cell]);
    }

    #[test]
    fn only_the_first_thumbnail_keeps_its_plain_levels() {
        let grey: Vec<u8> = (0..200 * 100).map(|i| (i % 251) as u8).collect();
        let thumbnails = thumbnails_of_grey(&grey, 200, 100, &[0.0, 0.05]);
        assert_eq!(thumbnails[0].pixels.len(), SIDE * SIDE);
        assert!(thumbnails[1].pixels.is_empty());
        // The crop's clamped levels are those of the crop hashed on its own.
        let crop = area_average(&grey, 200, (10, 5, 190, 95), true);
        assert_eq!(thumbnails[1].clamped, crop.clamped);
    }

    #[test]
    fn area_average_of_a_flat_picture_is_flat() {
        let grey = vec![77u8; 100 * 50];
        let thumb = area_average(&grey, 100, (0, 0, 100, 50), true);
        assert!(thumb.pixels.iter().all(|&v| v == 77.0));
        assert_eq!(thumb.clamped, thumb.pixels);
    }
}
