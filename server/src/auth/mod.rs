//! Authentication and authorization: bearer tokens with scopes, checked once for every
//! request by the [`authorize`] middleware, before any handler runs.
//!
//! With no tokens configured the middleware is not installed and the server is anonymous.
//! Otherwise each request (SSE and long-polls included: the check happens before the
//! handler starts) goes through: the route's [`Access`] from [`policy::access`], keyed by the
//! route template axum matched; for anything but [`Access::Open`], an `Authorization: Bearer
//! <token>` whose SHA-256 matches a configured one (`401 unauthorized` otherwise, with a
//! `WWW-Authenticate: Bearer` header); then the scope check against the `{topic}` path
//! parameter, the `topic` query parameter or the JSON body's `topic` (`403 forbidden`). The
//! [`Principal`] is left in the request's extensions for handlers that filter what they list
//! (`GET /v1/topics`). Tokens themselves are never logged; their config `name` is. Produce
//! requests served without the router (`crate::dispatch`) get the same check for their route
//! from [`admit_produce`].

pub mod policy;
pub mod scope;
pub mod settings;
pub mod token;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use policy::{access, Access};
pub use scope::{Scope, TopicPattern};
pub use token::{Principal, TokenEntry, TokenHash, Tokens};

use crate::error::{ApiError, ErrorCode};

/// What the middleware needs: the tokens and the `/metrics` switch.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tokens: Tokens,
    /// Serve `/metrics` without a token.
    pub metrics_open: bool,
    /// Bound on a body read to find its `topic` (the server's `body_bytes_max`).
    pub body_bytes_max: usize,
}

impl Principal {
    fn is_admin(&self) -> bool {
        self.scopes.contains(&Scope::Admin)
    }

    /// May produce to `topic`.
    pub fn can_produce(&self, topic: &str) -> bool {
        self.is_admin() || self.scopes.iter().any(|s| matches!(s, Scope::Produce(p) if p.matches(topic)))
    }

    /// May read `topic` and use groups on it.
    pub fn can_consume(&self, topic: &str) -> bool {
        self.is_admin() || self.scopes.iter().any(|s| matches!(s, Scope::Consume(p) if p.matches(topic)))
    }

    /// May see `topic` in listings and describe it.
    pub fn can_see(&self, topic: &str) -> bool {
        self.can_produce(topic) || self.can_consume(topic)
    }
}

/// The middleware: authenticates, checks the route's scope, then runs the handler.
pub async fn authorize(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let needed = match request.extensions().get::<MatchedPath>() {
        Some(route) => access(request.method(), route.as_str()).unwrap_or(Access::Admin),
        // No route matched: the reply is a 404, but only to a caller with a valid token.
        None => Access::Authenticated,
    };
    if needed == Access::Open || (needed == Access::Metrics && auth.metrics_open) {
        return next.run(request).await;
    }
    let principal = match authenticate(&auth, &request) {
        Ok(p) => p,
        Err(reply) => return *reply,
    };
    let (request, verdict) = check(&auth, &principal, needed, request).await;
    match admit(principal, verdict, request) {
        Ok(request) => next.run(request).await,
        Err(refused) => *refused,
    }
}

/// The request with the caller's `principal` in its extensions if `verdict` lets it through,
/// else the refusal (logged with the token's name).
fn admit(
    principal: Arc<Principal>,
    verdict: Result<(), ApiError>,
    mut request: Request,
) -> Result<Request, Box<Response>> {
    if let Err(e) = verdict {
        tracing::debug!(token = %principal.name, "{}", e.message);
        return Err(Box::new(e.into_response()));
    }
    request.extensions_mut().insert(principal);
    Ok(request)
}

/// The caller's [`Principal`] from its bearer token, or the `401` reply.
fn authenticate(auth: &Auth, request: &Request) -> Result<Arc<Principal>, Box<Response>> {
    let refused = match bearer(request) {
        None => unauthorized("missing bearer token: send Authorization: Bearer <token>", None),
        Some(token) => match auth.tokens.authenticate(token) {
            Some(p) => return Ok(p),
            None => unauthorized("invalid bearer token", Some("invalid_token")),
        },
    };
    Err(Box::new(refused))
}

/// What [`authorize`] does for a produce request to `topic` (the route [`access`] maps to
/// [`Access::Produce`]), for the direct produce path of `crate::dispatch`, which does not go
/// through the router: the request with its [`Principal`] added, or the `401`/`403` reply.
/// `topic` must be the path's `{topic}` as the handler sees it (the direct path only takes
/// names that percent-decoding leaves unchanged).
pub fn admit_produce(auth: &Auth, request: Request, topic: &str) -> Result<Request, Box<Response>> {
    let principal = authenticate(auth, &request)?;
    let verdict = if principal.is_admin() { Ok(()) } else { topic_verdict(&principal, Access::Produce, topic) };
    admit(principal, verdict, request)
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer(request: &Request) -> Option<&str> {
    let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

fn unauthorized(message: &str, error: Option<&str>) -> Response {
    let mut resp = ApiError::new(ErrorCode::Unauthorized, message).into_response();
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"cairn\", error=\"{e}\""),
        None => "Bearer realm=\"cairn\"".to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    resp
}

fn forbidden(principal: &Principal, what: String) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, format!("token {:?} may not {what}", principal.name))
}

/// Checks `needed` for `principal`; may read (and put back) the body to find its `topic`.
async fn check(
    auth: &Auth,
    principal: &Principal,
    needed: Access,
    request: Request,
) -> (Request, Result<(), ApiError>) {
    if principal.is_admin() {
        return (request, Ok(()));
    }
    let verdict = match needed {
        Access::Open | Access::Authenticated => Ok(()),
        Access::Metrics if principal.scopes.contains(&Scope::Metrics) => Ok(()),
        Access::Metrics => Err(forbidden(principal, "read /metrics (needs admin or metrics)".into())),
        Access::Admin => {
            Err(forbidden(principal, format!("{} {} (needs admin)", request.method(), request.uri().path())))
        }
        Access::Produce | Access::Consume | Access::ProduceOrConsume => match path_topic(request).await {
            (request, Err(e)) => return (request, Err(e)),
            (request, Ok(topic)) => {
                let verdict = topic_verdict(principal, needed, &topic);
                return (request, verdict);
            }
        },
        Access::ConsumeQueryTopic => match query_topic(&request) {
            Some(topic) => topic_verdict(principal, Access::Consume, &topic),
            None => Err(forbidden(principal, "list a group's offsets in every topic (name one with ?topic=)".into())),
        },
        Access::ConsumeBodyTopic => {
            let (request, topic) = body_topic(auth, request).await;
            let verdict = match topic {
                Err(e) => Err(e),
                Ok(Some(topic)) => topic_verdict(principal, Access::Consume, &topic),
                Ok(None) => Err(forbidden(principal, "act on a group without naming a topic in the body".into())),
            };
            return (request, verdict);
        }
    };
    (request, verdict)
}

fn topic_verdict(principal: &Principal, needed: Access, topic: &str) -> Result<(), ApiError> {
    let (ok, verb) = match needed {
        Access::Produce => (principal.can_produce(topic), "produce to"),
        Access::ProduceOrConsume => (principal.can_see(topic), "see"),
        _ => (principal.can_consume(topic), "consume from"),
    };
    if ok {
        Ok(())
    } else {
        Err(forbidden(principal, format!("{verb} topic {topic:?}")))
    }
}

/// The `{topic}` path parameter, percent-decoded as the handler will see it.
async fn path_topic(request: Request) -> (Request, Result<String, ApiError>) {
    let (mut parts, body) = request.into_parts();
    let params = <RawPathParams as axum::extract::FromRequestParts<()>>::from_request_parts(&mut parts, &()).await;
    let result = match params {
        Ok(params) => params
            .iter()
            .find(|(k, _)| *k == "topic")
            .map(|(_, v)| v.to_string())
            .ok_or_else(|| ApiError::internal("route has no {topic} parameter")),
        Err(_) => Err(ApiError::bad_request("path parameters must be valid UTF-8 after percent-decoding")),
    };
    (Request::from_parts(parts, body), result)
}

/// The `topic` query parameter, if present and well-formed.
fn query_topic(request: &Request) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Q {
        topic: Option<String>,
    }
    let q = axum::extract::Query::<Q>::try_from_uri(request.uri()).ok()?;
    q.0.topic
}

/// The JSON body's `topic` string field; the body is read (within `body_bytes_max`) and put back.
async fn body_topic(auth: &Auth, request: Request) -> (Request, Result<Option<String>, ApiError>) {
    #[derive(serde::Deserialize)]
    struct B {
        topic: Option<String>,
    }
    let (parts, body) = request.into_parts();
    match axum::body::to_bytes(body, auth.body_bytes_max).await {
        Ok(bytes) => {
            let topic = serde_json::from_slice::<B>(&bytes).ok().and_then(|b| b.topic);
            (Request::from_parts(parts, Body::from(bytes)), Ok(topic))
        }
        Err(_) => {
            let e = ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("request body larger than {} bytes or unreadable", auth.body_bytes_max),
            );
            (Request::from_parts(parts, Body::empty()), Err(e))
        }
    }
}
