//! The complaint API: HTTP and JSON for infringement-complaint handlers (handbook 3.2),
//! served by `loomguard run --listen ADDR` next to the stream.
//!
//! It shares the image index with the stream's ordered image check ([`ImageCheck`]):
//! registering a complaint hashes its originals, appends them to the image index log, and
//! suppresses every live listing already indexed whose image matches, writing those
//! decisions to the decision output at once (through [`ApiState::outlet`]: the run's output
//! file, or in Kafka mode the decision topic, the originals going to the image index topic
//! first, [`kafka`]). While the index is still being replayed from its topic, every route
//! that reads it answers 503. The routes are in
//! [`ROUTES`], from which the router is built and against which the OpenAPI document
//! ([`openapi`]) is tested.
//!
//! Every route but the OpenAPI document needs `Authorization: Bearer TOKEN` with one of the
//! configured tokens; with no token configured nothing is accessible. Errors are JSON
//! `{"error": {"code", "message"}}` with a stable code.

mod handlers;
pub mod health;
pub mod kafka;
pub mod openapi;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::checks::images::ImageCheck;
use crate::contract::Decision;
use crate::images::fetch::Fetcher;
use crate::moderator::Moderator;

/// Where the API's decisions go in file mode: the run's decision output.
pub type Emit = Arc<dyn Fn(Vec<Decision>) + Send + Sync>;

/// Where the API's results go.
#[derive(Clone)]
pub enum Outlet {
    /// File mode: decisions to the run's output; originals to the local image index log
    /// (through [`ImageCheck::record`]).
    Local(Emit),
    /// Kafka mode: decisions to the decision topic, originals to the image index topic.
    Kafka(Arc<kafka::KafkaOutlet>),
}

/// What the handlers share.
#[derive(Clone)]
pub struct ApiState {
    pub moderator: Arc<Moderator>,
    pub images: Arc<ImageCheck>,
    /// The API's own fetcher (a client of the API's runtime), for originals given by URL.
    pub fetcher: Fetcher,
    pub outlet: Outlet,
    pub tokens: Arc<Vec<String>>,
}

/// Settings of the API server.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Bearer tokens that may call the API; none means no access.
    pub tokens: Vec<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

/// Bodies above the default limit: originals travel as base64 (4/3 of their size).
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Every route: method, path (axum's syntax, which is OpenAPI's), what it does.
pub const ROUTES: [(&str, &str); 5] = [
    ("post", "/v1/complaints"),
    ("get", "/v1/complaints/{id}/matches"),
    ("post", "/v1/images/search"),
    ("get", "/v1/listings/{id}/images"),
    ("get", "/v1/openapi.json"),
];

/// The API's router, to be served alone or merged with another (a `/metrics` router, say).
pub fn router(state: ApiState, max_body_bytes: usize) -> Router {
    let mut authed = Router::new();
    for (method, path) in ROUTES {
        authed = match (method, path) {
            ("post", "/v1/complaints") => authed.route(path, post(handlers::register_complaint)),
            ("get", "/v1/complaints/{id}/matches") => {
                authed.route(path, get(handlers::complaint_matches))
            }
            ("post", "/v1/images/search") => authed.route(path, post(handlers::search)),
            ("get", "/v1/listings/{id}/images") => {
                authed.route(path, get(handlers::listing_images))
            }
            // Served without a token below.
            ("get", "/v1/openapi.json") => authed,
            _ => authed,
        };
    }
    let authed = authed.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        require_token,
    ));
    Router::new()
        .route(
            "/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .merge(authed)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "the route does not take this method",
            )
        })
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Serves `router` on `listener` until SIGTERM or SIGINT, on a runtime of its own.
pub fn serve(listener: std::net::TcpListener, router: Router) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("loomguard-api")
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    })
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("complaint API stopping");
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        // The scheme's name is case-insensitive (RFC 9110, 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let allowed = given.is_some_and(|given| {
        state
            .tokens
            .iter()
            .any(|token| !token.is_empty() && constant_time_eq(token.as_bytes(), given.as_bytes()))
    });
    if allowed && !state.images.is_replayed() {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the image index is still being replayed; try again shortly",
        )
        .into_response()
    } else if allowed {
        next.run(request).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
        .into_response()
    }
}

/// Compares without stopping at the first difference, so timing does not tell how much of a
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An error answer: a status and `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> ApiError {
        ApiError::bad_request("bad_request", rejection.body_text())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                rejection.body_text(),
            )
        } else {
            ApiError::bad_request("bad_request", rejection.body_text())
        }
    }
}
