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
    let started = std::time::Instant::now();
    let photos = variants::photos(&root.join("tests/data/images"));
    println!(
        "{} photos and {} variants each hashed in {:.2} s\n",
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
    for (what, against, chosen) in [
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
    ] {
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
