//! The parallel half of the image check: every image URL of a batch fetched, decoded and
//! hashed, before the batch reaches the ordered half ([`crate::checks::images`]).
//!
//! Fetches run on a small tokio runtime of their own, at most the fetcher's concurrency at a
//! time; decoding and hashing run on rayon's workers. URLs are taken a window at a time, so
//! that the bytes held in memory stay bounded (window × byte limit) however large the batch.
//! Results are cached by URL (listing images are immutable by URL on the platform's image
//! store) and by content hash (the same bytes under another URL are not decoded again); only
//! successes are cached, so a transient failure is tried again next time.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::decode::{DecodeError, DecodeLimits};
use super::fetch::{FetchError, Fetcher};
use super::hash::Perceptual;

/// URLs fetched together before their bytes are decoded.
const WINDOW: usize = 64;

/// Why an image has no hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageProblem {
    #[error("cannot fetch: {0}")]
    Fetch(#[from] FetchError),
    #[error("cannot decode: {0}")]
    Decode(#[from] DecodeError),
}

impl ImageProblem {
    /// `fetch.<code>` or `decode.<code>`, the key problems are counted under.
    pub fn code(&self) -> String {
        match self {
            ImageProblem::Fetch(err) => format!("fetch.{}", err.code()),
            ImageProblem::Decode(err) => format!("decode.{}", err.code()),
        }
    }
}

pub type HashResult = Result<Perceptual, ImageProblem>;

/// Fetches, decodes and hashes images, with a cache.
#[derive(Debug)]
pub struct ImageHasher {
    fetcher: Fetcher,
    runtime: tokio::runtime::Runtime,
    limits: DecodeLimits,
    cache: Mutex<Cache>,
}

impl ImageHasher {
    pub fn new(
        fetcher: Fetcher,
        limits: DecodeLimits,
        cache_entries: usize,
    ) -> std::io::Result<ImageHasher> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("loomguard-fetch")
            .enable_all()
            .build()?;
        Ok(ImageHasher {
            fetcher,
            runtime,
            limits,
            cache: Mutex::new(Cache::new(cache_entries)),
        })
    }

    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    pub fn limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Hashes every URL, in order. A URL named more than once is fetched once: failures are
    /// not cached, and a listing naming one URL that never answers 32 times held its batch
    /// for 32 fetch timeouts.
    pub fn hash_all(&self, urls: &[&str]) -> Vec<HashResult> {
        let mut results: Vec<Option<HashResult>> = vec![None; urls.len()];
        let mut missing = Vec::new();
        // (a repeated URL's place, the place of its first mention)
        let mut repeats = Vec::new();
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let mut first: HashMap<&str, usize> = HashMap::new();
            for (i, &url) in urls.iter().enumerate() {
                if let Some(hit) = cache.by_url.get(url) {
                    results[i] = Some(Ok(*hit));
                } else if let Some(&at) = first.get(url) {
                    repeats.push((i, at));
                } else {
                    first.insert(url, i);
                    missing.push(i);
                }
            }
        }

        for window in missing.chunks(WINDOW) {
            // Spawned onto the fetch runtime and waited for over a channel rather than with
            // `block_on`, which would panic on a thread of another runtime (the Kafka worker
            // decides batches inside tokio's `block_in_place`).
            let (done, results_in) = std::sync::mpsc::channel();
            for (slot, &i) in window.iter().enumerate() {
                let fetcher = self.fetcher.clone();
                let url = urls[i].to_owned();
                let done = done.clone();
                self.runtime.spawn(async move {
                    let _ = done.send((slot, fetcher.fetch(&url).await));
                });
            }
            drop(done);
            let mut fetched: Vec<Result<Vec<u8>, FetchError>> = (0..window.len())
                .map(|_| Err(FetchError::Transfer("the fetch task ended early".into())))
                .collect();
            for (slot, result) in results_in {
                fetched[slot] = result;
            }
            let hashed: Vec<HashResult> = fetched
                .into_par_iter()
                .map(|bytes| self.hash_fetched(bytes))
                .collect();
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            for (&i, result) in window.iter().zip(hashed) {
                if let Ok(hash) = &result {
                    cache.insert_url(urls[i].to_owned(), *hash);
                }
                results[i] = Some(result);
            }
        }
        for (i, at) in repeats {
            results[i] = results[at].clone();
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(FetchError::Transfer("not fetched".into()).into())))
            .collect()
    }

    /// Decodes and hashes fetched bytes (or passes the fetch error on).
    fn hash_fetched(&self, bytes: Result<Vec<u8>, FetchError>) -> HashResult {
        let bytes = bytes?;
        let digest: [u8; 32] = Sha256::digest(&bytes).into();
        if let Some(hit) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_content
            .get(&digest)
        {
            return Ok(*hit);
        }
        let hash = super::hash_bytes(&bytes, &self.limits)?;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert_content(digest, hash);
        Ok(hash)
    }

    /// Hashes uploaded bytes (the complaint and search APIs), through the content cache.
    pub fn hash_upload(&self, bytes: Vec<u8>) -> HashResult {
        self.hash_fetched(Ok(bytes))
    }
}

/// Two bounded maps, each forgetting its oldest entries first.
#[derive(Debug)]
struct Cache {
    capacity: usize,
    by_url: HashMap<String, Perceptual>,
    url_order: VecDeque<String>,
    by_content: HashMap<[u8; 32], Perceptual>,
    content_order: VecDeque<[u8; 32]>,
}

impl Cache {
    fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            by_url: HashMap::new(),
            url_order: VecDeque::new(),
            by_content: HashMap::new(),
            content_order: VecDeque::new(),
        }
    }

    fn insert_url(&mut self, url: String, hash: Perceptual) {
        if self.capacity == 0 {
            return;
        }
        if self.by_url.insert(url.clone(), hash).is_none() {
            self.url_order.push_back(url);
        }
        while self.by_url.len() > self.capacity {
            if let Some(old) = self.url_order.pop_front() {
                self.by_url.remove(&old);
            }
        }
    }

    fn insert_content(&mut self, digest: [u8; 32], hash: Perceptual) {
        if self.capacity == 0 {
            return;
        }
        if self.by_content.insert(digest, hash).is_none() {
            self.content_order.push_back(digest);
        }
        while self.by_content.len() > self.capacity {
            if let Some(old) = self.content_order.pop_front() {
                self.by_content.remove(&old);
            }
        }
    }
}
