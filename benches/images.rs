//! Speed of the image path: decode + hash per image against decode-only passes and Python's
//! `imagehash`, and queries of the Hamming index at 1M and 10M hashes.
//!
//! ```text
//! cargo bench --bench images               # criterion, then the report below
//! cargo bench --bench images -- --report   # only the report
//! cargo bench --bench images -- --speed    # only its decode + hash part
//! cargo bench --bench images -- --index    # only its index part
//! LOOMGUARD_BENCH_PYTHON=/path/to/python cargo bench --bench images -- --report
//! ```
//!
//! The shared test photos are saved once as JPEGs of listing size (longest side 800, 1200
//! and 1600 px, quality 85) under `target/image-bench/`. The report runs every pass over all
//! of them on one thread, in [`ROUNDS`] interleaved rounds, and counts images per second of the
//! thread's CPU time (Python's too), so that the ratios are not blurred by the other work of
//! a shared, noisy machine:
//!
//! - loomguard decode + hash (`loomguard::images::hash_bytes`, what the worker runs);
//! - decode only with libjpeg-turbo to grey at 1/8 scale, the least any decoder does for a
//!   JPEG (the entropy-coded data read, one value per 8 × 8 block), and at the scale the
//!   worker picks for hashing (`loomguard::images::jpeg::scale_for`);
//! - decode only to full scale: zune-jpeg to the luma plane (the worker's path before), and
//!   the `image` crate to RGB;
//! - Python `imagehash.phash` on the same files (`benches/imagehash_phash.py`, run by
//!   `LOOMGUARD_BENCH_PYTHON`, default `python3`; left out if it cannot import imagehash).
//!
//! Then p50 / p99 / max query times of the index within the duplicate and infringement
//! thresholds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use image::imageops::FilterType;
use loomguard::images::index::HammingIndex;
use loomguard::images::jpeg::scale_for;
use loomguard::images::{hash_bytes, DecodeLimits};

/// Interleaved rounds of every pass.
const ROUNDS: usize = 5;

/// Time each pass runs for in a round.
const PASS: Duration = Duration::from_millis(1500);

/// Longest sides the photos are saved at: the range of listing photos.
const SIDES: [u32; 3] = [800, 1200, 1600];

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
    let mut files = Vec::new();
    for path in &photos {
        let name = path
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let image = image::open(path).expect("a test photo");
        for side in SIDES {
            let jpeg = out.join(format!("{name}-{side}.jpg"));
            if !jpeg.exists() {
                let (w, h) = (image.width(), image.height());
                let scale = f64::from(side) / f64::from(w.max(h));
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
            files.push((
                format!("{name}-{side}"),
                std::fs::read(&jpeg).expect("the bench JPEG"),
            ));
        }
    }
    files
}

/// CPU time this thread has used: unlike wall time, it does not count the time other
/// processes on the shared machine hold the core.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for the call to fill in.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0;
    assert!(!failed, "CLOCK_THREAD_CPUTIME_ID is available on Linux");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

/// Images per CPU-second of `work` over every file, one thread, for at least `min` of CPU.
fn rate(files: &[(String, Vec<u8>)], min: Duration, mut work: impl FnMut(&[u8])) -> f64 {
    let started = thread_cpu_time();
    let mut done = 0u64;
    while thread_cpu_time() - started < min {
        for (_, bytes) in files {
            work(bytes);
            done += 1;
        }
    }
    done as f64 / (thread_cpu_time() - started).as_secs_f64()
}

/// Decodes a JPEG to grey with libjpeg-turbo at `scale`; the pixels decoded.
fn decode_turbo(bytes: &[u8], scale: impl Fn(usize) -> turbojpeg::ScalingFactor) -> usize {
    let Ok(mut decompressor) = turbojpeg::Decompressor::new() else {
        return 0;
    };
    let Ok(header) = decompressor.read_header(bytes) else {
        return 0;
    };
    let scale = scale(header.width.min(header.height));
    let header = header.scaled(scale);
    if decompressor.set_scaling_factor(scale).is_err() {
        return 0;
    }
    let mut image = turbojpeg::Image {
        pixels: vec![0u8; header.width * header.height],
        width: header.width,
        pitch: header.width,
        height: header.height,
        format: turbojpeg::PixelFormat::GRAY,
    };
    match decompressor.decompress(bytes, image.as_deref_mut()) {
        Ok(()) => image.pixels.len(),
        Err(_) => 0,
    }
}

fn decode_zune_luma(bytes: &[u8]) -> usize {
    use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace};
    let options = zune_jpeg::zune_core::options::DecoderOptions::default()
        .set_strict_mode(false)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode().map(|p| p.len()).unwrap_or(0)
}

/// Python imagehash's phash rate on the bench JPEGs for `seconds`, or why there is none.
fn imagehash_rate(python: &str, seconds: f64) -> Result<f64, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/imagehash_phash.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(format!("{seconds}"))
        .output()
        .map_err(|e| format!("{python}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
            .to_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.parse::<f64>().ok())
        .ok_or_else(|| format!("no rate in {text:?}"))
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn range(values: &[f64]) -> String {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    format!("{lo:.2}–{hi:.2}")
}

fn speed_report(files: &[(String, Vec<u8>)]) {
    let limits = DecodeLimits::default();
    let python = std::env::var("LOOMGUARD_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    println!(
        "\n== {} listing-size JPEGs ({:?} px), one thread, {ROUNDS} interleaved rounds",
        files.len(),
        SIDES
    );
    type Pass<'a> = (&'static str, Box<dyn Fn(&[u8]) + 'a>);
    let passes: Vec<Pass> = vec![
        (
            "loomguard decode + hash",
            Box::new(|b| {
                std::hint::black_box(hash_bytes(b, &limits).ok());
            }),
        ),
        (
            "decode only, libjpeg-turbo grey, 1/8",
            Box::new(|b| {
                std::hint::black_box(decode_turbo(b, |_| turbojpeg::ScalingFactor::ONE_EIGHTH));
            }),
        ),
        (
            "decode only, libjpeg-turbo grey, hashing scale",
            Box::new(|b| {
                std::hint::black_box(decode_turbo(b, scale_for));
            }),
        ),
        (
            "decode only, zune-jpeg luma, full scale",
            Box::new(|b| {
                std::hint::black_box(decode_zune_luma(b));
            }),
        ),
        (
            "decode only, image crate RGB, full scale",
            Box::new(|b| {
                std::hint::black_box(image::load_from_memory(b).ok());
            }),
        ),
    ];
    let mut rates = vec![Vec::new(); passes.len()];
    let mut imagehash = Vec::new();
    let mut no_imagehash = None;
    for round in 0..ROUNDS {
        for (i, (_, work)) in passes.iter().enumerate() {
            rates[i].push(rate(files, PASS, work));
        }
        if no_imagehash.is_none() {
            match imagehash_rate(&python, PASS.as_secs_f64()) {
                Ok(r) => imagehash.push(r),
                Err(why) => no_imagehash = Some(why),
            }
        }
        eprintln!("round {} of {ROUNDS} done", round + 1);
    }
    for ((name, _), r) in passes.iter().zip(&rates) {
        let all: Vec<String> = r.iter().map(|v| format!("{v:.0}")).collect();
        println!(
            "{name:<48} {:>7.1} images/s (median; rounds {})",
            median(r),
            all.join(", ")
        );
    }
    // Per round, time per image of decode + hash over that of each reference.
    let ratio = |reference: usize| -> Vec<f64> {
        rates[reference]
            .iter()
            .zip(&rates[0])
            .map(|(r, h)| r / h)
            .collect()
    };
    println!(
        "decode + hash time / decode-only 1/8:            {} (target ≤ 1.25)",
        range(&ratio(1))
    );
    println!(
        "decode + hash time / decode-only hashing scale:  {}",
        range(&ratio(2))
    );
    match no_imagehash {
        None => {
            let all: Vec<String> = imagehash.iter().map(|v| format!("{v:.0}")).collect();
            println!(
                "{:<48} {:>7.1} images/s (median; rounds {})",
                "Python imagehash phash",
                median(&imagehash),
                all.join(", ")
            );
            let faster: Vec<f64> = rates[0]
                .iter()
                .zip(&imagehash)
                .map(|(h, p)| h / p)
                .collect();
            println!(
                "loomguard / imagehash:                           {} (target ≥ 3)",
                range(&faster)
            );
        }
        Some(why) => println!("Python imagehash left out: {why}"),
    }
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

/// p50, p99 and max of a query's time, as (wall, this thread's CPU time): on a shared
/// machine with more runnable threads than cores, a query that loses its core for a
/// scheduler slice (milliseconds) shows in the wall time's tail, not in the CPU time's.
fn quantiles(index: &HammingIndex, queries: &[u64], radius: u32) -> [[Duration; 3]; 2] {
    let (mut wall, mut cpu): (Vec<Duration>, Vec<Duration>) = queries
        .iter()
        .map(|&q| {
            let (started, started_cpu) = (Instant::now(), thread_cpu_time());
            std::hint::black_box(index.within(q, radius));
            (started.elapsed(), thread_cpu_time() - started_cpu)
        })
        .unzip();
    let at = |times: &mut Vec<Duration>| {
        times.sort_unstable();
        let q = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
        [q(0.5), q(0.99), q(1.0)]
    };
    [at(&mut wall), at(&mut cpu)]
}

fn index_report() {
    for n in [1_000_000usize, 10_000_000] {
        let started = Instant::now();
        let (index, queries) = index_with_queries(n, 20_000);
        let built = started.elapsed();
        println!(
            "\n== index of {n} random hashes (built in {:.1} s), 20,000 queries",
            built.as_secs_f64()
        );
        for radius in [10u32, 12] {
            let [wall, cpu] = quantiles(&index, &queries, radius);
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!(
                "within {radius:>2} bits: p50 {:>6.0} µs, p99 {:>6.0} µs, max {:>6.0} µs wall; \
                 p50 {:>6.0} µs, p99 {:>6.0} µs, max {:>6.0} µs CPU",
                us(wall[0]),
                us(wall[1]),
                us(wall[2]),
                us(cpu[0]),
                us(cpu[1]),
                us(cpu[2])
            );
        }
    }
}

fn report(files: &[(String, Vec<u8>)]) {
    speed_report(files);
    index_report();
}

fn main() {
    let files = listing_jpegs();
    let only_report =
        std::env::args().any(|a| ["--report", "--speed", "--index"].contains(&a.as_str()));
    if !only_report {
        let mut c = Criterion::default().configure_from_args();
        let limits = DecodeLimits::default();
        let mut group = c.benchmark_group("image");
        // Two photos at each listing size (the files are named `<photo>-<side>`).
        for (name, bytes) in files
            .iter()
            .filter(|(n, _)| n.starts_with("astronaut-") || n.starts_with("camera-"))
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
    if std::env::args().any(|a| a == "--speed") {
        speed_report(&files);
    } else if std::env::args().any(|a| a == "--index") {
        index_report();
    } else {
        report(&files);
    }
}
