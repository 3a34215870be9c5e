//! Fetch: the bytes of a listing image or a protected original, by URL.
//!
//! First step of the image flow. `https://` and `http://` go through one `reqwest` client
//! (rustls), `file://` reads under a configured root. Fetching is SSRF-safe by default:
//!
//! - every address a host name resolves to is checked by the client's own resolver, so a
//!   connection can only be made to a public address (no loopback, private, link-local,
//!   carrier-grade NAT, multicast or cloud metadata address); an IP literal in the URL is
//!   checked the same way, since it is never resolved;
//! - redirects are not followed by the client: each `Location` is checked like a new URL
//!   (scheme, allow-list, address) before it is fetched, at most [`MAX_REDIRECTS`] times;
//! - with an operator allow-list, only those hosts (and their subdomains) are fetched.
//!
//! Each fetch has a connect timeout and a total timeout covering redirects and the body, so a
//! server trickling bytes forever is cut off; the body is read up to a byte limit. A
//! semaphore bounds the fetches in flight.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;

/// How long a host name that did not resolve is not looked up again: a listing batch often
/// holds hundreds of images of one image host, and each lookup of a dead name costs a
/// round-trip to the resolver.
pub const UNRESOLVED_TTL: Duration = Duration::from_secs(30);

/// How images are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchSettings {
    pub connect_timeout: Duration,
    /// For the whole fetch: connecting, redirects and the body.
    pub total_timeout: Duration,
    pub max_bytes: u64,
    /// Fetches in flight at most.
    pub concurrency: usize,
    /// Hosts that may be fetched (with their subdomains); empty means any public host.
    pub allow_hosts: Vec<String>,
    /// The directory `file://` URLs must point under; `None` refuses every `file://` URL.
    pub file_root: Option<PathBuf>,
    /// Lets HTTP fetches reach loopback addresses (127.0.0.0/8, ::1). Only for tests and
    /// local development against a server on the same machine; never in production.
    pub allow_loopback: bool,
}

impl Default for FetchSettings {
    fn default() -> Self {
        FetchSettings {
            connect_timeout: Duration::from_secs(2),
            total_timeout: Duration::from_secs(10),
            max_bytes: 10 * 1024 * 1024,
            concurrency: 16,
            allow_hosts: Vec::new(),
            file_root: None,
            allow_loopback: false,
        }
    }
}

/// Why an image could not be fetched, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("not a URL: {0}")]
    BadUrl(String),
    #[error("scheme {0:?} is not fetched (https, http, file only)")]
    Scheme(String),
    #[error("host {0:?} is not on the allow-list")]
    HostNotAllowed(String),
    #[error("{0} is not a public address")]
    AddressNotAllowed(String),
    #[error("cannot resolve {host}: {message}")]
    Dns { host: String, message: String },
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects,
    #[error("a redirect without a usable Location")]
    BadRedirect,
    #[error("over the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the file is not under the image root: {0}")]
    OutsideRoot(String),
    #[error("cannot read the file: {0}")]
    File(String),
    #[error("the transfer failed: {0}")]
    Transfer(String),
}

impl FetchError {
    /// The code problems are counted and reported by.
    pub fn code(&self) -> &'static str {
        match self {
            FetchError::BadUrl(_) => "bad_url",
            FetchError::Scheme(_) => "scheme_not_allowed",
            FetchError::HostNotAllowed(_) => "host_not_allowed",
            FetchError::AddressNotAllowed(_) => "address_not_allowed",
            FetchError::Dns { .. } => "dns",
            FetchError::Connect(_) => "connect",
            FetchError::Timeout(_) => "timeout",
            FetchError::Status(_) => "http_status",
            FetchError::TooManyRedirects => "too_many_redirects",
            FetchError::BadRedirect => "bad_redirect",
            FetchError::TooLarge(_) => "too_large",
            FetchError::OutsideRoot(_) => "outside_root",
            FetchError::File(_) => "file",
            FetchError::Transfer(_) => "transfer",
        }
    }
}

/// Whether `ip` may be connected to: public unicast only, or loopback when allowed.
pub fn address_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return allow_loopback;
    }
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_link_local() // 169.254.0.0/16, cloud metadata among it
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || a >= 240) // reserved
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local, fd00:ec2::254 among it
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8)) // documentation
        }
    }
}

/// The client's resolver: resolves, then keeps only the addresses that may be connected to.
#[derive(Debug, Clone, Copy)]
struct SafeResolver {
    allow_loopback: bool,
}

/// A host that resolved only to addresses that may not be connected to.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses that are not public ({addresses})")]
struct Refused {
    host: String,
    addresses: String,
}

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {message}")]
struct Unresolved {
    host: String,
    message: String,
}

impl reqwest::dns::Resolve for SafeResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| address_allowed(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                let addresses = all
                    .iter()
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Box::new(Refused { host, addresses }) as _);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Fetches image bytes, within the settings.
#[derive(Debug, Clone)]
pub struct Fetcher {
    settings: Arc<FetchSettings>,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    file_root: Option<PathBuf>,
    /// Host names that did not resolve, until when they are not looked up again.
    unresolved: Arc<Mutex<HashMap<String, Instant>>>,
}

impl Fetcher {
    pub fn new(settings: FetchSettings) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.total_timeout)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment (HTTP_PROXY …) would resolve and connect for us,
            // past the resolver below: `http://localhost/` would reach whatever the proxy
            // reaches.
            .no_proxy()
            .dns_resolver(Arc::new(SafeResolver {
                allow_loopback: settings.allow_loopback,
            }))
            .user_agent(concat!("loomguard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| FetchError::Connect(err.to_string()))?;
        // Resolved once, so that a symlink or `..` cannot lead out of it.
        let file_root = settings
            .file_root
            .as_ref()
            .and_then(|root| root.canonicalize().ok());
        Ok(Fetcher {
            permits: Arc::new(Semaphore::new(settings.concurrency.max(1))),
            settings: Arc::new(settings),
            client,
            file_root,
            unresolved: Arc::default(),
        })
    }

    pub fn settings(&self) -> &FetchSettings {
        &self.settings
    }

    /// Fetches `url`, waiting for a free slot first.
    pub async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        let _permit = self.permits.acquire().await;
        let total = self.settings.total_timeout;
        match tokio::time::timeout(total, self.fetch_now(url)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(total)),
        }
    }

    fn fetch_now<'a>(
        &'a self,
        url: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>> {
        Box::pin(async move {
            let mut url =
                reqwest::Url::parse(url).map_err(|err| FetchError::BadUrl(err.to_string()))?;
            if url.scheme() == "file" {
                return self.read_file(&url);
            }
            for _ in 0..=MAX_REDIRECTS {
                self.check_url(&url)?;
                let host = url.host_str().unwrap_or("").to_owned();
                self.check_unresolved(&host)?;
                let response = match self.client.get(url.clone()).send().await {
                    Ok(response) => response,
                    Err(err) => {
                        let err = self.transport_error(&err);
                        if matches!(err, FetchError::Dns { .. }) {
                            self.lock_unresolved()
                                .insert(host, Instant::now() + UNRESOLVED_TTL);
                        }
                        return Err(err);
                    }
                };
                let status = response.status();
                if status.is_redirection() {
                    let location = response
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|l| l.to_str().ok())
                        .ok_or(FetchError::BadRedirect)?;
                    url = url.join(location).map_err(|_| FetchError::BadRedirect)?;
                    // A redirect to file:// is never followed.
                    if url.scheme() == "file" {
                        return Err(FetchError::Scheme("file".into()));
                    }
                    continue;
                }
                if !status.is_success() {
                    return Err(FetchError::Status(status.as_u16()));
                }
                return self.read_body(response).await;
            }
            Err(FetchError::TooManyRedirects)
        })
    }

    fn lock_unresolved(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.unresolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_unresolved(&self, host: &str) -> Result<(), FetchError> {
        let mut unresolved = self.lock_unresolved();
        match unresolved.get(host) {
            Some(&until) if until > Instant::now() => Err(FetchError::Dns {
                host: host.to_owned(),
                message: format!("did not resolve in the last {UNRESOLVED_TTL:?}"),
            }),
            Some(_) => {
                unresolved.remove(host);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Scheme, allow-list and (for an IP literal) address of an HTTP URL.
    fn check_url(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(FetchError::Scheme(other.to_owned())),
        }
        let host = match url.host() {
            Some(url::Host::Domain(domain)) => domain.to_ascii_lowercase(),
            Some(url::Host::Ipv4(ip)) => {
                self.check_address(IpAddr::V4(ip))?;
                ip.to_string()
            }
            Some(url::Host::Ipv6(ip)) => {
                self.check_address(IpAddr::V6(ip))?;
                ip.to_string()
            }
            None => return Err(FetchError::BadUrl("no host".into())),
        };
        let allow = &self.settings.allow_hosts;
        let listed = allow.iter().any(|allowed| {
            let allowed = allowed.trim_end_matches('.').to_ascii_lowercase();
            host == allowed || host.ends_with(&format!(".{allowed}"))
        });
        if !allow.is_empty() && !listed {
            return Err(FetchError::HostNotAllowed(host));
        }
        Ok(())
    }

    fn check_address(&self, ip: IpAddr) -> Result<(), FetchError> {
        if address_allowed(ip, self.settings.allow_loopback) {
            Ok(())
        } else {
            Err(FetchError::AddressNotAllowed(ip.to_string()))
        }
    }

    fn transport_error(&self, err: &reqwest::Error) -> FetchError {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(cause) = source {
            if let Some(refused) = cause.downcast_ref::<Refused>() {
                return FetchError::AddressNotAllowed(format!(
                    "{} ({})",
                    refused.host, refused.addresses
                ));
            }
            if let Some(unresolved) = cause.downcast_ref::<Unresolved>() {
                return FetchError::Dns {
                    host: unresolved.host.clone(),
                    message: unresolved.message.clone(),
                };
            }
            source = cause.source();
        }
        let chain = error_chain(err);
        if err.is_timeout() {
            FetchError::Timeout(self.settings.total_timeout)
        } else if chain.contains("dns error") {
            // hyper-util's name for a failed resolution; the resolver's own error does not
            // always survive its wrapping.
            FetchError::Dns {
                host: err
                    .url()
                    .and_then(|u| u.host_str())
                    .unwrap_or("")
                    .to_owned(),
                message: chain,
            }
        } else if err.is_connect() {
            FetchError::Connect(chain)
        } else if err.is_builder() {
            // No request can be made of the URL, though it parsed: a host of 200,000
            // characters, say.
            FetchError::BadUrl(chain)
        } else {
            FetchError::Transfer(chain)
        }
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let limit = self.settings.max_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| self.transport_error(&err))?
        {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn read_file(&self, url: &reqwest::Url) -> Result<Vec<u8>, FetchError> {
        let Some(root) = &self.file_root else {
            return Err(FetchError::OutsideRoot(
                "no image root is configured".into(),
            ));
        };
        let path = url
            .to_file_path()
            .map_err(|_| FetchError::BadUrl(url.to_string()))?;
        let path = path
            .canonicalize()
            .map_err(|err| FetchError::File(format!("{}: {err}", path.display())))?;
        if !path.starts_with(root) {
            return Err(FetchError::OutsideRoot(path.display().to_string()));
        }
        let file = std::fs::File::open(&path)
            .map_err(|err| FetchError::File(format!("{}: {err}", path.display())))?;
        let limit = self.settings.max_bytes;
        let mut bytes = Vec::new();
        use std::io::Read;
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|err| FetchError::File(format!("{}: {err}", path.display())))?;
        if bytes.len() as u64 > limit {
            return Err(FetchError::TooLarge(limit));
        }
        Ok(bytes)
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_allowed_by_default() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
        ];
        for ip in refused {
            assert!(!address_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(address_allowed(ip.parse().unwrap(), false), "{ip}");
        }
        assert!(address_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(!address_allowed("10.0.0.1".parse().unwrap(), true));
    }

    fn fetcher(settings: FetchSettings) -> Fetcher {
        Fetcher::new(settings).unwrap()
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn urls_are_refused_before_any_connection() {
        let f = fetcher(FetchSettings {
            allow_hosts: vec!["img.example.com".into()],
            ..FetchSettings::default()
        });
        let code = |url: &str| block_on(f.fetch(url)).unwrap_err().code();
        assert_eq!(code("ftp://img.example.com/a.jpg"), "scheme_not_allowed");
        assert_eq!(code("https://evil.example.net/a.jpg"), "host_not_allowed");
        assert_eq!(code("http://169.254.169.254/latest"), "address_not_allowed");
        assert_eq!(code("http://[::1]:8080/a.jpg"), "address_not_allowed");
        assert_eq!(code("not a url"), "bad_url");
        assert_eq!(code("file:///etc/passwd"), "outside_root");
    }

    #[test]
    fn files_are_read_under_the_root_only_and_within_the_limit() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("a.jpg"), b"12345").unwrap();
        std::fs::write(root.path().join("big.jpg"), vec![0u8; 100]).unwrap();
        std::fs::write(outside.path().join("b.jpg"), b"x").unwrap();
        let f = fetcher(FetchSettings {
            file_root: Some(root.path().to_owned()),
            max_bytes: 50,
            ..FetchSettings::default()
        });
        let url = |p: &std::path::Path| reqwest::Url::from_file_path(p).unwrap().to_string();
        assert_eq!(
            block_on(f.fetch(&url(&root.path().join("a.jpg")))).unwrap(),
            b"12345"
        );
        let escape = format!(
            "{}/../{}/b.jpg",
            url(root.path()),
            outside.path().file_name().unwrap().to_string_lossy()
        );
        assert_eq!(
            block_on(f.fetch(&escape)).unwrap_err().code(),
            "outside_root"
        );
        assert_eq!(
            block_on(f.fetch(&url(&outside.path().join("b.jpg"))))
                .unwrap_err()
                .code(),
            "outside_root"
        );
        assert_eq!(
            block_on(f.fetch(&url(&root.path().join("big.jpg"))))
                .unwrap_err()
                .code(),
            "too_large"
        );
        assert_eq!(
            block_on(f.fetch(&url(&root.path().join("none.jpg"))))
                .unwrap_err()
                .code(),
            "file"
        );
    }
}
