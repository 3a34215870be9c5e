//! A small HTTP/1.1 server on 127.0.0.1 for the fetch tests: fixed routes, including hostile
//! ones (a redirect to a private address, a body that trickles, a slow answer). Every connection is served
//! on its own thread and each route ends by itself (the trickle after ten seconds).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Requests of `/slow` being served now, and the most there ever were at once.
    slow: Arc<Mutex<(usize, usize)>>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The most requests of `/slow` the server was serving at once.
    #[allow(dead_code)] // only tests/image_fetch.rs asks
    pub fn most_slow_at_once(&self) -> usize {
        self.slow.lock().unwrap().1
    }

    /// Requests served for `path` so far.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// Starts the server with `files`: path → body served as 200.
pub fn start(files: HashMap<String, Vec<u8>>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(Mutex::new(HashMap::new()));
    let files = Arc::new(files);
    let counter = hits.clone();
    let slow = Arc::new(Mutex::new((0, 0)));
    let in_flight = slow.clone();
    let served = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            // Bounded: no test sends more than a few hundred requests.
            if served.fetch_add(1, Ordering::Relaxed) > 1000 {
                return;
            }
            let files = files.clone();
            let counter = counter.clone();
            let in_flight = in_flight.clone();
            std::thread::spawn(move || handle(stream, &files, &counter, &in_flight, port));
        }
    });
    Server { port, hits, slow }
}

fn handle(
    mut stream: TcpStream,
    files: &HashMap<String, Vec<u8>>,
    hits: &Mutex<HashMap<String, usize>>,
    slow: &Mutex<(usize, usize)>,
    port: u16,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => break,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;

    let redirect = |stream: &mut TcpStream, location: &str| {
        let _ = write!(
            stream,
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    };
    // Routed without the query, which tests add to make URLs distinct.
    match path.split('?').next().unwrap_or_default() {
        "/redirect-private" => redirect(&mut stream, "http://10.0.0.1/photo.png"),
        "/redirect-metadata" => redirect(&mut stream, "http://169.254.169.254/latest/meta-data/"),
        "/redirect-ok" => redirect(&mut stream, &format!("http://127.0.0.1:{port}/photo.png")),
        "/redirect-loop" => redirect(&mut stream, "/redirect-loop"),
        "/trickle" => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n"
            );
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if stream.write_all(b"\xff").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        // Answers a 404 after 300 ms, counting how many it is answering at once.
        "/slow" => {
            {
                let mut slow = slow.lock().unwrap();
                slow.0 += 1;
                slow.1 = slow.1.max(slow.0);
            }
            std::thread::sleep(Duration::from_millis(300));
            slow.lock().unwrap().0 -= 1;
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        "/declared-huge" => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\nConnection: close\r\n\r\n"
            );
        }
        "/chunked-huge" => {
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            );
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..64 {
                if write!(stream, "{:x}\r\n", chunk.len()).is_err()
                    || stream.write_all(&chunk).is_err()
                    || stream.write_all(b"\r\n").is_err()
                {
                    return;
                }
            }
            let _ = stream.write_all(b"0\r\n\r\n");
        }
        other => match files.get(other) {
            Some(body) => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(body);
            }
            None => {
                let _ = write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        },
    }
    let _ = stream.flush();
}
