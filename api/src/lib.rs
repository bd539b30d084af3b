//! Tenantry's HTTP API: axum over the service library.
//!
//! * [`build_app`] turns an [`AppState`] (a connected [`service::Tenantry`] plus
//!   [`ApiConfig`]) into the router: the route table of [`routes::ROUTES`] behind request
//!   ids, tracing, a body limit, a timeout and problem-document errors.
//! * [`serve`] runs it on a listener until a shutdown future completes, then drains; [`run`]
//!   does the same for an [`AppState`] and then writes the meter's last events.
//! * [`shutdown_signal`] completes on Ctrl-C or SIGTERM.
//!
//! Authentication lives in [`auth`]: tenant routes take the [`auth::Tenant`] extractor, which
//! only the authentication middleware can satisfy, so the tenant of every request comes from
//! its credential.
#![warn(missing_docs)]

pub mod auth;
pub mod client_addr;
pub mod config;
pub mod cors;
pub mod extract;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod readiness;
pub mod request_id;
pub mod routes;
pub mod security_headers;
pub mod state;

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{StatusCode, header};
use axum::middleware::{from_fn, from_fn_with_state, map_request};
use tokio::net::TcpListener;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use config::{ApiConfig, ConfigError};
pub use state::AppState;

use crate::routes::Access;

/// The request's span: method, path, request id, and the tenant once authenticated.
fn request_span(request: &Request) -> tracing::Span {
    let request_id = request
        .headers()
        .get(request_id::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
        tenant_id = tracing::field::Empty,
    )
}

/// The application: every route of [`routes::ROUTES`] with its middleware.
///
/// From the outside in: sensitive headers are hidden from logs; a missing or unacceptable
/// `x-request-id` is replaced by a generated one; the request span opens (with the id); the id
/// is copied to the response; every error becomes a problem document carrying the id; the
/// timeout answers 503; the body limit answers 413; the client's address is resolved; then
/// authentication per route group (the unauthenticated routes have a per-address limit
/// instead). Outermost: the security headers on every response, and CORS when configured.
pub fn build_app(state: AppState) -> Router {
    let config = state.config().clone();
    let public = routes::routes_for(Access::Public).route_layer(from_fn_with_state(
        state.clone(),
        auth::rate_limit::limit_address,
    ));
    let tenant = routes::routes_for(Access::Tenant)
        .route_layer(from_fn_with_state(state.clone(), auth::require_tenant));
    let admin = routes::routes_for(Access::Admin).route_layer(from_fn_with_state(
        state.clone(),
        auth::admin::require_admin,
    ));
    let app = public
        .merge(tenant)
        .merge(admin)
        .layer(from_fn_with_state(state.clone(), client_addr::attach))
        .with_state(state);
    let request_id = request_id::header_name();
    // Each `layer` wraps everything before it: read this list bottom-up for the order a
    // request meets them.
    let app = app
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(from_fn(problem::finish_problems))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(request_id, request_id::NewRequestId))
        .layer(map_request(request_id::drop_unacceptable))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
        ]));
    let app = match cors::layer(&config.cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.layer(from_fn(security_headers::add))
}

/// Serves `app` on `listener` until `shutdown` completes, then stops accepting and waits for
/// the requests in flight. Each request knows its peer's address (for
/// [`client_addr::ClientAddr`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Serves the app of `state` until `shutdown` completes, drains the requests in flight, then
/// writes the meter's last events: what the binary runs, so SIGTERM and Ctrl-C lose no usage
/// event of a completed request.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let served = serve(listener, build_app(state.clone()), shutdown).await;
    state.meter().shutdown().await;
    served
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining requests in flight");
}
