//! The service hyper calls for every request: `POST /v1/topics/{topic}/messages` goes straight
//! to the produce handler, everything else through the axum router.
//!
//! Produce is the one route whose per-request overhead decides a benchmark users compare
//! (one message per request, `docs/BENCHMARKS.md`): through the router, its layers (request
//! counting, the OpenAPI document's extension) and the matched-path bookkeeping cost about 25
//! heap allocations and a fifth of the instructions of a whole request. The direct path does
//! exactly what the router would for that route and nothing else: it counts the request under
//! the same route label, and hands the same handler the topic name axum would have extracted.
//! It applies only when every step is known to be identical:
//! - anonymous servers (with tokens, the router's `crate::auth::authorize` layer must run);
//! - a topic segment without `%` (so percent-decoding cannot change it) and without a `/`;
//! - a route table that holds the produce route (tests build routers from partial tables).
//!
//! Anything else, including another method on the same path, goes to the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use tower::ServiceExt as _;

use crate::routes::produce::{produce_to, PRODUCE_PATH};
use crate::state::AppState;

/// The request service: the router, and what the direct produce path needs (see the module
/// documentation for when it applies).
#[derive(Clone)]
pub struct Dispatch {
    router: Router,
    /// The state for the direct produce path; `None` turns the path off.
    direct: Option<AppState>,
}

impl Dispatch {
    /// Serves everything through `router`.
    pub fn router_only(router: Router) -> Self {
        Dispatch { router, direct: None }
    }

    /// Serves produce requests directly with `state`, everything else through `router`.
    /// The caller guarantees the conditions of the module documentation: no token check, and
    /// a router whose produce route is [`produce_to`] with this state.
    pub fn with_direct_produce(router: Router, state: AppState) -> Self {
        Dispatch { router, direct: Some(state) }
    }
}

/// The topic of a request the direct produce path may serve, if it is one.
fn direct_topic<'a>(method: &Method, uri: &'a Uri) -> Option<&'a str> {
    if method != Method::POST {
        return None;
    }
    let topic = uri.path().strip_prefix("/v1/topics/")?.strip_suffix("/messages")?;
    let plain = !topic.is_empty() && !topic.bytes().any(|b| b == b'%' || b == b'/');
    plain.then_some(topic)
}

type BoxedReply = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for Dispatch {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedReply;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        if let Some(state) = &self.direct {
            if let Some(topic) = direct_topic(request.method(), request.uri()) {
                let (state, topic) = (state.clone(), topic.to_string());
                return Box::pin(async move {
                    let response = produce_to(&state, topic, request.map(Body::new)).await.into_response();
                    state.metrics.request(PRODUCE_PATH, "POST", response.status().as_u16());
                    Ok(response)
                });
            }
        }
        let request: Request = request.map(Body::new);
        Box::pin(self.router.clone().oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic_of(method: Method, uri: &str) -> Option<String> {
        let uri: Uri = uri.parse().unwrap();
        direct_topic(&method, &uri).map(str::to_string)
    }

    #[test]
    fn only_plain_produce_paths_are_direct() {
        assert_eq!(topic_of(Method::POST, "/v1/topics/orders/messages").as_deref(), Some("orders"));
        assert_eq!(topic_of(Method::POST, "/v1/topics/a.b_c-9/messages?x=1").as_deref(), Some("a.b_c-9"));
        assert_eq!(topic_of(Method::GET, "/v1/topics/orders/messages"), None);
        assert_eq!(topic_of(Method::POST, "/v1/topics//messages"), None);
        assert_eq!(topic_of(Method::POST, "/v1/topics/a%2Fb/messages"), None);
        assert_eq!(topic_of(Method::POST, "/v1/topics/a/b/messages"), None);
        assert_eq!(topic_of(Method::POST, "/v1/topics/orders/messages/"), None);
        assert_eq!(topic_of(Method::POST, "/v1/topics/orders"), None);
    }
}
