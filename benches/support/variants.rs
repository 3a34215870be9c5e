//! The transformations the accuracy bench and test apply to the test photos, and the
//! measurement they share: recall per transformation and false matches between distinct
//! photos, at given thresholds. Included by `benches/image_accuracy.rs` and
//! `tests/image_accuracy.rs` with `#[path]`, so both measure the same thing.

use std::io::Cursor;
use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, Rgba, RgbaImage};
use loomguard::images::decode::{decode_image, thumbnails_of};
use loomguard::images::hash::hash_only;
use loomguard::images::state::IndexedImage;
use loomguard::images::{
    hash_bytes, hash_thumbnail, original_hashes, DecodeLimits, ImageHash, Perceptual,
    ORIGINAL_INSETS,
};

/// The transformations, in report order.
pub const TRANSFORMS: [&str; 11] = [
    "resize_50",
    "resize_25",
    "jpeg_q50",
    "crop_5",
    "crop_10",
    "mirror",
    "watermark",
    "border_20px",
    "brightness_20",
    "all_edges_crop_10",
    "crop_10_corner",
];

/// Applies one transformation.
pub fn transform(image: &DynamicImage, name: &str) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    match name {
        "resize_50" => image.resize_exact(w / 2, h / 2, FilterType::Triangle),
        "resize_25" => image.resize_exact(w / 4, h / 4, FilterType::Triangle),
        "jpeg_q50" => {
            let mut bytes = Vec::new();
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 50);
            image
                .to_rgb8()
                .write_with_encoder(encoder)
                .expect("JPEG encoding of a test photo");
            image::load_from_memory(&bytes).expect("decoding the re-encoded photo")
        }
        // `crop_P`: P % of the width and of the height cut off, half from each side.
        "crop_5" => crop(image, 0.025),
        "crop_10" => crop(image, 0.05),
        // The stricter reading of "10 % off the edges": 10 % cut off each of the four edges,
        // a fifth of the width and of the height in all.
        "all_edges_crop_10" => crop(image, 0.10),
        // An off-centre crop: 10 % of the width and height cut off the left and top only.
        "crop_10_corner" => {
            let (dx, dy) = (w / 10, h / 10);
            image.crop_imm(dx, dy, w - dx, h - dy)
        }
        "mirror" => image.fliph(),
        "watermark" => watermark(image),
        "border_20px" => border(image, 20),
        "brightness_20" => brighten(image, 1.2),
        other => panic!("unknown transformation {other}"),
    }
}

fn crop(image: &DynamicImage, each_side: f64) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let dx = (f64::from(w) * each_side).round() as u32;
    let dy = (f64::from(h) * each_side).round() as u32;
    image.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
}

fn border(image: &DynamicImage, px: u32) -> DynamicImage {
    let (w, h) = (image.width(), image.height());
    let mut out = RgbaImage::from_pixel(w + 2 * px, h + 2 * px, Rgba([255, 255, 255, 255]));
    image::imageops::overlay(&mut out, &image.to_rgba8(), i64::from(px), i64::from(px));
    DynamicImage::ImageRgba8(out)
}

fn brighten(image: &DynamicImage, factor: f32) -> DynamicImage {
    let mut rgba = image.to_rgba8();
    for p in rgba.pixels_mut() {
        for c in &mut p.0[..3] {
            *c = (f32::from(*c) * factor).round().min(255.0) as u8;
        }
    }
    DynamicImage::ImageRgba8(rgba)
}

/// 5 × 7 bitmaps of the letters of the watermark, one row a byte (bit 4 leftmost).
const GLYPHS: [(char, [u8; 7]); 8] = [
    ('S', [0x0f, 0x10, 0x10, 0x0e, 0x01, 0x01, 0x1e]),
    ('A', [0x0e, 0x11, 0x11, 0x1f, 0x11, 0x11, 0x11]),
    ('M', [0x11, 0x1b, 0x15, 0x15, 0x11, 0x11, 0x11]),
    ('P', [0x1e, 0x11, 0x11, 0x1e, 0x10, 0x10, 0x10]),
    ('L', [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1f]),
    ('E', [0x1f, 0x10, 0x10, 0x1e, 0x10, 0x10, 0x1f]),
    ('C', [0x0e, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0e]),
    ('O', [0x0e, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0e]),
];

/// "SAMPLE.COM"-style text, half-transparent white, across the lower middle of the picture,
/// its letters a twentieth of the picture's width.
fn watermark(image: &DynamicImage) -> DynamicImage {
    let mut rgba = image.to_rgba8();
    let (w, h) = rgba.dimensions();
    let text = "SAMPLE COM";
    let scale = (w / (text.len() as u32 * 6)).max(1) * 2 / 3;
    let x0 = (w - text.len() as u32 * 6 * scale) / 2;
    let y0 = h * 2 / 3;
    for (i, ch) in text.chars().enumerate() {
        let Some((_, rows)) = GLYPHS.iter().find(|(c, _)| *c == ch) else {
            continue;
        };
        for (ry, row) in rows.iter().enumerate() {
            for rx in 0..5u32 {
                if row & (0x10 >> rx) == 0 {
                    continue;
                }
                for sy in 0..scale {
                    for sx in 0..scale {
                        let x = x0 + (i as u32 * 6 + rx) * scale + sx;
                        let y = y0 + ry as u32 * scale + sy;
                        if x < w && y < h {
                            let p = rgba.get_pixel_mut(x, y);
                            for c in &mut p.0[..3] {
                                *c = ((u16::from(*c) + 255) / 2) as u8;
                            }
                        }
                    }
                }
            }
        }
    }
    DynamicImage::ImageRgba8(rgba)
}

/// One photo's hashes: the original's and each transformation's.
pub struct Photo {
    pub name: String,
    pub original: Perceptual,
    /// Every hash the original is indexed under as a protected original.
    pub bank: Vec<ImageHash>,
    pub variants: Vec<(&'static str, Perceptual)>,
}

/// How a listing-side picture (a photo or a variant, as a seller would upload it) is hashed.
/// Either way it is first saved as a JPEG of quality 90, as listing photos are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// From the JPEG's bytes by `hash_bytes`, the worker's path.
    Worker,
    /// From the JPEG decoded by the `image` crate to RGB (the worker's path before JPEGs were
    /// decoded to their luma plane alone): kept to compare decoders on the same pictures.
    #[allow(dead_code)] // only the bench compares
    ImageCrate,
}

/// The JPEG bytes a listing would carry for `image`.
pub fn listing_jpeg(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90);
    image
        .to_rgb8()
        .write_with_encoder(encoder)
        .expect("JPEG encoding of a test photo");
    bytes
}

fn hash_listing(image: &DynamicImage, how: Listing) -> Perceptual {
    let bytes = listing_jpeg(image);
    let limits = DecodeLimits::default();
    match how {
        Listing::Worker => hash_bytes(&bytes, &limits).expect("a listing JPEG hashes"),
        Listing::ImageCrate => {
            let decoded = decode_image(&bytes, &limits).expect("a listing JPEG decodes");
            let mut insets = vec![0.0];
            insets.extend(ORIGINAL_INSETS);
            let thumbnails = thumbnails_of(&decoded, &insets);
            let mut picture = hash_thumbnail(&thumbnails[0]);
            picture.crops = Some(std::array::from_fn(|i| hash_only(&thumbnails[i + 1])));
            picture
        }
    }
}

/// A listing-side picture as the duplicate check holds it.
fn indexed(picture: &Perceptual) -> IndexedImage {
    IndexedImage {
        hash: picture.hash,
        mirrored: Some(picture.mirrored),
        crops: picture.crops.map(Vec::from).unwrap_or_default(),
        matchable: true,
        ..IndexedImage::default()
    }
}

/// Loads and hashes every photo under `dir` and its variants, listing-side pictures `how`.
pub fn photos(dir: &Path, how: Listing) -> Vec<Photo> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the test photo directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).expect("a test photo");
            // The complaint API decodes an original with `decode_image`, whatever its format.
            let image =
                decode_image(&bytes, &DecodeLimits::default()).expect("a test photo decodes");
            Photo {
                name: path
                    .file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                original: hash_listing(&image, how),
                bank: {
                    let hashes = original_hashes(&image);
                    let mut bank = vec![hashes.picture.hash, hashes.picture.mirrored];
                    bank.extend(hashes.crops);
                    bank
                },
                variants: TRANSFORMS
                    .iter()
                    .map(|&t| (t, hash_listing(&transform(&image, t), how)))
                    .collect(),
            }
        })
        .collect()
}

/// What the thresholds do on the photos.
#[derive(Debug, PartialEq)]
pub struct Accuracy {
    /// Photos with enough detail to be matched (the others never match).
    pub matchable: Vec<String>,
    /// Per transformation: variants found within the threshold (the original or its mirror
    /// image), of the matchable photos.
    pub recall: Vec<(&'static str, usize, usize)>,
    /// Pairs (listing-side hash of one photo, another photo as indexed) within the threshold:
    /// for infringement each listing-side hash against another photo's whole bank, for
    /// duplicates each against each of the other photo's listing-side hashes (counted twice,
    /// once each way).
    pub false_matches: usize,
    pub pairs: usize,
    /// The nearest two hashes of distinct photos ever come.
    pub closest_distinct: u32,
    /// Per transformation, the farthest a found-or-missed variant is from its original.
    pub farthest: Vec<(&'static str, u32)>,
}

/// The two uses of a threshold: a listing image against protected originals (indexed with
/// their mirror images and inset crops), or against another listing's image (each picture
/// and its mirror image against the other and its inset crops, both ways:
/// [`IndexedImage::duplicate_distance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Infringement,
    Duplicate,
}

pub fn measure(
    photos: &[Photo],
    against: Use,
    threshold: u32,
    min_spread: f32,
    min_edges: f32,
) -> Accuracy {
    let enough =
        |p: &Perceptual| p.detail(min_spread, min_edges) == loomguard::images::Detail::Enough;
    let matchable: Vec<&Photo> = photos.iter().filter(|p| enough(&p.original)).collect();
    // How near a listing-side hash comes to a photo, as the index sees it.
    let near = |photo: &Photo, copy: &Perceptual| match against {
        Use::Infringement => photo
            .bank
            .iter()
            .map(|h| h.distance(copy.hash))
            .min()
            .unwrap_or(64),
        Use::Duplicate => indexed(&photo.original).duplicate_distance(&indexed(copy)),
    };
    let variant = |p: &Photo, t: &str| {
        p.variants
            .iter()
            .find(|(name, _)| *name == t)
            .map(|(_, v)| *v)
            .expect("every photo has every variant")
    };
    let recall = TRANSFORMS
        .iter()
        .map(|&t| {
            let found = matchable
                .iter()
                .filter(|p| {
                    let v = variant(p, t);
                    enough(&v) && near(p, &v) <= threshold
                })
                .count();
            (t, found, matchable.len())
        })
        .collect();
    let farthest = TRANSFORMS
        .iter()
        .map(|&t| {
            let d = matchable
                .iter()
                .map(|p| near(p, &variant(p, t)))
                .max()
                .unwrap_or(0);
            (t, d)
        })
        .collect();

    let mut false_matches = 0;
    let mut pairs = 0;
    let mut closest = u32::MAX;
    let listing_side = |p: &Photo| {
        std::iter::once(p.original)
            .chain(p.variants.iter().map(|(_, v)| *v))
            .filter(|v| enough(v))
            .collect::<Vec<_>>()
    };
    for a in &matchable {
        for b in &matchable {
            if a.name == b.name {
                continue;
            }
            // Every copy of `b` against `a`: as an original (infringement) or as a listing
            // image and each of its variants (duplicate).
            let targets: Vec<Perceptual> = match against {
                Use::Infringement => vec![a.original],
                Use::Duplicate => listing_side(a),
            };
            for target in &targets {
                for copy in listing_side(b) {
                    pairs += 1;
                    let d = match against {
                        Use::Infringement => near(a, &copy),
                        Use::Duplicate => indexed(target).duplicate_distance(&indexed(&copy)),
                    };
                    closest = closest.min(d);
                    if d <= threshold {
                        false_matches += 1;
                    }
                }
            }
        }
    }
    Accuracy {
        matchable: matchable.iter().map(|p| p.name.clone()).collect(),
        recall,
        false_matches,
        pairs,
        closest_distinct: closest,
        farthest,
    }
}

#[allow(dead_code)] // only the bench prints
pub fn report(accuracy: &Accuracy, threshold: u32) -> String {
    let mut out = format!(
        "threshold {threshold} bits; {} matchable photos: {}\n",
        accuracy.matchable.len(),
        accuracy.matchable.join(", ")
    );
    out.push_str(
        "| transformation | found | recall | farthest distance |\n| --- | --- | --- | --- |\n",
    );
    for ((t, found, total), (_, far)) in accuracy.recall.iter().zip(&accuracy.farthest) {
        out.push_str(&format!(
            "| {t} | {found}/{total} | {:.1} % | {far} |\n",
            100.0 * *found as f64 / (*total).max(1) as f64
        ));
    }
    out.push_str(&format!(
        "false matches: {} of {} pairs of distinct photos' hashes; closest distinct pair: {} bits\n",
        accuracy.false_matches, accuracy.pairs, accuracy.closest_distinct
    ));
    out
}

#[allow(dead_code)]
pub fn decode_bytes(bytes: &[u8]) -> DynamicImage {
    image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .expect("in memory")
        .decode()
        .expect("a test image")
}
