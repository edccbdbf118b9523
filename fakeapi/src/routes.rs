//! Requests to responses: the URL layout of the API server, the verb of each request, the
//! request log, and injected faults.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::resources::{Resource, by_plural};
use crate::server::Shared;
use crate::status::ApiError;
use crate::{LoggedRequest, discovery, reads, writes};

pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;

/// The resource a URL names, and which of its objects.
#[derive(Debug)]
pub(crate) struct Target {
    pub resource: &'static Resource,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub status: bool,
}

impl Target {
    pub fn name(&self) -> Result<&str, ApiError> {
        self.name
            .as_deref()
            .ok_or_else(|| ApiError::new(405, "this verb needs an object name in the URL"))
    }
}

/// Query parameters, decoded (kube's `?&limit=500` included).
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }
}

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let method = request.method().to_string();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let user_agent = request
        .headers()
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (verb, response) = respond(&shared, request).await;
    shared.log(LoggedRequest {
        method,
        path_and_query,
        status: response.status().as_u16(),
        user_agent,
        verb,
        body_bytes: response.body().size_hint().exact(),
    });
    response
}

async fn respond(
    shared: &Arc<Shared>,
    request: Request<Incoming>,
) -> (&'static str, Response<Body>) {
    let path = request.uri().path().to_string();
    if request.method() == Method::GET
        && let Some(document) = discovery::document(&path, shared.addr)
    {
        return ("discovery", json_response(StatusCode::OK, &document));
    }
    let Some(target) = parse_target(&path) else {
        let unknown = ApiError::new(404, "the server could not find the requested resource");
        return ("unknown", error_response(&unknown));
    };
    let query = Query::parse(request.uri().query());
    let verb = verb_of(request.method(), &target, &query);
    if let Some(injected) = shared.faults.check(target.resource.plural, verb) {
        return (verb, error_response(&injected));
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let result = match verb {
        "get" => reads::get(shared, &target),
        "list" => reads::list(shared, &target, &query),
        "watch" => reads::watch(shared, &target, &query),
        "create" | "update" | "patch" | "delete" => match request.into_body().collect().await {
            Ok(body) => {
                let body = body.to_bytes();
                match verb {
                    "create" => writes::create(shared, &target, &query, &body),
                    "update" => writes::update(shared, &target, &query, &body),
                    "patch" => writes::patch(shared, &target, &query, &content_type, &body),
                    _ => writes::delete(shared, &target, &query, &body),
                }
            }
            Err(e) => Err(ApiError::bad_request(format!(
                "reading the request body: {e}"
            ))),
        },
        _ => Err(ApiError::new(
            405,
            format!("the fake does not serve this request ({verb})"),
        )),
    };
    (verb, result.unwrap_or_else(|e| error_response(&e)))
}

/// The Kubernetes verb, as RBAC and audit logs name it.
fn verb_of(method: &Method, target: &Target, query: &Query) -> &'static str {
    let named = target.name.is_some();
    match *method {
        Method::GET if named => "get",
        Method::GET if query.flag("watch") => "watch",
        Method::GET => "list",
        Method::POST if !named => "create",
        Method::PUT if named => "update",
        Method::PATCH if named => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => "unsupported",
    }
}

/// `/api/v1/[namespaces/NS/]PLURAL[/NAME[/status]]` and the same under `/apis/GROUP/VERSION`.
fn parse_target(path: &str) -> Option<Target> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", namespace, plural, rest @ ..] if *plural != "status" => {
            (Some(namespace.to_string()), {
                let mut r = vec![*plural];
                r.extend_from_slice(rest);
                r
            })
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, status) = match rest.as_slice() {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some(name.to_string()), false),
        [plural, name, "status"] => (*plural, Some(name.to_string()), true),
        _ => return None,
    };
    let resource = by_plural(group, version, plural)?;
    let scoped_right = match (&namespace, &name) {
        (Some(_), _) => resource.namespaced,
        (None, Some(_)) => !resource.namespaced,
        (None, None) => true,
    };
    scoped_right.then_some(Target {
        resource,
        namespace,
        name,
        status,
    })
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn error_response(error: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &error.to_status());
    if matches!(error.code, 429 | 503) {
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resource_namespace_object_and_status() {
        let t = parse_target("/api/v1/namespaces/ns1/pods/p/status").expect("pod status path");
        assert_eq!(
            (
                t.resource.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.status
            ),
            ("pods", Some("ns1"), Some("p"), true)
        );
        let t = parse_target("/api/v1/namespaces/ns1/status").expect("namespace status path");
        assert_eq!(
            (t.resource.plural, t.name.as_deref(), t.status),
            ("namespaces", Some("ns1"), true)
        );
        let t = parse_target("/apis/netseg.dev/v1alpha1/netsegnodes/n1")
            .expect("cluster-scoped object");
        assert_eq!(
            (t.resource.kind, t.namespace, t.name.as_deref()),
            ("NetsegNode", None, Some("n1"))
        );
        let t = parse_target("/api/v1/namespaces").expect("namespaces collection");
        assert_eq!((t.resource.plural, t.name), ("namespaces", None));
        for wrong in [
            "/api/v1/pods/p",
            "/api/v1/namespaces/ns/nodes",
            "/apis/netseg.dev/v1/segments",
            "/api/v1/pods/p/log",
            "/healthz",
        ] {
            assert!(parse_target(wrong).is_none(), "{wrong}");
        }
    }
}
