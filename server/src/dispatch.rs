//! The service hyper calls for every request: `POST /v1/topics/{topic}/messages` goes straight
//! to the produce handler, everything else through the axum router.
//!
//! Produce is the one route whose per-request overhead decides a benchmark users compare
//! (one message per request, `docs/BENCHMARKS.md`): through the router, its layers (request
//! counting, the token check, the OpenAPI document's extension) and the matched-path
//! bookkeeping cost about 25 heap allocations and a fifth of the instructions of a whole
//! request. The direct path does exactly what the router would for that route and nothing
//! else: the same token check (`crate::auth::admit_produce`, the middleware's logic for
//! produce), the same handler with the topic name axum would have extracted, the request
//! counted under the same route label. It applies only when every step is known to be
//! identical:
//! - a topic segment without `%` (so percent-decoding cannot change it) and without a `/`;
//! - a route table that holds the produce route (tests build routers from partial tables).
//!
//! Anything else, including another method on the same path, goes to the router.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use tower::ServiceExt as _;

use crate::auth::{admit_produce, Auth};
use crate::routes::produce::{produce_to, PRODUCE_PATH};
use crate::state::AppState;

/// The request service: the router, and what the direct produce path needs (see the module
/// documentation for when it applies).
#[derive(Clone)]
pub struct Dispatch {
    router: Router,
    /// The state and the token check for the direct produce path; `None` turns it off.
    direct: Option<(AppState, Option<Arc<Auth>>)>,
}

impl Dispatch {
    /// Serves everything through `router`.
    pub fn router_only(router: Router) -> Self {
        Dispatch { router, direct: None }
    }

    /// Serves produce requests directly with `state` (checking tokens with `auth` when
    /// given), everything else through `router`. The caller guarantees that `router`'s produce
    /// route is [`produce_to`] with this state behind the same `auth`.
    pub fn with_direct_produce(router: Router, state: AppState, auth: Option<Arc<Auth>>) -> Self {
        Dispatch { router, direct: Some((state, auth)) }
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
        if let Some((state, auth)) = &self.direct {
            if let Some(topic) = direct_topic(request.method(), request.uri()) {
                let (state, auth, topic) = (state.clone(), auth.clone(), topic.to_string());
                return Box::pin(async move {
                    let request = request.map(Body::new);
                    let admitted = match &auth {
                        Some(auth) => admit_produce(auth, request, &topic),
                        None => Ok(request),
                    };
                    let response = match admitted {
                        Ok(request) => produce_to(&state, topic, request).await.into_response(),
                        Err(refused) => *refused,
                    };
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
