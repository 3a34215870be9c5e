//! Hostile and awkward image files: each is refused with a reason, before any pixel is
//! decoded where its header already says enough (or, where the file is a real image, is read
//! the right way), and nothing panics. How long a refusal takes is measured by hand and in
//! the benches, not here.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageFormat, Luma, Rgba, RgbaImage};
use loomguard::images::decode::{decode_image, decode_thumbnail, SIDE};
use loomguard::images::{hash_bytes, DecodeError, DecodeLimits};

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

fn photo() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/camera.png"
    ))
    .unwrap()
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// Fails with the given reason code, both as a listing image and as a protected original.
fn fails_fast(bytes: &[u8], code: &str) -> DecodeError {
    let err = hash_bytes(bytes, &limits()).unwrap_err();
    assert_eq!(err.code(), code, "{err}");
    let as_original = loomguard::images::hash_original_bytes(bytes, &limits()).unwrap_err();
    assert_eq!(as_original, err);
    err
}

#[test]
fn a_zero_byte_file_is_empty() {
    fails_fast(b"", "empty");
}

#[test]
fn a_text_file_named_jpg_is_no_image() {
    fails_fast(
        b"<html><body>not found</body></html>\n",
        "unsupported_format",
    );
}

#[test]
fn a_truncated_png_is_broken() {
    let bytes = photo();
    fails_fast(&bytes[..bytes.len() / 3], "corrupt");
}

/// `image` as a q75 JPEG written by the `image` crate.
fn jpeg_of(name: &str) -> Vec<u8> {
    let photo = image::open(format!(
        "{}/tests/data/images/{name}.png",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    encode(&DynamicImage::ImageRgb8(photo.to_rgb8()), ImageFormat::Jpeg)
}

#[test]
fn a_truncated_jpeg_is_refused_not_hashed_grey() {
    // Both decoders would fill what is missing with flat grey, and such pictures hash
    // alike whatever the photo was, so every cut is refused: inside the entropy-coded data,
    // just before the end-of-image marker, and inside the headers.
    let jpeg = jpeg_of("camera");
    for cut in [
        jpeg.len() / 3,
        jpeg.len() / 2,
        jpeg.len() * 99 / 100,
        jpeg.len() - 2,
    ] {
        let err = fails_fast(&jpeg[..cut], "truncated");
        assert_eq!(err.to_string(), "the file ends before the image does");
    }
    fails_fast(&jpeg[..200], "truncated");
    // A CMYK JPEG, which the fast path leaves to the `image` crate, the same.
    let cmyk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cmyk.jpg")).unwrap();
    fails_fast(&cmyk[..cmyk.len() - 40], "truncated");
}

#[test]
fn bytes_after_the_end_of_a_jpeg_change_nothing() {
    // Padding, or the video a phone appends to a motion photo, after the end-of-image
    // marker; and an EXIF thumbnail, whose own end marker sits inside its segment.
    let jpeg = jpeg_of("coins");
    let whole = hash_bytes(&jpeg, &limits()).unwrap();
    let mut padded = jpeg.clone();
    padded.extend_from_slice(&[0u8; 512]);
    padded.extend_from_slice(b"\x00\x00\x00\x18ftypmp42");
    assert_eq!(hash_bytes(&padded, &limits()).unwrap(), whole);

    let mut exif = b"Exif\0\0II\x2a\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
    exif.extend_from_slice(&jpeg_of("camera")[..300]);
    exif.extend_from_slice(&[0xff, 0xd9]);
    let with_thumbnail = jpeg_with_app1_of(&jpeg, &exif);
    assert_eq!(hash_bytes(&with_thumbnail, &limits()).unwrap(), whole);
    // The same file cut inside its picture is still truncated, thumbnail or not.
    fails_fast(&with_thumbnail[..with_thumbnail.len() / 2], "truncated");
}

#[test]
fn a_jpeg_with_too_many_scans_is_refused() {
    // A progressive JPEG with its last scan repeated until it has 101: libjpeg-turbo stops
    // at its scan limit, and the `image` crate's decoder, which has none, is never asked.
    let camera = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/camera.png"
    ))
    .unwrap()
    .to_luma8();
    let mut compressor = turbojpeg::Compressor::new().unwrap();
    compressor.set_progressive(true).unwrap();
    compressor.set_subsamp(turbojpeg::Subsamp::Gray).unwrap();
    let progressive = compressor
        .compress_to_vec(turbojpeg::Image {
            pixels: camera.as_raw().as_slice(),
            width: camera.width() as usize,
            pitch: camera.width() as usize,
            height: camera.height() as usize,
            format: turbojpeg::PixelFormat::GRAY,
        })
        .unwrap();
    let starts: Vec<usize> = progressive
        .windows(2)
        .enumerate()
        .filter(|(_, w)| *w == [0xff, 0xda])
        .map(|(at, _)| at)
        .collect();
    let last = *starts.last().unwrap();
    let end = progressive.len() - 2;
    let mut many = progressive[..end].to_vec();
    for _ in starts.len()..=100 {
        many.extend_from_slice(&progressive[last..end]);
    }
    many.extend_from_slice(&[0xff, 0xd9]);
    assert!(hash_bytes(&progressive, &limits()).is_ok());
    let err = fails_fast(&many, "too_many_scans");
    assert_eq!(err.to_string(), "the JPEG has more than 100 scans");
}

/// CRC-32 (IEEE) of a PNG chunk's type and data.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real PNG whose header is rewritten to declare `width` × `height`.
fn png_declaring(width: u32, height: u32) -> Vec<u8> {
    let mut png = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(8, 8)),
        ImageFormat::Png,
    );
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    png[16..20].copy_from_slice(&width.to_be_bytes());
    png[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header() {
    let bomb = png_declaring(100_000, 100_000);
    assert!(bomb.len() < 200);
    // Its pixel data is that of an 8 × 8 picture: a decoder that went on would find it
    // broken, so `too_large` can only come from the header.
    let err = fails_fast(&bomb, "too_large");
    assert_eq!(
        err.to_string(),
        "the image declares 100000×100000 pixels, over the limits (12000 pixels a side)"
    );
    // Under the side limit but over the pixel limit.
    let wide = png_declaring(10_000, 10_000);
    let err = fails_fast(&wide, "too_large");
    assert!(err.to_string().contains("40000000 pixels"), "{err}");
}

#[test]
fn a_one_pixel_image_is_too_small_to_hash() {
    let one = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(1, 1)),
        ImageFormat::Png,
    );
    let err = fails_fast(&one, "too_small");
    assert_eq!(
        err.to_string(),
        "the image is 1×1 pixels, under the minimum side of 16"
    );
}

#[test]
fn a_hundred_thousand_by_one_image_is_refused() {
    let line = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(100_000, 1)),
        ImageFormat::Png,
    );
    let err = fails_fast(&line, "too_large");
    assert_eq!(
        err.to_string(),
        "the image declares 100000×1 pixels, over the limits (12000 pixels a side)"
    );
}

#[test]
fn an_animated_gif_is_read_by_its_first_frame() {
    use image::codecs::gif::GifEncoder;
    use image::{Delay, Frame};
    let frame = |level: u8| {
        let mut rgba = RgbaImage::new(64, 64);
        for (x, _, p) in rgba.enumerate_pixels_mut() {
            // The first frame dark on the left, the second on the right.
            let dark = if level == 0 { x < 32 } else { x >= 32 };
            *p = if dark {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([255, 255, 255, 255])
            };
        }
        Frame::from_parts(rgba, 0, 0, Delay::from_numer_denom_ms(100, 1))
    };
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut gif);
        encoder.encode_frames([frame(0), frame(1)]).unwrap();
    }
    let thumbnail = decode_thumbnail(&gif, &limits()).unwrap();
    assert_eq!(thumbnail.pixels[0], 0.0);
    assert_eq!(thumbnail.pixels[SIDE - 1], 255.0);
}

#[test]
fn transparent_pixels_are_composited_on_white() {
    let mut rgba = RgbaImage::from_pixel(64, 64, Rgba([0, 0, 0, 0]));
    for y in 0..64 {
        for x in 0..32 {
            rgba.put_pixel(x, y, Rgba([0, 0, 0, 255]));
        }
    }
    let png = encode(&DynamicImage::ImageRgba8(rgba), ImageFormat::Png);
    let thumbnail = decode_thumbnail(&png, &limits()).unwrap();
    assert_eq!(thumbnail.pixels[0], 0.0);
    assert_eq!(thumbnail.pixels[SIDE - 1], 255.0);
}

/// A JPEG of a 64 × 32 picture, dark on its left half, with an APP1 segment after SOI.
fn jpeg_with_app1(app1: &[u8]) -> Vec<u8> {
    let mut grey = GrayImage::from_pixel(64, 32, Luma([255]));
    for y in 0..32 {
        for x in 0..32 {
            grey.put_pixel(x, y, Luma([0]));
        }
    }
    let jpeg = encode(&DynamicImage::ImageLuma8(grey), ImageFormat::Jpeg);
    jpeg_with_app1_of(&jpeg, app1)
}

/// `jpeg` with an APP1 segment holding `app1` inserted after its SOI.
fn jpeg_with_app1_of(jpeg: &[u8], app1: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An Exif block holding only an orientation.
fn exif_orientation(orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0".to_vec();
    // Little-endian TIFF header, first IFD at offset 8.
    exif.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00");
    exif.extend_from_slice(&1u16.to_le_bytes());
    // Tag 0x0112 (Orientation), type SHORT, count 1, the value.
    exif.extend_from_slice(&0x0112u16.to_le_bytes());
    exif.extend_from_slice(&3u16.to_le_bytes());
    exif.extend_from_slice(&1u32.to_le_bytes());
    exif.extend_from_slice(&orientation.to_le_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_le_bytes());
    exif
}

#[test]
fn exif_orientation_is_applied() {
    // Orientation 6: the stored picture is to be turned 90° clockwise, so its dark left half
    // becomes the top.
    let jpeg = jpeg_with_app1(&exif_orientation(6));
    let image = decode_image(&jpeg, &limits()).unwrap();
    assert_eq!((image.width(), image.height()), (32, 64));
    let thumbnail = decode_thumbnail(&jpeg, &limits()).unwrap();
    assert!(
        thumbnail.pixels[SIDE / 2] < 30.0,
        "{}",
        thumbnail.pixels[SIDE / 2]
    );
    assert!(thumbnail.pixels[(SIDE - 1) * SIDE + SIDE / 2] > 225.0);
}

#[test]
fn broken_exif_only_loses_the_orientation() {
    let mut exif = b"Exif\0\0II\x2a\x00\xff\xff\xff\x7f".to_vec();
    exif.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let jpeg = jpeg_with_app1(&exif);
    let image = decode_image(&jpeg, &limits()).unwrap();
    assert_eq!((image.width(), image.height()), (64, 32));
    // Hashed as the same picture without the EXIF block.
    let plain = jpeg_with_app1(b"not exif");
    assert_eq!(
        hash_bytes(&jpeg, &limits()).unwrap(),
        hash_bytes(&plain, &limits()).unwrap()
    );
}

#[test]
fn an_animated_webp_is_read_by_its_first_frame() {
    // Written by Pillow 13 (libwebp): two 128 × 128 lossy frames, camera then coins.
    let webp = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/animated.webp"
    ))
    .unwrap();
    assert_eq!(&webp[12..16], b"VP8X");
    assert!(webp.windows(4).filter(|w| *w == b"ANMF").count() == 2);
    let frame = |name: &str| {
        let photo = image::open(format!(
            "{}/tests/data/images/{name}.png",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
        .resize_exact(128, 128, image::imageops::FilterType::Lanczos3);
        hash_bytes(
            &encode(&DynamicImage::ImageRgb8(photo.to_rgb8()), ImageFormat::Png),
            &limits(),
        )
        .unwrap()
    };
    let hash = hash_bytes(&webp, &limits()).unwrap();
    assert_eq!(
        (
            hash.hash.distance(frame("camera").hash),
            hash.hash.distance(frame("coins").hash)
        ),
        (0, 30)
    );
}

#[test]
fn a_real_photo_hashes_the_same_every_time() {
    let a = hash_bytes(&photo(), &limits()).unwrap();
    let b = hash_bytes(&photo(), &limits()).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.hash.0.count_ones(), 32);
}

/// Whether `p` is within 8 levels of `want` in every channel.
fn near(p: &image::Rgb<u8>, want: [u8; 3]) -> bool {
    p.0.iter().zip(want).all(|(a, b)| a.abs_diff(b) <= 8)
}

#[test]
fn a_cmyk_jpeg_comes_out_in_its_colours() {
    // Written by Pillow: Adobe CMYK, red (0, 255, 255, 0) left, blue (255, 255, 0, 0) right.
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cmyk.jpg")).unwrap();
    let image = decode_image(&bytes, &limits()).unwrap().to_rgb8();
    let (left, right) = (image.get_pixel(5, 5), image.get_pixel(60, 5));
    assert!(near(left, [255, 0, 0]), "{left:?}");
    assert!(near(right, [0, 0, 255]), "{right:?}");
}

/// Each test photo as a q75 JPEG (the `image` crate's encoder, YCbCr 4:2:0), with its name.
fn photo_jpegs() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/images");
    let mut jpegs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("png") {
            continue;
        }
        let image = image::open(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        jpegs.push((
            name,
            encode(&DynamicImage::ImageRgb8(image.to_rgb8()), ImageFormat::Jpeg),
        ));
    }
    jpegs.sort();
    jpegs
}

#[test]
fn reduced_scale_grey_decoding_hashes_like_full_colour_decoding() {
    // The worker decodes a YCbCr JPEG with libjpeg-turbo to grey at reduced scale; the `image`
    // crate's full-scale RGB decoding, turned grey afterwards, must give nearly the same hash.
    let mut farthest = (0, String::new());
    for (name, jpeg) in photo_jpegs() {
        let grey = loomguard::images::jpeg::decode_jpeg_grey(&jpeg, &limits())
            .unwrap()
            .expect("a YCbCr JPEG takes the fast path");
        // Reduced to the least scale that keeps 256 pixels on the shorter side (the 512-px
        // photos to 1/2, the 400 × 300 one to 7/8; page, 191 high, stays whole).
        let rgb = decode_image(&jpeg, &limits()).unwrap();
        let (short, full_short) = (
            grey.width().min(grey.height()),
            rgb.width().min(rgb.height()),
        );
        if full_short <= 256 {
            assert_eq!(short, full_short, "{name}");
        } else {
            // At least 256, and one eighth less would fall under it.
            assert!(short >= 256, "{name}: {short} of {full_short}");
            assert!(
                short < 256 + full_short.div_ceil(8),
                "{name}: {short} of {full_short}"
            );
        }
        let fast = hash_bytes(&jpeg, &limits()).unwrap();
        let full =
            loomguard::images::hash_thumbnail(&loomguard::images::decode::thumbnail_of(&rgb));
        let distance = fast.hash.distance(full.hash);
        if distance > farthest.0 {
            farthest = (distance, name);
        }
    }
    // The farthest is brick, a low-contrast texture, 4 bits off: well inside both thresholds.
    assert_eq!(farthest, (4, "brick".to_owned()));
}

#[test]
fn a_webp_hashes_like_the_same_picture_in_png() {
    let image = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/coins.png"
    ))
    .unwrap();
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .encode(
            image.to_luma8().as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::L8,
        )
        .unwrap();
    let png = encode(
        &DynamicImage::ImageLuma8(image.to_luma8()),
        ImageFormat::Png,
    );
    assert_eq!(
        hash_bytes(&webp, &limits()).unwrap(),
        hash_bytes(&png, &limits()).unwrap()
    );
}

#[test]
fn a_cmyk_jpeg_is_left_to_the_colour_converting_decoder() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cmyk.jpg")).unwrap();
    assert_eq!(
        loomguard::images::jpeg::decode_jpeg_grey(&bytes, &limits()),
        Ok(None)
    );
    // Red on the left, blue on the right: as grey levels, red is the lighter.
    let thumbnail = decode_thumbnail(&bytes, &limits()).unwrap();
    let (left, right) = (
        thumbnail.pixels[SIDE * 16 + 2],
        thumbnail.pixels[SIDE * 16 + 29],
    );
    assert!(left > right + 20.0, "{left} {right}");
}

#[test]
fn a_ycck_jpeg_comes_out_in_its_colours() {
    // An Adobe YCCK JPEG (transform 2), 64×32: red on the left, blue on the right, no black
    // ink. Written by libjpeg-turbo 3.1 (TurboJPEG's compressor, given Adobe-style inverted
    // CMYK pixels, writes YCCK by default, as Photoshop's CMYK JPEGs are); Pillow reads it as
    // the same red and blue.
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ycck.jpg")).unwrap();
    let adobe = bytes.windows(5).position(|w| w == b"Adobe").unwrap();
    assert_eq!(
        bytes[adobe + 11],
        2,
        "the Adobe segment's transform is YCCK"
    );
    let image = decode_image(&bytes, &limits()).unwrap().to_rgb8();
    let (left, right) = (image.get_pixel(5, 5), image.get_pixel(60, 5));
    assert!(near(left, [255, 0, 0]), "{left:?}");
    assert!(near(right, [0, 0, 255]), "{right:?}");

    // Not taken by the grey fast path: its first channel is not the picture's grey.
    assert_eq!(
        loomguard::images::jpeg::decode_jpeg_grey(&bytes, &limits()),
        Ok(None)
    );
    let thumbnail = decode_thumbnail(&bytes, &limits()).unwrap();
    let (left, right) = (
        thumbnail.pixels[SIDE * 16 + 2],
        thumbnail.pixels[SIDE * 16 + 29],
    );
    // Red is the lighter as grey levels: BT.601 gives 76 for red, 29 for blue.
    assert!((left - 76.0).abs() <= 6.0, "{left}");
    assert!((right - 29.0).abs() <= 6.0, "{right}");
}

#[test]
fn a_jpeg_declaring_a_huge_canvas_is_refused_from_its_header() {
    let mut jpeg = encode(
        &DynamicImage::ImageRgb8(
            image::open(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/images/camera.png"
            ))
            .unwrap()
            .to_rgb8(),
        ),
        ImageFormat::Jpeg,
    );
    // The baseline frame header: FF C0, length (2), precision (1), height (2), width (2).
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]);
    let err = fails_fast(&jpeg, "too_large");
    assert_eq!(
        err.to_string(),
        "the image declares 60000×60000 pixels, over the limits (12000 pixels a side)"
    );
}

#[test]
fn a_progressive_jpeg_hashes_like_the_baseline_one() {
    let camera = image::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/camera.png"
    ))
    .unwrap()
    .to_rgb8();
    let jpeg = |progressive: bool| {
        let mut compressor = turbojpeg::Compressor::new().unwrap();
        compressor.set_quality(85).unwrap();
        compressor.set_progressive(progressive).unwrap();
        compressor
            .compress_to_vec(turbojpeg::Image {
                pixels: camera.as_raw().as_slice(),
                width: camera.width() as usize,
                pitch: camera.width() as usize * 3,
                height: camera.height() as usize,
                format: turbojpeg::PixelFormat::RGB,
            })
            .unwrap()
    };
    let (baseline, progressive) = (jpeg(false), jpeg(true));
    assert!(turbojpeg::read_header(&progressive).unwrap().is_progressive);
    // Both take the fast path; the same coefficients give the same grey levels.
    assert!(
        loomguard::images::jpeg::decode_jpeg_grey(&progressive, &limits())
            .unwrap()
            .is_some()
    );
    assert_eq!(
        hash_bytes(&progressive, &limits()).unwrap(),
        hash_bytes(&baseline, &limits()).unwrap()
    );
}
