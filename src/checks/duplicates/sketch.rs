//! The parallel half of the duplicate check: a small sketch of a listing's content, built from
//! the normalised text the term matchers already made (no normalising of its own).
//!
//! - `key`: a hash of the seller, the key attributes (brand, model, specification,
//!   composition), normalised, so that spacing, punctuation and full-width forms do not count,
//!   and the product the title sells ([`Sketch::for_product`]). Two listings are only compared
//!   when their keys are equal: the same text for another specification, or the same
//!   boilerplate around another product, is another listing.
//! - `simhash`: a 64-bit SimHash over the character 3-grams of the normalised title (counted
//!   twice: it is what a buyer sees) and description. A small edit changes a few 3-grams and so
//!   a few bits; unrelated texts differ in about half the bits.
//! - `exact`: a hash of the whole normalised content and category, to tell an identical copy
//!   from a near one in the evidence.
//!
//! `key` and `exact` are XXH3 hashes of explicitly framed bytes, not `std`'s hasher: a sketch
//! is state that outlives the process (a snapshot, a topic a restarted worker replays), so it
//! must hash the same in every build.

use xxhash_rust::xxh3::Xxh3Default;

use serde::{Deserialize, Serialize};

use crate::contract::{FieldName, ListingEvent};
use crate::normalize::{Normalized, Normalizer};

/// What the duplicate check keeps of one listing's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sketch {
    pub key: u64,
    pub simhash: u64,
    pub exact: u64,
}

impl Sketch {
    /// The sketch with the product the title sells (its head noun, folded) in the key.
    pub fn for_product(mut self, product: &str) -> Sketch {
        let mut key = Xxh3Default::new();
        key.update(&self.key.to_le_bytes());
        frame(&mut key, product.as_bytes());
        self.key = key.digest();
        self
    }

    /// Bits in which two sketches' SimHashes differ.
    pub fn distance(&self, other: &Sketch) -> u32 {
        simhash_distance(self.simhash, other.simhash)
    }
}

/// Bits in which two SimHashes differ.
pub fn simhash_distance(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

/// Builds a [`Sketch`] field by field as the parallel checks normalise the fields.
pub struct SketchBuilder<'a> {
    key_attributes: &'a [String],
    key: Xxh3Default,
    exact: Xxh3Default,
    bits: BitCounts,
}

/// How often each bit is set among the 3-gram hashes, by weight.
struct BitCounts {
    /// Set-bit counts of the 3-gram hashes in 8-bit lanes, one byte of the hash per word
    /// (bit 8i+j in byte j of `lanes[i]`), so that one 3-gram costs 8 additions, not 64;
    /// flushed into `counts` before a lane can overflow.
    lanes: [u64; 8],
    /// Total weight added to every lane since the last flush.
    weight: u32,
    /// Lanes flushed before they could overflow, and the weight they held.
    counts: [u32; 64],
    total: u32,
    shingles: u32,
    /// How the hashes are counted on this processor.
    vector: Vector,
}

/// The 3-grams of the title or the description, fed one character of its normal form at a
/// time by a caller that makes the normal form anyway ([`SketchBuilder::shingles`]), and
/// closed with [`SketchBuilder::add_shingled`]: the field is not read a second time. A value
/// of its own rather than part of the builder, so that its state stays in registers.
pub struct Shingles {
    weight: u32,
    /// The last three characters, the newest in the high bits.
    window: u64,
    seen: usize,
    pending: usize,
    hashes: [u64; CHUNK],
}

impl Shingles {
    /// The next character of the field's normal form.
    #[inline(always)]
    pub fn push(&mut self, c: char, sketch: &mut SketchBuilder<'_>) {
        self.window = self.window >> 21 | (c as u64) << 42;
        self.seen += 1;
        if self.seen >= 3 {
            self.hashes[self.pending % CHUNK] = mix(self.window);
            self.pending += 1;
            if self.pending == CHUNK {
                self.pending = 0;
                let vector = sketch.bits.vector;
                sketch.bits.count_all(&self.hashes, self.weight, vector);
            }
        }
    }
}

impl<'a> SketchBuilder<'a> {
    /// Starts with the seller (part of the key) and the category path (part of `exact`).
    pub fn new(
        event: &ListingEvent,
        key_attributes: &'a [String],
        normalized: &mut Normalized,
    ) -> SketchBuilder<'a> {
        let mut key = Xxh3Default::new();
        frame(&mut key, event.seller.id.as_bytes());
        let mut exact = Xxh3Default::new();
        for level in &event.listing.category {
            Normalizer.normalize_into(level, normalized);
            frame(&mut exact, normalized.text().as_bytes());
        }
        SketchBuilder {
            key_attributes,
            key,
            exact,
            bits: BitCounts::new(),
        }
    }

    /// The 3-grams of the title or the description, to be fed as the caller normalises it;
    /// `None` for an attribute, which has none.
    pub fn shingles(&self, field: FieldName<'_>) -> Option<Shingles> {
        let weight = match field {
            FieldName::Title => 2,
            FieldName::Description => 1,
            FieldName::Attribute(_) => return None,
        };
        Some(Shingles {
            weight,
            window: 0,
            seen: 0,
            pending: 0,
            hashes: [0; CHUNK],
        })
    }

    /// Adds the title or the description, whose normal form `normalized` was fed to
    /// `shingles`.
    pub fn add_shingled(
        &mut self,
        field: FieldName<'_>,
        normalized: &Normalized,
        mut shingles: Shingles,
    ) {
        if (1..3).contains(&shingles.seen) {
            shingles.hashes[shingles.pending] = mix(shingles.window);
            shingles.pending += 1;
        }
        let vector = self.bits.vector;
        self.bits.count_all(
            &shingles.hashes[..shingles.pending],
            shingles.weight,
            vector,
        );
        self.add_exact(field, normalized);
    }

    /// Adds a field, whose normal form is `normalized`.
    pub fn add(&mut self, field: FieldName<'_>, normalized: &Normalized) {
        match field {
            FieldName::Title => self.bits.shingle(normalized.text(), 2),
            FieldName::Description => self.bits.shingle(normalized.text(), 1),
            FieldName::Attribute(_) => {}
        }
        self.add_exact(field, normalized);
    }

    /// The field in `key` (a key attribute) and `exact`.
    fn add_exact(&mut self, field: FieldName<'_>, normalized: &Normalized) {
        let text = normalized.text();
        match field {
            FieldName::Title => self.exact.update(&[0]),
            FieldName::Description => self.exact.update(&[1]),
            FieldName::Attribute(name) => {
                self.exact.update(&[2]);
                frame(&mut self.exact, name.as_bytes());
                if self.key_attributes.iter().any(|k| k == name) {
                    frame(&mut self.key, name.as_bytes());
                    frame(&mut self.key, text.as_bytes());
                }
            }
        }
        frame(&mut self.exact, text.as_bytes());
    }

    /// The sketch, or `None` for a listing without title or description text to compare.
    pub fn finish(mut self) -> Option<Sketch> {
        let bits = &mut self.bits;
        if bits.shingles == 0 {
            return None;
        }
        bits.flush();
        // A bit is set where more than half the weight had it set.
        let mut simhash = 0u64;
        for (bit, &count) in bits.counts.iter().enumerate() {
            if 2 * u64::from(count) > u64::from(bits.total) {
                simhash |= 1 << bit;
            }
        }
        Some(Sketch {
            key: self.key.digest(),
            simhash,
            exact: self.exact.digest(),
        })
    }
}

impl BitCounts {
    fn new() -> BitCounts {
        BitCounts {
            lanes: [0; 8],
            weight: 0,
            counts: [0; 64],
            total: 0,
            shingles: 0,
            vector: simd(),
        }
    }

    /// Adds every character 3-gram of `text` (the whole text if shorter) with `weight`.
    fn shingle(&mut self, text: &str, weight: u32) {
        let mut window = 0u64;
        let mut seen = 0usize;
        let mut hashes = [0u64; CHUNK];
        let mut pending = 0;
        for c in text.chars() {
            window = window >> 21 | (c as u64) << 42;
            seen += 1;
            if seen >= 3 {
                hashes[pending] = mix(window);
                pending += 1;
                if pending == CHUNK {
                    self.count_all(&hashes, weight, self.vector);
                    pending = 0;
                }
            }
        }
        if (1..3).contains(&seen) {
            hashes[pending] = mix(window);
            pending += 1;
        }
        self.count_all(&hashes[..pending], weight, self.vector);
    }

    /// Counts the bits of at most [`CHUNK`] 3-gram hashes, with the vector instructions
    /// `vector` names ([`simd`]).
    fn count_all(&mut self, hashes: &[u64], weight: u32, vector: Vector) {
        debug_assert!(hashes.len() <= CHUNK && (1..=MAX_WEIGHT).contains(&weight));
        #[cfg(target_arch = "x86_64")]
        if vector != Vector::Portable {
            self.total += weight * hashes.len() as u32;
            self.shingles += hashes.len() as u32;
            if vector == Vector::Avx512 {
                // SAFETY: `simd` only says Avx512 where the processor has AVX-512BW.
                unsafe { count_avx512(&mut self.counts, hashes, weight) };
            } else {
                // SAFETY: `simd` only says Avx2 where the processor has AVX2.
                unsafe { count_avx2(&mut self.counts, hashes, weight) };
            }
            return;
        }
        let _ = vector;
        for &hash in hashes {
            self.count(hash, weight);
        }
    }

    /// `weight` is 1 or 2 ([`SketchBuilder::add`]), so a set bit adds `1 << (weight - 1)`.
    fn count(&mut self, hash: u64, weight: u32) {
        debug_assert!((1..=MAX_WEIGHT).contains(&weight));
        let hash = hash.to_le_bytes();
        let shift = weight - 1;
        for (lane, byte) in self.lanes.iter_mut().zip(hash) {
            *lane += BYTE_LANES[usize::from(byte)] << shift;
        }
        self.weight += weight;
        self.total += weight;
        self.shingles += 1;
        if self.weight > u32::from(u8::MAX) - MAX_WEIGHT {
            self.flush();
        }
    }

    fn flush(&mut self) {
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            for (j, count) in lane.to_le_bytes().into_iter().enumerate() {
                self.counts[8 * i + j] += u32::from(count);
            }
            *lane = 0;
        }
        self.weight = 0;
    }
}

/// Adds `bytes` with their length in front, so that ("ab", "c") and ("a", "bc") differ.
fn frame(hasher: &mut Xxh3Default, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

/// The largest weight one 3-gram is counted with (a title's).
const MAX_WEIGHT: u32 = 2;

/// 3-gram hashes counted at a time: few enough that a byte lane cannot overflow
/// (`CHUNK * MAX_WEIGHT` < 256).
const CHUNK: usize = 64;

/// How this processor counts the bits of many hashes at once: AVX-512BW spreads a hash's 64
/// bits into 64 byte lanes in one instruction, AVX2 in a shuffle, a mask and a compare per
/// 32; elsewhere eight table lookups do it. Detected once, then cached by `std`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vector {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn simd() -> Vector {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            return Vector::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return Vector::Avx2;
        }
    }
    Vector::Portable
}

/// Adds `weight` to `counts[i]` for every hash with bit i set, 64 byte lanes at once.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512bw")]
fn count_avx512(counts: &mut [u32; 64], hashes: &[u64], weight: u32) {
    use std::arch::x86_64::{
        _mm512_movm_epi8, _mm512_setzero_si512, _mm512_storeu_si512, _mm512_sub_epi8,
    };
    let mut lanes = _mm512_setzero_si512();
    for &hash in hashes {
        // 0xFF (-1) in byte i where bit i is set: subtracting adds one.
        let set = _mm512_movm_epi8(hash);
        lanes = _mm512_sub_epi8(lanes, set);
        if weight == 2 {
            lanes = _mm512_sub_epi8(lanes, set);
        }
    }
    let mut bytes = [0u8; 64];
    // SAFETY: `bytes` is 64 writable bytes, and the store is unaligned.
    unsafe { _mm512_storeu_si512(bytes.as_mut_ptr().cast(), lanes) };
    for (count, byte) in counts.iter_mut().zip(bytes) {
        *count += u32::from(byte);
    }
}

/// Adds `weight` to `counts[i]` for every hash with bit i set, in two vectors of 32 byte
/// lanes: each lane picks its byte of the hash with a shuffle and tests its bit with a mask.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn count_avx2(counts: &mut [u32; 64], hashes: &[u64], weight: u32) {
    use std::arch::x86_64::{
        __m256i, _mm256_and_si256, _mm256_cmpeq_epi8, _mm256_set1_epi64x, _mm256_setr_epi8,
        _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_storeu_si256, _mm256_sub_epi8,
    };
    // The shuffle reads within each 128-bit half, and every half holds the whole hash twice:
    // lane j of `low` takes byte j / 8 (bits 0–31), lane j of `high` byte 4 + j / 8.
    let pick_low = _mm256_setr_epi8(
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3,
        3, 3,
    );
    let pick_high = _mm256_setr_epi8(
        4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7,
        7, 7,
    );
    let bit = _mm256_setr_epi8(
        1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128,
        1, 2, 4, 8, 16, 32, 64, -128,
    );
    let mut low = _mm256_setzero_si256();
    let mut high = _mm256_setzero_si256();
    for &hash in hashes {
        let spread = _mm256_set1_epi64x(hash as i64);
        // 0xFF (-1) in lane j where bit j is set: subtracting adds one.
        let set_low = _mm256_cmpeq_epi8(
            _mm256_and_si256(_mm256_shuffle_epi8(spread, pick_low), bit),
            bit,
        );
        let set_high = _mm256_cmpeq_epi8(
            _mm256_and_si256(_mm256_shuffle_epi8(spread, pick_high), bit),
            bit,
        );
        low = _mm256_sub_epi8(low, set_low);
        high = _mm256_sub_epi8(high, set_high);
        if weight == 2 {
            low = _mm256_sub_epi8(low, set_low);
            high = _mm256_sub_epi8(high, set_high);
        }
    }
    let mut bytes = [0u8; 64];
    // SAFETY: `bytes` is 64 writable bytes, two unaligned stores of 32.
    unsafe {
        _mm256_storeu_si256(bytes.as_mut_ptr().cast::<__m256i>(), low);
        _mm256_storeu_si256(bytes.as_mut_ptr().add(32).cast::<__m256i>(), high);
    }
    for (count, byte) in counts.iter_mut().zip(bytes) {
        *count += u32::from(byte);
    }
}

/// For each byte value, its eight bits spread into the eight bytes of a word.
const BYTE_LANES: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut n = 0;
    while n < 256 {
        let mut j = 0;
        while j < 8 {
            if n >> j & 1 == 1 {
                table[n] |= 1 << (8 * j);
            }
            j += 1;
        }
        n += 1;
    }
    table
};

/// SplitMix64's finaliser: spreads the bits of a 3-gram (three characters of 21 bits, the
/// oldest lowest; a shorter text has zeros in front) over the whole word.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED_KEY: u64 = 13_674_714_017_848_546_631;
    const PINNED_SIMHASH: u64 = 12_011_378_191_363_278_681;
    const PINNED_EXACT: u64 = 15_774_120_515_639_185_929;

    fn sketch(title: &str, description: &str) -> Sketch {
        let event: ListingEvent = serde_json::from_value(serde_json::json!({
            "schema": "listing-event/v1", "event_id": "e", "op": "upsert",
            "occurred_at": "2026-12-02T09:15:00+08:00", "seller": { "id": "S1" },
            "listing": { "id": "P1", "title": title, "description": description }
        }))
        .unwrap();
        let keys = vec!["brand".to_owned()];
        let mut normalized = Normalized::default();
        let mut builder = SketchBuilder::new(&event, &keys, &mut normalized);
        for (field, text) in event.text_fields() {
            Normalizer.normalize_into(text, &mut normalized);
            builder.add(field, &normalized);
        }
        builder.finish().unwrap()
    }

    const TITLE: &str = "精梳全棉贡缎 60s 173*124 床品面料";
    const DESCRIPTION: &str = "60支精梳全棉贡缎，适合四件套，布面光洁，手感柔软，可定织定染。";

    #[test]
    fn a_sketch_hashes_the_same_in_every_build() {
        // Sketches outlive the process; these values must never change silently.
        let pinned = sketch("全棉府绸 40s×40s", "布面平整。").for_product("府绸");
        assert_eq!(
            (pinned.key, pinned.simhash, pinned.exact),
            (PINNED_KEY, PINNED_SIMHASH, PINNED_EXACT)
        );
    }

    #[test]
    fn spacing_punctuation_and_width_change_nothing() {
        let original = sketch(TITLE, DESCRIPTION);
        let respaced = sketch(
            "精梳 全棉 贡缎　６０ｓ　173×124 【床品面料】",
            "60支精梳全棉贡缎 适合四件套!布面光洁 手感柔软 可定织定染",
        );
        assert_eq!(original.simhash, respaced.simhash);
        assert_eq!(original.key, respaced.key);
    }

    #[test]
    fn small_edits_move_few_bits_and_other_texts_many() {
        let original = sketch(TITLE, DESCRIPTION);
        let edits = [
            sketch("精梳全棉贡缎 60s 173*124 床品布料", DESCRIPTION),
            sketch(
                TITLE,
                "60支精梳全棉贡缎，适合四件套，布面光洁，手感柔软，可以定织定染。",
            ),
            sketch("新款精梳全棉贡缎 60s 173*124 床品面料", DESCRIPTION),
            sketch(
                TITLE,
                "60支精梳全棉贡缎，适合做四件套，布面光洁，手感柔软，可定织定染。",
            ),
        ];
        for edited in &edits {
            let distance = original.distance(edited);
            assert!(distance <= 12, "{distance}");
        }
        let others = [
            sketch(
                "涤纶塔夫绸 190T 里布",
                "190T涤塔夫，用于箱包、服装里布，颜色齐全。",
            ),
            sketch("剑杆织机 高速 幅宽230cm", "高速剑杆织机，九成新，可试机。"),
            sketch(
                "全棉府绸 40s×40s 133×72",
                "精梳全棉府绸，布面平整，适合衬衫、童装。",
            ),
        ];
        for other in &others {
            let distance = original.distance(other);
            assert!(distance > 16, "{distance}");
        }
    }

    /// The SimHash counted one bit at a time, as the definition says.
    fn simhash_by_definition(title: &str, description: &str) -> u64 {
        let mut counts = [0u64; 64];
        let mut total = 0;
        for (text, weight) in [(title, 2), (description, 1)] {
            let chars: Vec<u64> = Normalizer.normalize(text).chars().map(u64::from).collect();
            let grams: Vec<u64> = match chars.len() {
                0 => vec![],
                1 => vec![chars[0] << 42],
                2 => vec![chars[0] << 21 | chars[1] << 42],
                _ => chars
                    .windows(3)
                    .map(|w| w[0] | w[1] << 21 | w[2] << 42)
                    .collect(),
            };
            for gram in grams {
                let hash = mix(gram);
                total += weight;
                for (bit, count) in counts.iter_mut().enumerate() {
                    *count += weight * (hash >> bit & 1);
                }
            }
        }
        (0..64)
            .filter(|&bit| 2 * counts[bit] > total)
            .fold(0, |h, bit| h | 1 << bit)
    }

    proptest::proptest! {
        #[test]
        fn lane_counting_is_the_simhash_by_definition(
            title in "[棉麻丝 a-c0-2]{0,40}",
            description in "[棉麻丝涤纶 a-d0-3，。]{0,600}",
        ) {
            proptest::prop_assume!(!(Normalizer.normalize(&title).is_empty()
                && Normalizer.normalize(&description).is_empty()));
            let sketch = sketch(&title, &description);
            proptest::prop_assert_eq!(sketch.simhash, simhash_by_definition(&title, &description));
        }
    }

    proptest::proptest! {
        #[test]
        fn both_ways_of_counting_agree(
            hashes in proptest::collection::vec(proptest::num::u64::ANY, 0..=CHUNK),
            weight in 1u32..=2,
        ) {
            // Every path the processor has against the portable one.
            let mut portable = BitCounts::new();
            portable.count_all(&hashes, weight, Vector::Portable);
            portable.flush();
            for vector in available_vectors() {
                let mut counted = BitCounts::new();
                counted.count_all(&hashes, weight, vector);
                counted.flush();
                proptest::prop_assert_eq!(portable.counts, counted.counts, "{:?}", vector);
                proptest::prop_assert_eq!(
                    (portable.total, portable.shingles),
                    (counted.total, counted.shingles)
                );
            }
        }
    }

    /// The vector paths this processor can run.
    fn available_vectors() -> Vec<Vector> {
        #[allow(unused_mut)]
        let mut vectors = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                vectors.push(Vector::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512bw") {
                vectors.push(Vector::Avx512);
            }
        }
        vectors
    }

    #[test]
    fn a_text_longer_than_a_lane_holds_is_counted_exactly() {
        // Every 3-gram of the text is the same, so the SimHash is that 3-gram's hash.
        let long = "a".repeat(200_000);
        let a = u64::from(b'a');
        assert_eq!(sketch("", &long).simhash, mix(a | a << 21 | a << 42));
    }
}
