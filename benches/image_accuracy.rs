//! Accuracy of image matching on the test photos: recall per transformation and false
//! matches between distinct photos, at the thresholds of `rules/images.toml` and around them.
//!
//! ```text
//! cargo bench --bench image_accuracy
//! ```
//!
//! Last, the same infringement measure with the `image_hasher` crate's pHash (median of the
//! 8 × 8 DCT) and its gradient hash, and with PDQ (the `pdqhash` crate), each indexed with
//! mirror images and the same inset crops, for comparison with loomguard's own hash; after
//! each transformation, in brackets, the farthest copy's distance in bits.

#[path = "support/variants.rs"]
mod variants;

use std::path::Path;

use loomguard::rules::RuleSet;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rules = RuleSet::load(&root.join("rules"))?.images;
    let dir = root.join("tests/data/images");

    // The `image` crate's RGB decoding first, at the chosen thresholds only: what recall
    // the worker's luma-only JPEG decoding is compared with.
    let photos = variants::photos(&dir, variants::Listing::ImageCrate);
    for (what, against, threshold) in uses(&rules) {
        println!(
            "== {what}, threshold {threshold}, listing JPEGs decoded to RGB by the image crate"
        );
        let accuracy = variants::measure(
            &photos,
            against,
            threshold,
            rules.min_spread,
            rules.min_edges,
        );
        println!("{}", variants::report(&accuracy, threshold));
    }

    let started = std::time::Instant::now();
    let photos = variants::photos(&dir, variants::Listing::Worker);
    println!(
        "{} photos and {} variants each hashed in {:.2} s, listing JPEGs by the worker's path\n",
        photos.len(),
        variants::TRANSFORMS.len(),
        started.elapsed().as_secs_f64()
    );
    for photo in &photos {
        println!(
            "{:<20} spread {:>6.1} edges {:.3} detail {:?}",
            photo.name,
            photo.original.spread,
            photo.original.edges,
            photo.original.detail(rules.min_spread, rules.min_edges)
        );
    }
    println!();
    for (what, against, chosen) in uses(&rules) {
        for threshold in [chosen - 2, chosen, chosen + 2] {
            let mark = if threshold == chosen {
                " (rules/images.toml)"
            } else {
                ""
            };
            println!("== {what}, threshold {threshold}{mark}");
            let accuracy = variants::measure(
                &photos,
                against,
                threshold,
                rules.min_spread,
                rules.min_edges,
            );
            println!("{}", variants::report(&accuracy, threshold));
        }
    }
    compare_image_hasher(&dir);
    Ok(())
}

/// `image_hasher`'s pHash and gradient hash (64 bits), and PDQ (256 bits, the `pdqhash`
/// crate's reference-compatible full-size path), each measured by [`compare_hasher`].
fn compare_image_hasher(dir: &Path) {
    use image_hasher::{HashAlg, HasherConfig};

    for (name, config) in [
        (
            "image_hasher pHash (median, DCT)",
            HasherConfig::new().hash_alg(HashAlg::Median).preproc_dct(),
        ),
        (
            "image_hasher gradient",
            HasherConfig::new().hash_alg(HashAlg::Gradient),
        ),
    ] {
        let hasher = config.hash_size(8, 8).to_hasher();
        compare_hasher(
            dir,
            name,
            &[8, 10, 12],
            |image| hasher.hash_image(image),
            |a, b| a.dist(b),
        );
    }
    // PDQ's authors call 31 bits of 256 the usual match threshold.
    compare_hasher(
        dir,
        "PDQ",
        &[24, 31, 40, 48],
        |image| {
            let rgb = image.to_rgb8();
            let (width, height) = rgb.dimensions();
            // pdqhash reads images of its own `image` version (0.23).
            let old = pdqhash::image::RgbImage::from_raw(width, height, rgb.into_raw())
                .expect("as many bytes as pixels × 3");
            pdqhash::generate_pdq_full_size(&pdqhash::image::DynamicImage::ImageRgb8(old)).0
        },
        |a, b| a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum(),
    );
}

/// Recall per transformation and false matches of another hash used as loomguard's
/// infringement index uses its own (the original, its mirror image, its inset crops and
/// theirs), on the same listing JPEGs (decoded by the `image` crate).
fn compare_hasher<H>(
    dir: &Path,
    name: &str,
    thresholds: &[u32],
    hash: impl Fn(&image::DynamicImage) -> H,
    distance: impl Fn(&H, &H) -> u32,
) {
    use image::DynamicImage;
    use loomguard::images::decode::decode_image;
    use loomguard::images::{DecodeLimits, ORIGINAL_INSETS};

    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("the test photo directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    paths.sort();
    let inset = |image: &DynamicImage, share: f64| {
        let (w, h) = (image.width(), image.height());
        let (dx, dy) = ((f64::from(w) * share) as u32, (f64::from(h) * share) as u32);
        image.crop_imm(dx, dy, w - 2 * dx, h - 2 * dy)
    };
    let listing = |image: &DynamicImage| {
        let bytes = variants::listing_jpeg(image);
        hash(&image::load_from_memory(&bytes).expect("a listing JPEG decodes"))
    };
    let photos: Vec<_> = paths
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).expect("a test photo");
            let image = decode_image(&bytes, &DecodeLimits::default()).expect("decodes");
            let mut bank = vec![hash(&image), hash(&image.fliph())];
            for share in ORIGINAL_INSETS {
                let cropped = inset(&image, share);
                bank.push(hash(&cropped));
                bank.push(hash(&cropped.fliph()));
            }
            let copies: Vec<_> = std::iter::once(listing(&image))
                .chain(
                    variants::TRANSFORMS
                        .iter()
                        .map(|t| listing(&variants::transform(&image, t))),
                )
                .collect();
            (bank, copies)
        })
        .collect();
    let near = |bank: &[H], copy: &H| bank.iter().map(|h| distance(h, copy)).min();
    for &threshold in thresholds {
        let found: Vec<String> = variants::TRANSFORMS
            .iter()
            .enumerate()
            .map(|(t, name)| {
                let (n, farthest) = photos
                    .iter()
                    .filter_map(|(bank, copies)| near(bank, &copies[t + 1]))
                    .fold((0, 0), |(n, far), d| {
                        (n + usize::from(d <= threshold), far.max(d))
                    });
                format!("{name} {n}/{} ({farthest})", photos.len())
            })
            .collect();
        let (mut false_matches, mut pairs, mut closest) = (0, 0, u32::MAX);
        for (a, (bank, _)) in photos.iter().enumerate() {
            for (b, (_, copies)) in photos.iter().enumerate() {
                if a == b {
                    continue;
                }
                for copy in copies {
                    let Some(d) = near(bank, copy) else { continue };
                    pairs += 1;
                    closest = closest.min(d);
                    false_matches += usize::from(d <= threshold);
                }
            }
        }
        println!(
            "== {name}, infringement use, threshold {threshold}: {}; \
             false matches {false_matches} of {pairs}, closest distinct {closest} bits",
            found.join(", ")
        );
    }
}

fn uses(rules: &loomguard::rules::ImageRules) -> [(&'static str, variants::Use, u32); 2] {
    [
        (
            "infringement",
            variants::Use::Infringement,
            rules.infringement_distance,
        ),
        (
            "duplicate.image",
            variants::Use::Duplicate,
            rules.duplicate_distance,
        ),
    ]
}
