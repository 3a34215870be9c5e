//! Accuracy of image matching on the test photos: recall per transformation and false
//! matches between distinct photos, at the thresholds of `rules/images.toml` and around them.
//!
//! ```text
//! cargo bench --bench image_accuracy
//! ```

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
    Ok(())
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
