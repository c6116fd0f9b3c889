//! Which permission each route needs: one table keyed by method and route template.
//!
//! [`access`] is consulted by the middleware in `super` with the template axum matched
//! (`MatchedPath`), so the path parameters it names (`{topic}`) are the ones the handler
//! will see. A route missing here needs `admin` (fail closed), and a test checks that every
//! route of `crate::routes::table` is listed. The same table is written out for operators in
//! `docs/OPERATIONS.md` (Security).

use axum::http::Method;

/// The permission a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (`/v1/health`, `/v1/openapi.json`).
    Open,
    /// `/metrics`: `admin` or `metrics`, or open when the server says so.
    Metrics,
    /// Any valid token (replies may be filtered to what it can see).
    Authenticated,
    /// `admin`.
    Admin,
    /// `produce:` matching the `{topic}` path parameter.
    Produce,
    /// `consume:` matching the `{topic}` path parameter.
    Consume,
    /// `produce:` or `consume:` matching the `{topic}` path parameter.
    ProduceOrConsume,
    /// `consume:` matching the `topic` query parameter; `admin` without one.
    ConsumeQueryTopic,
    /// `consume:` matching the JSON body's `topic` field; `admin` without one.
    ConsumeBodyTopic,
}

/// The permission `method` on the route template `route` needs; `None` for a route this table
/// does not know (the middleware then asks for `admin`).
pub fn access(method: &Method, route: &str) -> Option<Access> {
    use Access as A;
    let m = method.as_str();
    Some(match (m, route) {
        ("GET", "/v1/health" | "/v1/openapi.json") => A::Open,
        ("GET", "/metrics") => A::Metrics,
        ("GET", "/v1/topics") => A::Authenticated,
        ("POST", "/v1/topics") => A::Admin,
        ("GET", "/v1/topics/{topic}") => A::ProduceOrConsume,
        ("PATCH" | "DELETE", "/v1/topics/{topic}") => A::Admin,
        ("POST", "/v1/topics/{topic}/messages") => A::Produce,
        ("GET", "/v1/topics/{topic}/partitions/{p}/messages") => A::Consume,
        ("POST", "/v1/topics/{topic}/compact") => A::Admin,
        ("GET", "/v1/groups") => A::Admin,
        ("PUT" | "GET" | "DELETE", "/v1/groups/{group}") => A::Admin,
        ("GET", "/v1/groups/{group}/offsets") => A::ConsumeQueryTopic,
        ("POST", "/v1/groups/{group}/offsets" | "/v1/groups/{group}/reset") => A::ConsumeBodyTopic,
        (
            "POST",
            "/v1/groups/{group}/topics/{topic}/fetch"
            | "/v1/groups/{group}/topics/{topic}/ack"
            | "/v1/groups/{group}/topics/{topic}/nack"
            | "/v1/groups/{group}/topics/{topic}/extend"
            | "/v1/groups/{group}/topics/{topic}/reject",
        ) => A::Consume,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_an_explicit_access() {
        for r in crate::routes::table() {
            let a = access(&r.method, r.path);
            assert!(a.is_some(), "{} {} has no entry in auth::policy::access", r.method, r.path);
            let needs_topic = matches!(a, Some(Access::Produce | Access::Consume | Access::ProduceOrConsume));
            assert!(!needs_topic || r.path.contains("{topic}"), "{} {} has no {{topic}}", r.method, r.path);
        }
    }

    #[test]
    fn unknown_routes_are_not_open() {
        assert_eq!(access(&Method::POST, "/v1/health"), None);
        assert_eq!(access(&Method::GET, "/v1/secret"), None);
    }
}
