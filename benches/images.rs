//! Speed of the image path: decode + hash per image, a decode-only pass, and queries of the
//! Hamming index at 1M and 10M hashes.
//!
//! ```text
//! cargo bench --bench images               # criterion, then the report below
//! cargo bench --bench images -- --report   # only the report
//! ```
//!
//! The shared test photos are saved once as JPEGs of listing size (longest side 1200 px,
//! quality 85) under `target/image-bench/`. The report gives images/s on one thread for
//! decode + hash (`loomguard::images::hash_bytes`, what the worker runs) and for decoding
//! alone: to RGB at full scale (the `image` crate), to the luma plane alone at full scale
//! (zune-jpeg, what the worker's decoding is), and at 1/8 scale (`jpeg-decoder`'s scaled
//! IDCT, the least a 32 × 32 thumbnail needs); decode + hash is compared with the fastest of
//! them. Then p50 / p99 / max query times of the index within the infringement and duplicate
//! thresholds.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use image::imageops::FilterType;
use loomguard::images::index::HammingIndex;
use loomguard::images::{hash_bytes, DecodeLimits};

fn listing_jpegs() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/image-bench");
    std::fs::create_dir_all(&out).expect("target/ is writable");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(root.join("tests/data/images"))
        .expect("the test photos")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("png" | "jpg")))
        .collect();
    photos.sort();
    photos
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let jpeg = out.join(format!("{name}.jpg"));
            if !jpeg.exists() {
                let image = image::open(path).expect("a test photo");
                let (w, h) = (image.width(), image.height());
                let scale = 1200.0 / f64::from(w.max(h));
                let resized = image.resize_exact(
                    (f64::from(w) * scale).round() as u32,
                    (f64::from(h) * scale).round() as u32,
                    FilterType::CatmullRom,
                );
                let mut bytes = Vec::new();
                let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85);
                resized
                    .to_rgb8()
                    .write_with_encoder(encoder)
                    .expect("JPEG encoding");
                std::fs::write(&jpeg, bytes).expect("target/ is writable");
            }
            (name, std::fs::read(&jpeg).expect("the bench JPEG"))
        })
        .collect()
}

/// Images per second of `work` over every file, one thread, at least `min` in all.
fn rate(files: &[(String, Vec<u8>)], min: Duration, mut work: impl FnMut(&[u8])) -> f64 {
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < min {
        for (_, bytes) in files {
            work(bytes);
            done += 1;
        }
    }
    done as f64 / started.elapsed().as_secs_f64()
}

fn decode_scaled(bytes: &[u8]) -> usize {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let _ = decoder.scale(32, 32);
    decoder.decode().map(|p| p.len()).unwrap_or(0)
}

fn decode_luma(bytes: &[u8]) -> usize {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace};
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode().map(|p| p.len()).unwrap_or(0)
}

/// A random index of `n` hashes and queries: half near an indexed hash, half random.
fn index_with_queries(n: usize, queries: usize) -> (HammingIndex, Vec<u64>) {
    let mut rng = fastrand::Rng::with_seed(42);
    let mut index = HammingIndex::new();
    let mut some = Vec::new();
    for i in 0..n {
        let hash = rng.u64(..);
        index.insert(hash);
        if i % (n / queries.max(1)).max(1) == 0 {
            some.push(hash);
        }
    }
    let queries = (0..queries)
        .map(|i| {
            if i % 2 == 0 {
                let mut h = some[i % some.len()];
                for _ in 0..rng.u32(0..12) {
                    h ^= 1 << rng.u32(0..64);
                }
                h
            } else {
                rng.u64(..)
            }
        })
        .collect();
    (index, queries)
}

fn quantiles(index: &HammingIndex, queries: &[u64], radius: u32) -> (Duration, Duration, Duration) {
    let mut times: Vec<Duration> = queries
        .iter()
        .map(|&q| {
            let started = Instant::now();
            std::hint::black_box(index.within(q, radius));
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    (at(0.5), at(0.99), at(1.0))
}

fn report(files: &[(String, Vec<u8>)]) {
    let limits = DecodeLimits::default();
    println!(
        "\n== decode + hash, {} listing-size JPEGs (1200 px), one thread",
        files.len()
    );
    let hash = rate(files, Duration::from_secs(3), |b| {
        std::hint::black_box(hash_bytes(b, &limits).ok());
    });
    let full = rate(files, Duration::from_secs(3), |b| {
        std::hint::black_box(image::load_from_memory(b).ok());
    });
    let luma = rate(files, Duration::from_secs(3), |b| {
        std::hint::black_box(decode_luma(b));
    });
    let scaled = rate(files, Duration::from_secs(3), |b| {
        std::hint::black_box(decode_scaled(b));
    });
    println!("loomguard decode + hash:               {hash:>8.1} images/s");
    println!("decode only, image crate, RGB:         {full:>8.1} images/s");
    println!("decode only, zune-jpeg, luma plane:    {luma:>8.1} images/s");
    println!("decode only, jpeg-decoder, 1/8 scale:  {scaled:>8.1} images/s");
    println!(
        "decode + hash / fastest decode time:   {:>8.2}",
        full.max(luma).max(scaled) / hash
    );

    for n in [1_000_000usize, 10_000_000] {
        let started = Instant::now();
        let (index, queries) = index_with_queries(n, 20_000);
        let built = started.elapsed();
        println!(
            "\n== index of {n} random hashes (built in {:.1} s)",
            built.as_secs_f64()
        );
        for radius in [10u32, 12] {
            let (p50, p99, max) = quantiles(&index, &queries, radius);
            println!(
                "within {radius:>2} bits: p50 {:>7.1} µs, p99 {:>7.1} µs, max {:>7.1} µs",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                max.as_secs_f64() * 1e6
            );
        }
    }
}

fn main() {
    let files = listing_jpegs();
    let only_report = std::env::args().any(|a| a == "--report");
    if !only_report {
        let mut c = Criterion::default().configure_from_args();
        let limits = DecodeLimits::default();
        let mut group = c.benchmark_group("image");
        for (name, bytes) in files
            .iter()
            .filter(|(n, _)| n == "astronaut" || n == "camera")
        {
            group.bench_with_input(BenchmarkId::new("decode_hash", name), bytes, |b, bytes| {
                b.iter(|| hash_bytes(bytes, &limits).ok())
            });
        }
        group.finish();
        let (index, queries) = index_with_queries(1_000_000, 1000);
        let mut group = c.benchmark_group("index_1m");
        for radius in [10u32, 12] {
            group.bench_with_input(BenchmarkId::new("within", radius), &radius, |b, &r| {
                let mut i = 0;
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    index.within(queries[i], r)
                })
            });
        }
        group.finish();
        c.final_summary();
    }
    report(&files);
}
