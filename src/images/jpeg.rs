//! The fast path of decoding: a YCbCr or greyscale JPEG straight to small grey levels.
//!
//! Nearly every listing photo is such a JPEG, and the hash reads a 32 × 32 grey thumbnail.
//! libjpeg-turbo (through the `turbojpeg` crate, built from the sources that crate ships)
//! decodes it at the smallest of its scales (1/8, 1/4, 3/8 … 1) whose shorter side is still
//! [`JPEG_MIN_SIDE`], with grey output: each 8 × 8 block becomes a few pixels through a
//! reduced inverse DCT (one, its mean, at 1/8), and the chroma planes are entropy-decoded (the
//! bitstream demands it) but never transformed. What is left of the work is reading the
//! entropy-coded data, which no decoder can skip; on listing-size photos (800–1600 px) the
//! scale is 1/4 or 3/8 (`cargo bench --bench images` measures the difference from 1/8).
//!
//! Anything this path does not take (another format, a CMYK, YCCK or lossless JPEG, or a file
//! libjpeg-turbo reports a problem with, a warning included) is left to the `image` crate's
//! decoding, which is slower but reads more. Before that, [`check_complete`] refuses a JPEG
//! whose data ends before its end-of-image marker, or that has more than [`MAX_SCANS`] scans,
//! since neither decoder refuses those itself.

use image::{DynamicImage, GrayImage};
use turbojpeg::{Colorspace, Decompressor, PixelFormat, ScalingFactor};
use zune_jpeg::zune_core::bytestream::ZCursor;

use super::decode::{check_size, DecodeError, DecodeLimits, SIDE};

/// Shortest side a JPEG is decoded to at least: eight pixels per thumbnail cell. Chosen on
/// the accuracy bench (`cargo bench --bench image_accuracy`): with four (the test photos
/// decoded at 1/4 scale), the grey levels the hash clamps at are read off fewer, blurrier
/// pixels and the watermarked brick texture moved 18 bits from its original (recall 13/14);
/// with eight, every transformation is found as at full scale, each copy as near.
pub const JPEG_MIN_SIDE: usize = 8 * SIDE;

/// Progressive scans a JPEG may have. Encoders write about ten; a file with thousands of
/// tiny scans would keep the decoder busy for seconds (a known denial of service).
pub const MAX_SCANS: u32 = 100;

/// Decodes a YCbCr or greyscale JPEG to grey levels at reduced scale, upright, within
/// `limits`; `None` for anything this path does not take (see the module documentation).
pub fn decode_jpeg_grey(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<Option<GrayImage>, DecodeError> {
    if !bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        return Ok(None);
    }
    let Ok(mut decompressor) = Decompressor::new() else {
        return Ok(None);
    };
    let Ok(header) = decompressor.read_header(bytes) else {
        return Ok(None);
    };
    let (width, height) = (
        u32::try_from(header.width).unwrap_or(u32::MAX),
        u32::try_from(header.height).unwrap_or(u32::MAX),
    );
    check_size(width, height, limits)?;
    if header.is_lossless || !matches!(header.colorspace, Colorspace::YCbCr | Colorspace::Gray) {
        return Ok(None);
    }

    // A progressive JPEG's coefficients are held whole until its last scan: two bytes each,
    // at most three components at full resolution.
    let coefficients = 6 * u64::from(width) * u64::from(height);
    if header.is_progressive && coefficients > limits.max_alloc_bytes {
        return Err(DecodeError::OverMemoryLimit(format!(
            "a progressive {width}×{height} JPEG's coefficients over {} bytes",
            limits.max_alloc_bytes
        )));
    }

    let scale = scale_for(header.width.min(header.height));
    let (w, h) = (scale.scale(header.width), scale.scale(header.height));
    if decompressor.set_scaling_factor(scale).is_err()
        || decompressor.set_scan_limit(MAX_SCANS).is_err()
    {
        return Ok(None);
    }
    let mut image = turbojpeg::Image {
        pixels: vec![0u8; w * h],
        width: w,
        pitch: w,
        height: h,
        format: PixelFormat::GRAY,
    };
    if decompressor
        .decompress(bytes, image.as_deref_mut())
        .is_err()
    {
        return Ok(None);
    }
    let grey = GrayImage::from_raw(w as u32, h as u32, image.pixels)
        .ok_or_else(|| DecodeError::Corrupt("fewer pixels than the header declares".into()))?;

    Ok(Some(match orientation(bytes) {
        Some(orientation) => {
            let mut upright = DynamicImage::ImageLuma8(grey);
            upright.apply_orientation(orientation);
            upright.into_luma8()
        }
        None => grey,
    }))
}

/// Walks a JPEG's segments and scans up to its end-of-image marker: an error if the data
/// ends first (a truncated file) or if it has more than [`MAX_SCANS`] scans.
///
/// Both decoders make a picture of a truncated JPEG, what is missing filled with flat grey,
/// and such a picture hashes by that grey: of the test photos cut to 30 % of their bytes,
/// four distinct ones hashed to the same 64 bits, and a copy cut to 99 % was up to 12 bits
/// from its whole photo. So a truncated file is refused, never hashed. Segments are skipped
/// by their lengths (an EXIF thumbnail's own end marker inside its segment is never read),
/// the entropy-coded data of each scan up to the next marker; whatever follows the
/// end-of-image marker (padding, the video a phone appends) is left alone.
pub fn check_complete(bytes: &[u8]) -> Result<(), DecodeError> {
    let truncated = || DecodeError::Truncated;
    let next_ff = |from: usize| {
        bytes
            .get(from..)
            .and_then(|rest| memchr::memchr(0xff, rest))
            .map(|at| from + at)
    };
    // After the start-of-image marker.
    let mut at = 2;
    let mut scans = 0u32;
    loop {
        // A marker: 0xFF, any fill bytes, its code. Stray bytes before it are passed over,
        // as libjpeg-turbo does.
        at = next_ff(at).ok_or_else(truncated)?;
        while bytes.get(at) == Some(&0xff) {
            at += 1;
        }
        let code = *bytes.get(at).ok_or_else(truncated)?;
        at += 1;
        match code {
            0xd9 => return Ok(()),
            // Markers without a segment: a stuffed zero, TEM, RSTn, a second SOI.
            0x00 | 0x01 | 0xd0..=0xd8 => continue,
            _ => {}
        }
        let length = match bytes.get(at..at + 2) {
            Some(&[high, low]) => usize::from(u16::from_be_bytes([high, low])),
            _ => return Err(truncated()),
        };
        if length < 2 {
            return Err(DecodeError::Corrupt(format!(
                "a segment declares {length} bytes, less than its own length field"
            )));
        }
        at += length;
        if at > bytes.len() {
            return Err(truncated());
        }
        if code != 0xda {
            continue;
        }
        scans += 1;
        if scans > MAX_SCANS {
            return Err(DecodeError::TooManyScans(MAX_SCANS));
        }
        // The scan's entropy-coded data runs to the first 0xFF that is neither a stuffed
        // zero nor a restart marker.
        loop {
            at = next_ff(at).ok_or_else(truncated)?;
            match bytes.get(at + 1) {
                None => return Err(truncated()),
                Some(0x00 | 0xd0..=0xd7) => at += 2,
                Some(_) => break,
            }
        }
    }
}

/// The smallest scale libjpeg-turbo decodes at (n/8, n = 1..=8) that leaves `short`, the
/// shorter side, at least [`JPEG_MIN_SIDE`] pixels; the whole picture when it is smaller.
pub fn scale_for(short: usize) -> ScalingFactor {
    (1..8)
        .map(|n| ScalingFactor::new(n, 8))
        .find(|s| s.scale(short) >= JPEG_MIN_SIDE)
        .unwrap_or(ScalingFactor::ONE)
}

/// The EXIF orientation of a JPEG, read from its headers; a broken EXIF block only loses it.
fn orientation(bytes: &[u8]) -> Option<image::metadata::Orientation> {
    let mut headers = zune_jpeg::JpegDecoder::new(ZCursor::new(bytes));
    headers.decode_headers().ok()?;
    headers
        .exif()
        .and_then(|exif| image::metadata::Orientation::from_exif_chunk(exif))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_the_smallest_that_keeps_the_shorter_side() {
        let pick = |short| {
            let s = scale_for(short);
            (s.num(), s.denom())
        };
        // 1/8 of 2048 is 256 exactly; 1/8 of 2000 is 250, short, so 1/4.
        assert_eq!(pick(2048), (1, 8));
        assert_eq!(pick(2000), (1, 4));
        assert_eq!(pick(1200), (1, 4));
        // 1/4 of 800 is 200, short; 3/8 is 300.
        assert_eq!(pick(800), (3, 8));
        assert_eq!(pick(512), (1, 2));
        assert_eq!(pick(256), (1, 1));
        assert_eq!(pick(20), (1, 1));
    }
}
