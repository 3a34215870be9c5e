//! Hostile listing images through `loomguard run`, as the stream meets them: files under the
//! image root and URLs of a real HTTP server on 127.0.0.1. Each image that cannot be fetched
//! or decoded is counted under its reason in the run's summary, its event is still decided
//! by the other checks (each such listing passes), and the run carries on: a later copy of a
//! photo is still found, with its distance.

#[path = "common/http.rs"]
mod http;

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::Path;
use std::process::Command;

use image::codecs::gif::GifEncoder;
use image::{Delay, DynamicImage, Frame, GrayImage, ImageFormat};
use serde_json::{json, Value};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn photo(name: &str) -> DynamicImage {
    image::open(repo().join(format!("tests/data/images/{name}.png"))).unwrap()
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

fn jpeg(image: &DynamicImage) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(image.to_rgb8()), ImageFormat::Jpeg)
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

/// A 74-byte-or-so PNG whose header declares 100,000 × 100,000 pixels.
fn bomb() -> Vec<u8> {
    let mut png = encode(
        &DynamicImage::ImageLuma8(GrayImage::new(8, 8)),
        ImageFormat::Png,
    );
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

/// An animated GIF: the camera photo, then the coins.
fn animated_gif() -> Vec<u8> {
    let frame = |name: &str| {
        let rgba = photo(name).resize_exact(128, 128, image::imageops::FilterType::Triangle);
        Frame::from_parts(rgba.to_rgba8(), 0, 0, Delay::from_numer_denom_ms(100, 1))
    };
    let mut gif = Vec::new();
    GifEncoder::new(&mut gif)
        .encode_frames([frame("camera"), frame("coins")])
        .unwrap();
    gif
}

/// A listing the other checks pass (the first of `examples/events.jsonl`), as `listing` of
/// `seller` with `images`.
fn event(n: usize, listing: &str, seller: &str, images: &[String]) -> String {
    json!({
        "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
        "occurred_at": "2026-12-02T09:01:00+08:00",
        "seller": {"id": seller, "licences": []},
        "listing": {"id": listing, "version": 1, "intent": "supply",
            "title": "全棉府绸 40s×40s 133×72 幅宽150cm 染色", "category": ["面料", "棉类面料"],
            "attributes": {"成分": "100%棉", "克重": "115g/m²", "幅宽": "150cm"},
            "description": "精梳全棉府绸，布面平整，适合衬衫、童装。起订量500米，现货供应。",
            "stock": 5000, "images": images,
            "price": {"amount": 9.6, "currency": "CNY", "unit": "米"}}
    })
    .to_string()
}

fn image_findings(decision: &Value) -> Vec<(String, Value)> {
    decision["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["field"] == "images")
        .map(|f| {
            (
                f["kind"].as_str().unwrap().to_owned(),
                f["evidence"].clone(),
            )
        })
        .collect()
}

#[test]
fn hostile_images_are_counted_by_reason_and_their_events_still_decided() {
    let camera = photo("camera");
    let mut files = HashMap::new();
    files.insert("/camera.jpg".to_owned(), jpeg(&camera));
    let server = http::start(files);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    std::fs::create_dir_all(&root).unwrap();
    let camera_jpeg = jpeg(&camera);
    let on_disk: [(&str, Vec<u8>); 8] = [
        ("camera.jpg", camera_jpeg.clone()),
        ("empty.jpg", Vec::new()),
        (
            "notes.jpg",
            b"<html><body>404 Not Found</body></html>\n".to_vec(),
        ),
        (
            "truncated.jpg",
            camera_jpeg[..camera_jpeg.len() / 2].to_vec(),
        ),
        ("bomb.png", bomb()),
        (
            "one.png",
            encode(
                &DynamicImage::ImageLuma8(GrayImage::new(1, 1)),
                ImageFormat::Png,
            ),
        ),
        (
            "line.png",
            encode(
                &DynamicImage::ImageLuma8(GrayImage::new(100_000, 1)),
                ImageFormat::Png,
            ),
        ),
        ("animated.gif", animated_gif()),
    ];
    for (name, bytes) in &on_disk {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let file = |name: &str| {
        reqwest::Url::from_file_path(root.join(name))
            .unwrap()
            .to_string()
    };

    // One hostile image per listing, each of its own seller; then the photo again, twice by
    // one seller (from the image root, then over HTTP), and the animated GIF, whose first
    // frame is the photo, by a third.
    let hostile = [
        file("empty.jpg"),
        file("notes.jpg"),
        file("truncated.jpg"),
        file("bomb.png"),
        file("one.png"),
        file("line.png"),
        file("missing.jpg"),
        server.url("/trickle"),
        server.url("/redirect-private"),
        server.url("/redirect-metadata"),
        server.url("/declared-huge"),
        server.url("/chunked-huge"),
        server.url("/missing.jpg"),
        "https://img.example.invalid/a.jpg".to_owned(),
        "ftp://img.example.com/a.jpg".to_owned(),
    ];
    let mut lines: Vec<String> = hostile
        .iter()
        .enumerate()
        .map(|(n, url)| {
            event(
                n,
                &format!("H{n}"),
                &format!("S{n}"),
                std::slice::from_ref(url),
            )
        })
        .collect();
    lines.push(event(100, "P1", "S100", &[file("camera.jpg")]));
    // Another text, so that the second listing repeats the first's image only.
    let mut second: Value =
        serde_json::from_str(&event(101, "P2", "S100", &[server.url("/camera.jpg")])).unwrap();
    second["listing"]["title"] = json!("涤纶塔夫绸 190T 里布");
    second["listing"]["category"] = json!(["面料", "化纤面料"]);
    second["listing"]["attributes"] = json!({"成分": "100%涤纶", "规格": "190T"});
    second["listing"]["description"] = json!("190T涤塔夫，用于箱包、服装里布，颜色齐全。");
    second["listing"]["price"] = json!({"amount": 1.45, "currency": "CNY", "unit": "米"});
    lines.push(second.to_string());
    lines.push(event(102, "P3", "S102", &[file("animated.gif")]));
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.path().join("decisions.jsonl");

    let run = Command::new(env!("CARGO_BIN_EXE_loomguard"))
        .args(["run", "--no-progress", "--summary", "json", "--rules"])
        .arg(repo().join("rules"))
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(&output)
        .arg("--image-root")
        .arg(&root)
        .args([
            "--image-allow-loopback",
            "--image-timeout-ms",
            "1000",
            "--image-max-bytes",
            "1000000",
        ])
        .env("LOOMGUARD_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");

    let decisions: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = decisions
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    let mut expected: Vec<String> = (0..hostile.len()).map(|n| format!("e{n}")).collect();
    expected.extend(["e100", "e101", "e102"].map(String::from));
    assert_eq!(ids, expected);
    for decision in &decisions[..hostile.len()] {
        assert_eq!(
            (
                decision["action"].as_str(),
                decision["findings"].as_array().map(Vec::len)
            ),
            (Some("pass"), Some(0)),
            "{decision}"
        );
    }
    assert_eq!(decisions[hostile.len()]["action"], "pass");

    // The copy over HTTP repeats P1's image exactly; the GIF's first frame is the photo
    // scaled down, another seller's, so it is no duplicate.
    let p2 = &decisions[hostile.len() + 1];
    assert_eq!(p2["action"], "suppress");
    let found = image_findings(p2);
    assert_eq!(found.len(), 1, "{p2}");
    assert_eq!(found[0].0, "duplicate.image");
    assert_eq!(
        (
            &found[0].1["duplicate_of"],
            &found[0].1["distance"],
            &found[0].1["max_distance"]
        ),
        (&json!("P1"), &json!(0), &json!(10))
    );
    assert_eq!(decisions[hostile.len() + 2]["action"], "pass");
    // Each URL fetched once: a failure is not retried within the run's one batch.
    assert_eq!(
        (server.hits("/camera.jpg"), server.hits("/trickle")),
        (1, 1)
    );

    let summary: Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    let problems: BTreeMap<String, u64> =
        serde_json::from_value(summary["images"]["problems"].clone()).unwrap();
    let want: BTreeMap<String, u64> = [
        ("decode.empty", 1),
        ("decode.unsupported_format", 1),
        ("decode.truncated", 1),
        ("decode.too_large", 2),
        ("decode.too_small", 1),
        ("fetch.file", 1),
        ("fetch.timeout", 1),
        ("fetch.address_not_allowed", 2),
        ("fetch.too_large", 2),
        ("fetch.http_status", 1),
        ("fetch.dns", 1),
        ("fetch.scheme_not_allowed", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(problems, want);
    assert_eq!(summary["images"]["hashed"], 3);
    assert_eq!(summary["events"], 18);
}
