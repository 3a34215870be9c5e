//! `loomguard run --listen 127.0.0.1:0` as a child process, fed on stdin, and a minimal HTTP
//! client for its `/metrics`, `/healthz` and `/readyz`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One sample of a scrape: metric name and labels.
pub type Series = (String, BTreeMap<String, String>);

/// A parsed scrape.
#[derive(Debug, Default)]
pub struct Scrape {
    pub samples: BTreeMap<Series, f64>,
    pub text: String,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut samples = BTreeMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("a sample line has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            let value: f64 = value.parse().expect("a sample's value is a number");
            samples.insert((name.to_owned(), labels), value);
        }
        Scrape {
            samples,
            text: text.to_owned(),
        }
    }

    /// The value of `name` with exactly `labels`; panics when there is no such sample.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in\n{}", self.text))
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples.get(&(name.to_owned(), labels)).copied()
    }

    /// The sum over every sample of `name`, whatever its labels.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|(_, v)| v)
            .sum()
    }

    /// Every metric name in the scrape.
    pub fn names(&self) -> std::collections::BTreeSet<String> {
        self.samples.keys().map(|(n, _)| n.clone()).collect()
    }
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    // Label values here never hold a comma or an escaped quote (versions, actions, kinds).
    text.split("\",")
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once("=\"").expect("label is key=\"value\"");
            (key.to_owned(), value.trim_end_matches('"').to_owned())
        })
        .collect()
}

/// A running `loomguard run --listen 127.0.0.1:0 --input -`.
pub struct Service {
    child: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Service {
    /// Starts `loomguard run --input - --listen 127.0.0.1:0` with `args` more, and waits
    /// until it logs the address it listens on.
    pub fn start(args: &[&str]) -> Service {
        Service::spawn(&["--input", "-"], args)
    }

    /// Starts `loomguard run --listen 127.0.0.1:0` in Kafka mode: `args` name the brokers.
    pub fn start_kafka(args: &[&str]) -> Service {
        Service::spawn(&[], args)
    }

    /// [`Service::start_kafka`] with images checked and the complaint API served, its bearer
    /// token `token`.
    pub fn start_kafka_with_images(token: &str, args: &[&str]) -> Service {
        Service::spawn_with(&[], args, &[("LOOMGUARD_API_TOKENS", token)])
    }

    fn spawn(input: &[&str], args: &[&str]) -> Service {
        // Without images the listener serves the operators' routes alone and closes with
        // the run; the complaint API has tests of its own (tests/api.rs).
        let mut input = input.to_vec();
        input.push("--no-images");
        Service::spawn_with(&input, args, &[])
    }

    fn spawn_with(input: &[&str], args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loomguard"))
            .current_dir(super::repo())
            .env("LOOMGUARD_LOG", "info")
            .envs(env.iter().copied())
            .args(["run", "--listen", "127.0.0.1:0", "--no-progress"])
            .args(input)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("loomguard starts");
        let stdin = child.stdin.take();
        let stderr = child.stderr.take().expect("stderr is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening") {
                    if let Some(addr) = line.split("addr=").nth(1) {
                        let addr = addr.split_whitespace().next().unwrap_or_default();
                        let _ = addr_tx.send(addr.to_owned());
                    }
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listening line; stderr: {:?}", lines.lock().unwrap()));
        Service {
            child,
            stdin,
            addr: addr.parse().expect("the logged address parses"),
            stderr: lines,
        }
    }

    /// Writes lines to the service's stdin.
    pub fn send(&mut self, lines: &[String]) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        for line in lines {
            stdin.write_all(line.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        stdin.flush().unwrap();
    }

    /// `GET path`: the status code and the body.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request(&format!("GET {path} HTTP/1.0\r\nHost: loomguard\r\n\r\n"))
    }

    /// `POST path` with a JSON body and a bearer token: the status code and the body.
    pub fn post(&self, path: &str, token: &str, body: &serde_json::Value) -> (u16, String) {
        let body = body.to_string();
        self.request(&format!(
            "POST {path} HTTP/1.0\r\nHost: loomguard\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
    }

    /// `GET path` with a bearer token.
    pub fn get_authorized(&self, path: &str, token: &str) -> (u16, String) {
        self.request(&format!(
            "GET {path} HTTP/1.0\r\nHost: loomguard\r\nAuthorization: Bearer {token}\r\n\r\n"
        ))
    }

    fn request(&self, request: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).expect("the listener accepts");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        (status, body.to_owned())
    }

    /// Polls `/readyz` until it answers 200 (at most 60 s).
    pub fn wait_ready(&self) {
        let started = Instant::now();
        while self.get("/readyz").0 != 200 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not ready within 60 s; stderr: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    /// Scrapes until `ready` holds (at most 60 s) and returns that scrape.
    pub fn wait_for(&self, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
        let started = Instant::now();
        loop {
            let scrape = self.scrape();
            if ready(&scrape) {
                return scrape;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "waited 60 s for {what}; last scrape:\n{}\nstderr: {:?}",
                scrape.text,
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first stderr line that contains `needle`, waiting for it at most `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let started = Instant::now();
        loop {
            if let Some(line) = self
                .stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains(needle))
            {
                return line.clone();
            }
            assert!(
                started.elapsed() < timeout,
                "no line with {needle:?} within {timeout:?}: {:?}",
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal to the service.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Closes stdin and waits for the exit at most `limit`; `None` if it has not exited.
    pub fn finish_within(mut self, limit: Duration) -> Option<ExitStatus> {
        drop(self.stdin.take());
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Closes stdin and waits for the exit.
    pub fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        self.child.wait().expect("loomguard exits")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // A failed assertion leaves the child running; do not leak it.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
