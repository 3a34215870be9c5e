//! Fetching images from a real HTTP server on 127.0.0.1: loopback is refused unless allowed,
//! redirects are checked hop by hop, a trickling body is cut off by the total timeout, bodies
//! are held to the byte limit, and results are cached.

#[path = "common/http.rs"]
mod http;

use std::collections::HashMap;
use std::time::Duration;

use loomguard::images::fetch::{FetchSettings, Fetcher};
use loomguard::images::hasher::ImageHasher;
use loomguard::images::DecodeLimits;

fn photo() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/images/camera.png"
    ))
    .unwrap()
}

fn server() -> http::Server {
    let mut files = HashMap::new();
    files.insert("/photo.png".to_owned(), photo());
    files.insert("/copy.png".to_owned(), photo());
    files.insert("/notes.jpg".to_owned(), b"not an image".to_vec());
    http::start(files)
}

fn loopback() -> FetchSettings {
    FetchSettings {
        allow_loopback: true,
        total_timeout: Duration::from_secs(1),
        max_bytes: 1024 * 1024,
        ..FetchSettings::default()
    }
}

fn fetch(settings: FetchSettings, url: &str) -> Result<Vec<u8>, String> {
    let fetcher = Fetcher::new(settings).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fetcher.fetch(url))
        .map_err(|err| err.code().to_owned())
}

#[test]
fn loopback_is_refused_by_default_by_address_and_by_name() {
    let server = server();
    let by_address = fetch(FetchSettings::default(), &server.url("/photo.png"));
    assert_eq!(by_address, Err("address_not_allowed".to_owned()));
    // A name is checked after it is resolved.
    let by_name = format!("http://localhost:{}/photo.png", server.port);
    assert_eq!(
        fetch(FetchSettings::default(), &by_name),
        Err("address_not_allowed".to_owned())
    );
    assert_eq!(server.hits("/photo.png"), 0);
}

#[test]
fn a_url_no_request_can_be_made_of_is_a_bad_url() {
    let url = format!("https://{}.example.com/photo.jpg", "a".repeat(200_000));
    assert_eq!(
        fetch(FetchSettings::default(), &url),
        Err("bad_url".to_owned())
    );
}

#[test]
fn loopback_is_fetched_when_allowed() {
    let server = server();
    assert_eq!(fetch(loopback(), &server.url("/photo.png")), Ok(photo()));
    let by_name = format!("http://localhost:{}/photo.png", server.port);
    assert_eq!(fetch(loopback(), &by_name), Ok(photo()));
}

#[test]
fn every_redirect_is_checked() {
    let server = server();
    assert_eq!(
        fetch(loopback(), &server.url("/redirect-private")),
        Err("address_not_allowed".to_owned())
    );
    assert_eq!(
        fetch(loopback(), &server.url("/redirect-metadata")),
        Err("address_not_allowed".to_owned())
    );
    assert_eq!(fetch(loopback(), &server.url("/redirect-ok")), Ok(photo()));
    assert_eq!(
        fetch(loopback(), &server.url("/redirect-loop")),
        Err("too_many_redirects".to_owned())
    );
    assert_eq!(server.hits("/redirect-loop"), 6);
}

#[test]
fn a_trickling_server_is_cut_off_by_the_total_timeout() {
    // The server sends a byte every 100 ms for 10 s and then closes short of its declared
    // length: only the 1 s total timeout ends the fetch as a timeout.
    let server = server();
    assert_eq!(
        fetch(loopback(), &server.url("/trickle")),
        Err("timeout".to_owned())
    );
}

#[test]
fn a_proxy_from_the_environment_is_not_used() {
    // Through a proxy, the proxy would resolve and connect, past the checks of the
    // addresses: the fetcher ignores HTTP_PROXY and friends. Set in a child process, as the
    // variables are the whole process's.
    if std::env::var_os("LOOMGUARD_TEST_PROXY_CHILD").is_some() {
        let proxy = std::env::var("HTTP_PROXY").unwrap();
        let port = proxy.rsplit(':').next().unwrap();
        let by_name = format!("http://localhost:{port}/photo.png");
        assert_eq!(
            fetch(FetchSettings::default(), &by_name),
            Err("address_not_allowed".to_owned())
        );
        return;
    }
    let server = server();
    let proxy = format!("http://127.0.0.1:{}", server.port);
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_proxy_from_the_environment_is_not_used",
            "--nocapture",
        ])
        .env("LOOMGUARD_TEST_PROXY_CHILD", "1")
        .env("HTTP_PROXY", &proxy)
        .env("http_proxy", &proxy)
        .env("ALL_PROXY", &proxy)
        .status()
        .unwrap();
    assert!(status.success());
    // A proxy request names the whole URL on its request line.
    let by_name = format!("http://localhost:{}/photo.png", server.port);
    assert_eq!((server.hits(&by_name), server.hits("/photo.png")), (0, 0));
}

#[test]
fn bodies_are_held_to_the_byte_limit() {
    let server = server();
    assert_eq!(
        fetch(loopback(), &server.url("/declared-huge")),
        Err("too_large".to_owned())
    );
    assert_eq!(
        fetch(loopback(), &server.url("/chunked-huge")),
        Err("too_large".to_owned())
    );
    assert_eq!(
        fetch(loopback(), &server.url("/missing.jpg")),
        Err("http_status".to_owned())
    );
}

#[test]
fn the_hasher_reports_each_url_and_caches_by_url_and_content() {
    let server = server();
    let hasher = ImageHasher::new(
        Fetcher::new(loopback()).unwrap(),
        DecodeLimits::default(),
        100,
    )
    .unwrap();
    let urls = [
        server.url("/photo.png"),
        server.url("/copy.png"),
        server.url("/notes.jpg"),
        server.url("/redirect-private"),
        "https://img.example.invalid/a.jpg".to_owned(),
    ];
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let results = hasher.hash_all(&refs);
    let codes: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(_) => "ok".to_owned(),
            Err(problem) => problem.code(),
        })
        .collect();
    assert_eq!(
        codes,
        [
            "ok",
            "ok",
            "decode.unsupported_format",
            "fetch.address_not_allowed",
            "fetch.dns"
        ]
    );
    assert_eq!(results[0], results[1]);

    // Cached by URL: no second request.
    let again = hasher.hash_all(&refs[..1]);
    assert_eq!(again[0], results[0]);
    assert_eq!(server.hits("/photo.png"), 1);
    // A failure is not cached.
    hasher.hash_all(&refs[2..3]);
    assert_eq!(server.hits("/notes.jpg"), 2);
    // A name that did not resolve is not looked up again for a while.
    let dead: Vec<String> = (0..50)
        .map(|i| format!("https://img.example.invalid/{i}.jpg"))
        .collect();
    let dead: Vec<&str> = dead.iter().map(String::as_str).collect();
    let results = hasher.hash_all(&dead);
    for result in &results {
        assert_eq!(
            result.as_ref().unwrap_err().to_string(),
            "cannot fetch: cannot resolve img.example.invalid: did not resolve in the last 30s"
        );
    }
}

#[test]
fn no_more_fetches_than_the_concurrency_are_in_flight() {
    let server = server();
    let hasher = ImageHasher::new(
        Fetcher::new(FetchSettings {
            concurrency: 3,
            ..loopback()
        })
        .unwrap(),
        DecodeLimits::default(),
        10,
    )
    .unwrap();
    // Distinct URLs (the cache is by URL), every one the slow route.
    let urls: Vec<String> = (0..12)
        .map(|i| format!("{}?{i}", server.url("/slow")))
        .collect();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let results = hasher.hash_all(&urls);
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().code() == "fetch.http_status"));
    assert_eq!(server.most_slow_at_once(), 3);
}

#[test]
fn the_hasher_works_from_a_thread_of_another_runtime() {
    // As the Kafka worker calls it: inside `block_in_place` on a tokio worker thread.
    let server = server();
    let hasher = ImageHasher::new(
        Fetcher::new(loopback()).unwrap(),
        DecodeLimits::default(),
        10,
    )
    .unwrap();
    let url = server.url("/photo.png");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let results = runtime
        .block_on(async { tokio::task::block_in_place(|| hasher.hash_all(&[url.as_str()])) });
    assert!(results[0].is_ok(), "{:?}", results[0]);
}
