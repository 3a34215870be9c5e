//! The complaint API against a running `loomguard run --listen`: real HTTP on 127.0.0.1,
//! listing images given as `file://` URLs under the image root, decisions read from the
//! output file, and the image index log replayed by a second run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{json, Value};

const TOKEN: &str = "test-token-1";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn png(image: &DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

struct Run {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
    base: String,
}

impl Run {
    fn start(dir: &Path, input: &Path, output: &Path) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loomguard"))
            .args(["--log-format", "json", "run", "--no-progress", "--rules"])
            .arg(repo().join("rules"))
            .arg("--input")
            .arg(input)
            .arg("--output")
            .arg(output)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--image-root")
            .arg(dir.join("images"))
            .args(["--listen", "127.0.0.1:0", "--api-max-body-bytes", "1000000"])
            .env("LOOMGUARD_API_TOKENS", format!("{TOKEN},other-token"))
            .env("LOOMGUARD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push(line);
            }
        });
        let started = Instant::now();
        let addr = loop {
            let found = stderr.lock().unwrap().iter().find_map(|l| {
                let log: Value = serde_json::from_str(l).ok()?;
                let fields = &log["fields"];
                (fields["message"] == "complaint API listening")
                    .then(|| fields["addr"].as_str().map(str::to_owned))
                    .flatten()
            });
            if let Some(addr) = found {
                break addr;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{:?}",
                stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Run {
            child,
            stderr,
            base: format!("http://{addr}"),
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn stop(mut self) -> Vec<String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "{status}");
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `path` has `n` lines and returns them as JSON.
fn wait_lines(path: &Path, n: usize) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} lines: {text}",
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn event(n: u32, listing: &str, seller: &str, images: &[String]) -> String {
    json!({
        "schema": "listing-event/v1", "event_id": format!("e{n}"), "op": "upsert",
        "occurred_at": "2026-12-02T09:00:00+08:00",
        "seller": {"id": seller},
        "listing": {"id": listing, "version": 1, "intent": "supply",
                    "title": "全棉府绸 40s×40s 133×72 幅宽150cm", "category": ["面料", "棉类面料"],
                    "attributes": {"成分": "100%棉"}, "description": "精梳全棉府绸", "stock": 100,
                    "images": images}
    })
    .to_string()
}

struct Client {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    base: String,
}

impl Client {
    fn new(base: &str) -> Client {
        Client {
            // Never through a proxy of the environment: the server is on 127.0.0.1.
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            base: base.to_owned(),
        }
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.runtime.block_on(async {
            let url = format!("{}{path}", self.base);
            let mut request = match method {
                "post" => self.http.post(url),
                _ => self.http.get(url),
            };
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    /// `GET path` with `authorization` as the whole Authorization header.
    fn get_with_authorization(&self, path: &str, authorization: &str) -> (u16, Value) {
        self.runtime.block_on(async {
            let response = self
                .http
                .get(format!("{}{path}", self.base))
                .header("authorization", authorization)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            (
                status,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            )
        })
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.send("get", path, Some(TOKEN), None)
    }

    fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send("post", path, Some(TOKEN), Some(body))
    }
}

fn code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["error"]["code"].as_str().unwrap_or("-"))
}

/// The appeal deadline of a decision made at `decided_at` (as decisions write it): two
/// working days of the shipped calendar later, in China Standard Time, to the millisecond.
fn deadline_after(decided_at: &str) -> String {
    use time::format_description::well_known::Rfc3339;
    let rules = loomguard::rules::RuleSet::load(&repo().join("rules")).unwrap();
    let at = time::OffsetDateTime::parse(decided_at, &Rfc3339).unwrap();
    let deadline = rules.holidays.working_days_after(at, 2);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+08:00"
    );
    deadline.format(&format).unwrap()
}

fn listing_ids(matches: &Value) -> Vec<&str> {
    let mut ids: Vec<&str> = matches
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["listing_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn complaints_suppress_matching_listings_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let camera = image::open(repo().join("tests/data/images/camera.png")).unwrap();
    let coins = image::open(repo().join("tests/data/images/coins.png")).unwrap();
    std::fs::write(images.join("a.png"), png(&camera)).unwrap();
    let half = camera.resize_exact(256, 256, image::imageops::FilterType::Triangle);
    std::fs::write(images.join("b.png"), png(&half)).unwrap();
    std::fs::write(images.join("c.png"), png(&coins)).unwrap();
    let blank = DynamicImage::ImageRgb8(RgbImage::from_pixel(200, 200, Rgb([240, 240, 240])));
    std::fs::write(images.join("blank.png"), png(&blank)).unwrap();
    let url = |name: &str| {
        reqwest::Url::from_file_path(images.join(name))
            .unwrap()
            .to_string()
    };

    let input = dir.path().join("events.jsonl");
    let lines = [
        event(1, "P1", "S1", &[url("a.png")]),
        event(2, "P2", "S1", &[url("b.png")]),
        event(3, "P3", "S2", &[url("b.png")]),
        event(
            4,
            "P4",
            "S2",
            &[
                url("c.png"),
                url("missing.png"),
                "http://127.0.0.1:9/x.jpg".to_owned(),
            ],
        ),
        event(5, "P5", "S3", &[url("blank.png")]),
        json!({"schema": "listing-event/v1", "event_id": "e6", "op": "delete",
               "occurred_at": "2026-12-02T09:00:00+08:00", "seller": {"id": "S2"},
               "listing": {"id": "P3"}})
        .to_string(),
    ];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.path().join("decisions.jsonl");

    let run = Run::start(dir.path(), &input, &output);
    let decisions = wait_lines(&output, 6);
    let kinds = |d: &Value| -> Vec<String> {
        d["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(!kinds(&decisions[0]).contains(&"duplicate.image".to_owned()));
    let duplicate = decisions[1]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "duplicate.image")
        .expect("P2 repeats P1's image");
    assert_eq!(duplicate["evidence"]["duplicate_of"], "P1");
    assert_eq!(duplicate["field"], "images");
    assert_eq!(
        (duplicate["start"].as_u64(), duplicate["end"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(decisions[1]["action"], "suppress");
    // Another seller's copy is not a duplicate; unreachable images do not stop the decision.
    assert!(!kinds(&decisions[2]).contains(&"duplicate.image".to_owned()));
    assert_eq!(decisions[3]["listing_id"], "P4");

    let client = Client::new(&run.base);

    // Authentication.
    assert_eq!(client.send("get", "/v1/openapi.json", None, None).0, 200);
    assert_eq!(
        code(&client.send("get", "/v1/listings/P1/images", None, None)),
        (401, "unauthorized")
    );
    assert_eq!(
        code(&client.send("get", "/v1/listings/P1/images", Some("wrong"), None)),
        (401, "unauthorized")
    );
    assert_eq!(
        client
            .send("get", "/v1/listings/P1/images", Some("other-token"), None)
            .0,
        200
    );
    // The scheme's name in any case; nothing but a bearer token.
    assert_eq!(
        client
            .get_with_authorization("/v1/listings/P1/images", &format!("bearer {TOKEN}"))
            .0,
        200
    );
    assert_eq!(
        code(&client.get_with_authorization("/v1/listings/P1/images", &format!("Basic {TOKEN}"))),
        (401, "unauthorized")
    );
    assert_eq!(
        code(&client.get_with_authorization("/v1/listings/P1/images", "Bearer")),
        (401, "unauthorized")
    );

    // A listing's images.
    let (status, p1) = client.get("/v1/listings/P1/images");
    assert_eq!(status, 200);
    let p1_hash = p1["images"][0]["hash"].as_str().unwrap().to_owned();
    assert_eq!(p1_hash.len(), 16);
    assert_eq!(listing_ids(&p1["images"][0]["duplicates"]), ["P2"]);
    assert_eq!(
        code(&client.get("/v1/listings/P3/images")),
        (404, "not_found")
    );
    let (_, p5) = client.get("/v1/listings/P5/images");
    assert_eq!(p5["images"][0]["matchable"], false);
    let (_, p4) = client.get("/v1/listings/P4/images");
    assert_eq!(p4["images"].as_array().unwrap().len(), 1);

    // Search.
    assert_eq!(
        code(&client.post("/v1/images/search", json!({"hash": "zz"}))),
        (400, "bad_hash")
    );
    assert_eq!(
        code(&client.post("/v1/images/search", json!({"base64": "aGVsbG8="}))),
        (400, "bad_image")
    );
    assert_eq!(
        code(&client.post(
            "/v1/images/search",
            json!({"hash": p1_hash, "max_distance": 60})
        )),
        (400, "bad_distance")
    );
    for distance in [json!(-1), json!(2.5), json!("12"), json!(u64::MAX)] {
        assert_eq!(
            code(&client.post(
                "/v1/images/search",
                json!({"hash": p1_hash, "max_distance": distance})
            )),
            (400, "bad_distance"),
            "{distance}"
        );
    }
    assert_eq!(
        code(&client.post("/v1/images/search", json!({}))),
        (400, "bad_request")
    );
    assert_eq!(
        code(&client.post("/v1/images/search", json!({"hashh": "x"}))),
        (400, "bad_request")
    );
    let (status, found) = client.post("/v1/images/search", json!({"hash": p1_hash}));
    assert_eq!(status, 200);
    assert_eq!(listing_ids(&found["matches"]), ["P1", "P2"]);
    assert_eq!(found["matches"][0]["distance"], 0);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let (_, by_bytes) = client.post("/v1/images/search", json!({"base64": b64(&png(&coins))}));
    assert_eq!(listing_ids(&by_bytes["matches"]), ["P4"]);

    // A complaint with the mirror image of the photo: P1 and P2 match (P3 was deleted).
    let original = b64(&png(&camera.fliph()));
    let complaint = json!({"complaint_id": "C1", "rights_holder": "Acme Textiles",
                           "originals": [{"name": "camera-original.png", "base64": original}]});
    let (status, registered) = client.post("/v1/complaints", complaint.clone());
    assert_eq!(status, 201, "{registered}");
    assert_eq!(listing_ids(&registered["matches"]), ["P1", "P2"]);
    assert_eq!(registered["suppressed"], 2);
    assert_eq!(registered["matches"][0]["mirrored"], true);
    assert_eq!(
        code(&client.post("/v1/complaints", complaint)),
        (409, "complaint_exists")
    );
    assert_eq!(
        code(&client.post(
            "/v1/complaints",
            json!({"complaint_id": "C2", "rights_holder": "R", "originals": [{"base64": "!!"}]})
        )),
        (400, "bad_image")
    );
    assert_eq!(
        code(&client.post(
            "/v1/complaints",
            json!({"complaint_id": "C3", "rights_holder": "R",
                   "originals": [{"url": "http://169.254.169.254/latest/meta-data/"}]})
        )),
        (400, "image_unavailable")
    );

    // The suppressions are on the decision output at once.
    let decisions = wait_lines(&output, 8);
    let suppressed: Vec<&Value> = decisions[6..].iter().collect();
    let mut ids: Vec<&str> = suppressed
        .iter()
        .map(|d| d["listing_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["P1", "P2"]);
    let mut distances = Vec::new();
    for d in &suppressed {
        assert_eq!(d["event_id"], "complaint:C1");
        assert_eq!(
            (&d["action"], &d["points"]),
            (&json!("suppress"), &json!(0))
        );
        assert_eq!(
            d["appeal_deadline"],
            deadline_after(d["decided_at"].as_str().unwrap()),
            "{d}"
        );
        assert_eq!(d["findings"].as_array().unwrap().len(), 1);
        let finding = &d["findings"][0];
        assert_eq!(
            (&finding["kind"], &finding["rule"], &finding["field"]),
            (
                &json!("infringement"),
                &json!("images.infringement"),
                &json!("images")
            )
        );
        assert_eq!((&finding["start"], &finding["end"]), (&json!(0), &json!(1)));
        let evidence = &finding["evidence"];
        assert_eq!(
            (
                &evidence["complaint"],
                &evidence["rights_holder"],
                &evidence["original"]
            ),
            (
                &json!("C1"),
                &json!("Acme Textiles"),
                &json!("camera-original.png")
            )
        );
        assert_eq!(
            (&evidence["mirrored"], &evidence["max_distance"]),
            (&json!(true), &json!(12))
        );
        distances.push((
            d["listing_id"].as_str().unwrap(),
            evidence["distance"].clone(),
        ));
    }
    distances.sort_by_key(|(listing, _)| *listing);
    // The photo itself is its mirror image's mirror image; the half-size copy a little off.
    assert_eq!(distances, [("P1", json!(0)), ("P2", json!(2))]);

    let (status, matches) = client.get("/v1/complaints/C1/matches");
    assert_eq!(status, 200);
    assert_eq!(listing_ids(&matches["matches"]), ["P1", "P2"]);
    assert_eq!(matches["rights_holder"], "Acme Textiles");
    assert_eq!(
        code(&client.get("/v1/complaints/C9/matches")),
        (404, "not_found")
    );

    // Limits and unknown routes.
    let big = "x".repeat(1_200_000);
    assert_eq!(
        code(&client.post("/v1/images/search", json!({"base64": big}))),
        (413, "too_large")
    );
    assert_eq!(code(&client.get("/v1/nothing")), (404, "not_found"));
    assert_eq!(
        code(&client.get("/v1/complaints")),
        (405, "method_not_allowed")
    );
    // An id that is not UTF-8 once percent-decoded: a JSON error like any other.
    assert_eq!(
        code(&client.get("/v1/listings/%FF%FE/images")),
        (400, "bad_request")
    );

    let stderr = run.stop();
    let summary = stderr.iter().rev().find(|l| l.contains("events:")).unwrap();
    assert!(summary.contains("6 events"), "{summary}");
    assert!(summary.contains("1 fetch.address_not_allowed"), "{summary}");
    assert!(summary.contains("1 fetch.file"), "{summary}");

    // A second run replays the log: the complaint and the live listings are still there,
    // and a new listing with the photo is an infringement in the stream.
    let input = dir.path().join("more.jsonl");
    std::fs::write(&input, event(7, "P7", "S7", &[url("a.png")]) + "\n").unwrap();
    let output = dir.path().join("more-decisions.jsonl");
    let run = Run::start(dir.path(), &input, &output);
    let decisions = wait_lines(&output, 1);
    let infringement = decisions[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "infringement")
        .expect("P7 copies the complaint's original");
    assert_eq!(
        (
            &infringement["rule"],
            &infringement["field"],
            &infringement["text"]
        ),
        (
            &json!("images.infringement"),
            &json!("images"),
            &json!(url("a.png"))
        )
    );
    let evidence = &infringement["evidence"];
    assert_eq!(
        (
            &evidence["complaint"],
            &evidence["original"],
            &evidence["mirrored"]
        ),
        (&json!("C1"), &json!("camera-original.png"), &json!(true))
    );
    assert_eq!(
        (&evidence["distance"], &evidence["max_distance"]),
        (&json!(0), &json!(12))
    );
    assert_eq!(decisions[0]["action"], "suppress");
    // The stream stamps the deadline when the image check matches, the decision's time when
    // its batch began: two working days after it, on the same day, that moment apart.
    use time::format_description::well_known::Rfc3339;
    let deadline = decisions[0]["appeal_deadline"].as_str().unwrap();
    let expected = deadline_after(decisions[0]["decided_at"].as_str().unwrap());
    assert_eq!(deadline[..10], expected[..10], "{deadline} {expected}");
    assert!(deadline.ends_with("+08:00"), "{deadline}");
    let apart = time::OffsetDateTime::parse(&expected, &Rfc3339).unwrap()
        - time::OffsetDateTime::parse(deadline, &Rfc3339).unwrap();
    assert!(
        apart.abs() < time::Duration::minutes(1),
        "{deadline} {expected}"
    );
    let client = Client::new(&run.base);
    let (_, matches) = client.get("/v1/complaints/C1/matches");
    assert_eq!(listing_ids(&matches["matches"]), ["P1", "P2", "P7"]);
    assert_eq!(
        code(&client.get("/v1/listings/P3/images")),
        (404, "not_found")
    );
    run.stop();
}

#[test]
fn every_documented_route_is_served_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("images")).unwrap();
    let input = dir.path().join("events.jsonl");
    std::fs::write(&input, "").unwrap();
    let run = Run::start(dir.path(), &input, &dir.path().join("out.jsonl"));
    let client = Client::new(&run.base);
    let (_, document) = client.send("get", "/v1/openapi.json", None, None);
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routes: Vec<(String, String)> = loomguard::api::ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    routes.sort();
    assert_eq!(documented, routes);

    for (method, path) in &documented {
        let concrete = path.replace("{id}", "x");
        let body = (method == "post").then(|| json!({}));
        let (status, answer) = client.send(method, &concrete, Some(TOKEN), body);
        // Served by its handler: anything but the router's fallback or a wrong method.
        assert_ne!(status, 405, "{method} {path}");
        assert_ne!(
            answer["error"]["message"], "no such route",
            "{method} {path}"
        );
    }
    let (status, answer) = client.get("/v1/complaints");
    assert_eq!(status, 405, "{answer}");
    let (_, answer) = client.get("/v1/unknown");
    assert_eq!(answer["error"]["message"], "no such route");
    run.stop();
}

#[test]
fn the_api_answers_unavailable_until_the_image_index_is_replayed() {
    use loomguard::images::fetch::{FetchSettings, Fetcher};

    let rules = loomguard::rules::RuleSet::load(&repo().join("rules")).unwrap();
    let fetcher = Fetcher::new(FetchSettings::default()).unwrap();
    let hasher =
        loomguard::images::hasher::ImageHasher::new(fetcher.clone(), rules.images.decode, 10)
            .unwrap();
    let images = loomguard::checks::images::ImageCheck::new(
        hasher,
        rules.images.clone(),
        rules.holidays.clone(),
        loomguard::images::state::ImageState::new(),
        None,
    );
    let moderator = loomguard::moderator::Moderator::new(std::sync::Arc::new(rules), 1 << 20)
        .unwrap()
        .with_images(images.clone());
    // As a Kafka worker's index is before its topic is replayed.
    images.expect_replay();
    let emit: loomguard::api::Emit = std::sync::Arc::new(|_| {});
    let state = loomguard::api::ApiState {
        moderator: std::sync::Arc::new(moderator),
        images: images.clone(),
        fetcher,
        outlet: loomguard::api::Outlet::Local(emit),
        tokens: std::sync::Arc::new(vec![TOKEN.to_owned()]),
    };
    let router = loomguard::api::router(state, 1 << 20);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(loomguard::api::health::serve(listener, router, async {
        let _ = stopped.await;
    }));

    let client = Client::new(&base);
    assert_eq!(
        code(&client.get("/v1/listings/P1/images")),
        (503, "unavailable")
    );
    let complaint = json!({"complaint_id": "C1", "rights_holder": "R",
                           "originals": [{"base64": "aGVsbG8="}]});
    assert_eq!(
        code(&client.post("/v1/complaints", complaint)),
        (503, "unavailable")
    );
    // A wrong token is still refused as such.
    assert_eq!(
        code(&client.send("get", "/v1/listings/P1/images", Some("wrong"), None)),
        (401, "unauthorized")
    );

    images.set_replayed();
    assert_eq!(
        code(&client.get("/v1/listings/P1/images")),
        (404, "not_found")
    );
    let _ = stop.send(());
    runtime.block_on(server).unwrap().unwrap();
}
