//! The operators' routes: `/metrics`, `/healthz` and `/readyz`.
//!
//! They sit outside the data flow: the pipeline and the Kafka worker report into
//! [`crate::metrics`], and these routes only read. [`router`] builds an `axum::Router` from a
//! [`HealthState`]; `run --listen` serves it alone, or merged with the complaint API's routes
//! ([`super::router`]) on the same listener. [`serve`] runs a router on a bound listener until
//! told to stop.
//!
//! - `/metrics`: the Prometheus text exposition of every metric.
//! - `/healthz`: 200 while the process answers at all.
//! - `/readyz`: 200 when the service can decide (rules loaded and, in Kafka mode, partitions
//!   assigned), otherwise 503 with a JSON body naming what is missing.

use std::future::Future;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use crate::metrics::Metrics;

/// What the routes read.
#[derive(Debug, Clone, Copy)]
pub struct HealthState {
    pub metrics: &'static Metrics,
    /// In Kafka mode the service is ready only with partitions assigned.
    pub kafka: bool,
}

impl HealthState {
    /// What keeps the service from being ready; empty when it is ready.
    pub fn missing(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if !self.metrics.rules_loaded() {
            missing.push("rules");
        }
        if self.kafka && self.metrics.assigned_partitions() <= 0 {
            missing.push("partitions");
        }
        missing
    }
}

/// The routes of this module over `state`.
pub fn router<S: Clone + Send + Sync + 'static>(state: HealthState) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(state): State<HealthState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "alive": true }))
}

async fn readyz(State(state): State<HealthState>) -> impl IntoResponse {
    let missing = state.missing();
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(serde_json::json!({ "ready": missing.is_empty(), "missing": missing })),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Metrics {
        Box::leak(Box::new(Metrics::new()))
    }

    #[test]
    fn not_ready_without_rules_or_partitions() {
        let metrics = leaked();
        let state = HealthState {
            metrics,
            kafka: true,
        };
        assert_eq!(state.missing(), vec!["rules", "partitions"]);
        metrics.set_rules_version("v1");
        assert_eq!(state.missing(), vec!["partitions"]);
        metrics.set_assigned_partitions(3);
        assert!(state.missing().is_empty());
    }

    #[test]
    fn file_mode_needs_only_rules() {
        let metrics = leaked();
        metrics.set_rules_version("v1");
        let state = HealthState {
            metrics,
            kafka: false,
        };
        assert!(state.missing().is_empty());
    }
}
