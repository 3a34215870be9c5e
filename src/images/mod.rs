//! Listing images: from a URL to a perceptual hash, and the index the hashes are matched in.
//!
//! This is the machinery behind the image checks of [`crate::checks::images`] (handbook
//! 3.1.2 (6) repeated images, 3.2 image infringement) and behind the complaint API
//! (`crate::api`). In the data flow it sits between decode and decide:
//!
//! ```text
//! event.images ──► fetch ──► decode ──► hash ──┐  (in parallel, per batch)
//!                                              ▼
//!                     index log ◄── ordered image check ──► findings
//!                   (replayed at start)   (match, then remember, in input order)
//! ```
//!
//! - [`fetch`]: bytes by URL (`https://`, `http://`, `file://` under a root), SSRF-safe,
//!   with timeouts, a byte limit, bounded concurrency and a cache.
//! - [`decode`]: bytes to a small greyscale picture, inside decoder limits.
//! - [`jpeg`]: its fast path, a YCbCr or greyscale JPEG decoded by libjpeg-turbo to grey at
//!   reduced scale.
//! - [`hasher`]: fetch, decode and hash a batch's URLs, in parallel, with a cache.
//! - [`hash`]: the 64-bit DCT perceptual hash, and the detection of low-detail images that
//!   must never match.
//! - [`index`]: a multi-index-hashing Hamming index over 64-bit hashes.
//! - [`state`]: what is indexed: live listings' images and protected originals.
//! - [`log`]: the append-only image index log the state is rebuilt from.

pub mod decode;
pub mod fetch;
pub mod hash;
pub mod hasher;
pub mod index;
pub mod jpeg;
pub mod log;
pub mod state;

pub use decode::{decode_thumbnail, decode_thumbnails, DecodeError, DecodeLimits, Thumbnail};
pub use hash::{hash_thumbnail, Detail, ImageHash, Perceptual};

/// Insets (a share of each side) at which a protected original is also indexed, and a listing
/// image's crops are hashed, so that a copy cropped anywhere up to a little past the largest
/// still matches one of them. The 10 % one finds a copy with a tenth cut off every edge
/// (a fifth of each side in all), which the two smaller ones missed half the time on the
/// accuracy bench.
pub const ORIGINAL_INSETS: [f64; 3] = [0.025, 0.05, 0.10];

/// A protected original's hashes: the picture's own, and those of its inset crops and their
/// mirror images (in that order, plain then mirrored for each inset).
#[derive(Debug, Clone, PartialEq)]
pub struct OriginalHashes {
    pub picture: Perceptual,
    pub crops: Vec<ImageHash>,
}

/// The hashes a protected original is indexed under.
pub fn original_hashes(image: &image::DynamicImage) -> OriginalHashes {
    let mut insets = vec![0.0];
    insets.extend(ORIGINAL_INSETS);
    let thumbnails = decode::thumbnails_of(image, &insets);
    let picture = hash_thumbnail(&thumbnails[0]);
    let crops = thumbnails[1..]
        .iter()
        .flat_map(|t| [hash::hash_only(t), hash::hash_only(&t.mirrored())])
        .collect();
    OriginalHashes { picture, crops }
}

/// Decodes an original within `limits` and computes its [`OriginalHashes`].
pub fn hash_original_bytes(
    bytes: &[u8],
    limits: &DecodeLimits,
) -> Result<OriginalHashes, DecodeError> {
    let image = decode::decode_image(bytes, limits)?;
    Ok(original_hashes(&image))
}

/// Hashes image bytes: decode within `limits`, then the perceptual hash of the result and of
/// its inset crops ([`ORIGINAL_INSETS`]).
pub fn hash_bytes(bytes: &[u8], limits: &DecodeLimits) -> Result<Perceptual, DecodeError> {
    let mut insets = [0.0; ORIGINAL_INSETS.len() + 1];
    insets[1..].copy_from_slice(&ORIGINAL_INSETS);
    let thumbnails = decode::decode_thumbnails(bytes, limits, &insets)?;
    let mut picture = hash_thumbnail(&thumbnails[0]);
    picture.crops = Some(std::array::from_fn(|i| hash::hash_only(&thumbnails[i + 1])));
    Ok(picture)
}
