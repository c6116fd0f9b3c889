//! The HTTP routes: one table, from which both the axum router and the OpenAPI document are
//! built, so the two cannot drift apart.
//!
//! Each [`RouteSpec`] names a method, a path (with the contract's parameter names:
//! `{topic}`, `{p}`, `{group}`), an OpenAPI operation id (documented in `crate::openapi`) and
//! the handler. Unknown paths get `404 not_found` and known paths with a wrong method
//! `405 method_not_allowed`, both as JSON. A middleware counts every request by route and
//! status for `/metrics`.

pub mod admin;
pub mod groups;
pub mod produce;
pub mod read;
pub mod service;
pub mod topics;

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::auth::Auth;
use crate::dispatch::Dispatch;
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// One route of the API.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    /// The operation's id in the OpenAPI document (see `crate::openapi::operation`).
    pub operation_id: &'static str,
    pub handler: MethodRouter<AppState>,
}

impl RouteSpec {
    /// A route whose handler answers exactly `method` on `path`.
    pub fn new<H, T>(method: Method, path: &'static str, operation_id: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        RouteSpec { method, path, operation_id, handler: on(filter, handler) }
    }
}

/// Every route of the API.
pub fn table() -> Vec<RouteSpec> {
    use Method as M;
    vec![
        RouteSpec::new(M::GET, "/v1/health", "health", service::health),
        RouteSpec::new(M::GET, "/metrics", "metrics", service::metrics),
        RouteSpec::new(M::GET, "/v1/openapi.json", "openapi", service::openapi),
        RouteSpec::new(M::GET, "/v1/topics", "listTopics", topics::list),
        RouteSpec::new(M::POST, "/v1/topics", "createTopic", topics::create),
        RouteSpec::new(M::GET, "/v1/topics/{topic}", "describeTopic", topics::describe),
        RouteSpec::new(M::PATCH, "/v1/topics/{topic}", "updateTopic", topics::update),
        RouteSpec::new(M::DELETE, "/v1/topics/{topic}", "deleteTopic", topics::delete),
        RouteSpec::new(M::POST, produce::PRODUCE_PATH, "produce", produce::produce),
        RouteSpec::new(M::GET, "/v1/topics/{topic}/partitions/{p}/messages", "readMessages", read::read),
        RouteSpec::new(M::POST, "/v1/topics/{topic}/compact", "compactTopic", admin::compact),
        RouteSpec::new(M::GET, "/v1/groups", "listGroups", groups::list),
        RouteSpec::new(M::PUT, "/v1/groups/{group}", "putGroup", groups::put_config),
        RouteSpec::new(M::GET, "/v1/groups/{group}", "describeGroup", groups::describe),
        RouteSpec::new(M::DELETE, "/v1/groups/{group}", "deleteGroup", groups::delete),
        RouteSpec::new(M::POST, "/v1/groups/{group}/offsets", "commitOffsets", groups::commit),
        RouteSpec::new(M::GET, "/v1/groups/{group}/offsets", "getOffsets", groups::offsets),
        RouteSpec::new(M::POST, "/v1/groups/{group}/reset", "resetGroup", groups::reset),
        RouteSpec::new(M::POST, "/v1/groups/{group}/topics/{topic}/fetch", "fetch", groups::fetch),
        RouteSpec::new(M::POST, "/v1/groups/{group}/topics/{topic}/ack", "ack", groups::ack),
        RouteSpec::new(M::POST, "/v1/groups/{group}/topics/{topic}/nack", "nack", groups::nack),
        RouteSpec::new(M::POST, "/v1/groups/{group}/topics/{topic}/extend", "extend", groups::extend),
        RouteSpec::new(M::POST, "/v1/groups/{group}/topics/{topic}/reject", "reject", groups::reject),
    ]
}

/// The router for `routes`, with the JSON fallbacks, request metrics and, when `auth` is
/// given, the token check (`crate::auth::authorize`) in front of every route and fallback.
pub fn router_for(routes: Vec<RouteSpec>, state: AppState, auth: Option<Arc<Auth>>) -> Router {
    let doc = service::OpenApiDocument(std::sync::Arc::new(crate::openapi::document(&routes)));
    let mut router = Router::new();
    for r in routes {
        router = router.route(r.path, r.handler);
    }
    router = router.method_not_allowed_fallback(method_not_allowed).fallback(not_found);
    if let Some(auth) = auth {
        router = router.layer(middleware::from_fn_with_state(auth, crate::auth::authorize));
    }
    router
        .layer(middleware::from_fn_with_state(state.clone(), count_request))
        .layer(axum::Extension(doc))
        .with_state(state)
}

/// The request service for `routes`: [`router_for`], with produce requests served directly
/// (`crate::dispatch`, behind the same token check) when `routes` holds the produce route.
pub fn dispatch_for(routes: Vec<RouteSpec>, state: AppState, auth: Option<Arc<Auth>>) -> Dispatch {
    let direct = routes.iter().any(|r| r.operation_id == "produce");
    let router = router_for(routes, state.clone(), auth.clone());
    if direct {
        Dispatch::with_direct_produce(router, state, auth)
    } else {
        Dispatch::router_only(router)
    }
}

/// The API's router, anonymous (no tokens).
pub fn router(state: AppState) -> Router {
    router_for(table(), state, None)
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, format!("method {method} is not allowed on {}", uri.path()))
}

async fn count_request(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| route_label(p.as_str()));
    let method = method_label(request.method());
    let response = next.run(request).await;
    state.metrics.request(route, method, response.status().as_u16());
    response
}

/// The route table's template for a matched path (`unmatched` for one not in [`table`]), as a
/// static string so that counting a request allocates nothing.
fn route_label(matched: &str) -> &'static str {
    type Paths = std::collections::HashSet<&'static str, crate::metrics::LabelHashing>;
    static PATHS: std::sync::OnceLock<Paths> = std::sync::OnceLock::new();
    let paths = PATHS.get_or_init(|| table().iter().map(|r| r.path).collect());
    paths.get(matched).copied().unwrap_or("unmatched")
}

/// A method's name as a static string (`OTHER` for extension methods: the label set stays bounded).
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::CONNECT,
    ];
    const NAMES: [&str; 9] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"];
    KNOWN.iter().position(|m| m == method).map_or("OTHER", |i| NAMES[i])
}

/// Parses the `{p}` path parameter: `400 bad_request` unless a non-negative integer.
pub fn parse_partition(p: &str) -> Result<u64, ApiError> {
    crate::extract::decimal::<u64>(p)
        .ok_or_else(|| ApiError::bad_request(format!("partition must be a non-negative integer, got {p:?}")))
}
