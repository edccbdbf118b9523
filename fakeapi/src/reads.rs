//! GET one object, list (with `limit`/`continue` paging), and the start of a watch.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, StreamBody};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::StreamingLists;
use crate::routes::{Body, Query, Target, json_response};
use crate::selectors::Selection;
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::ObjectKey;
use crate::watch::{self, Start, WatchRequest};

/// The API server closes a watch without `timeoutSeconds` after 30 to 60 minutes.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

pub(crate) fn get(shared: &Shared, target: &Target) -> Result<Response<Body>, ApiError> {
    let name = target.name()?;
    let key = (
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    );
    let object = shared
        .store()
        .get(target.resource, &key)
        .ok_or_else(|| ApiError::not_found(target.resource.plural, name))?;
    Ok(json_response(StatusCode::OK, &object))
}

pub(crate) fn list(
    shared: &Shared,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let resource = target.resource;
    let selection = selection(target, query)?;
    let limit = match query.get("limit") {
        Some(limit) => Some(parse_number("limit", limit)?).filter(|l| *l > 0),
        None => None,
    };
    let store = shared.store();
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let (rv, key) = decode_continue(token)?;
            if !store.can_resume_from(rv) {
                return Err(ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. \
                     You can start a new list without the continue parameter.",
                ));
            }
            (rv, Some(key))
        }
        None => (store.resource_version(), None),
    };
    let page = store.list(
        resource,
        &selection,
        after.as_ref(),
        limit.map(|l| l as usize),
    );
    drop(store);
    let mut metadata = json!({"resourceVersion": list_rv.to_string()});
    if let Some(last) = &page.continue_after {
        metadata["continue"] = json!(encode_continue(list_rv, last));
        metadata["remainingItemCount"] = json!(page.remaining);
    }
    let items: Vec<&Value> = page.items.iter().map(|o| &**o).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "kind": format!("{}List", resource.kind),
            "apiVersion": resource.api_version(),
            "metadata": metadata,
            "items": items,
        }),
    ))
}

pub(crate) fn watch(
    shared: &Arc<Shared>,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let selection = selection(target, query)?;
    let streaming_lists = shared.control.borrow().streaming_lists;
    let send_initial_events =
        streaming_lists == StreamingLists::Supported && query.flag("sendInitialEvents");
    if send_initial_events && query.get("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::new(
            422,
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let start = match query.get("resourceVersion").filter(|rv| !rv.is_empty()) {
        _ if send_initial_events => Start::Current { end_bookmark: true },
        None | Some("0") => Start::Current {
            end_bookmark: false,
        },
        Some(rv) => Start::After(parse_number("resourceVersion", rv)?),
    };
    let timeout = match query.get("timeoutSeconds") {
        Some(seconds) => Duration::from_secs(parse_number("timeoutSeconds", seconds)?),
        None => DEFAULT_WATCH_TIMEOUT,
    };
    let request = WatchRequest {
        resource: target.resource,
        selection,
        start,
        bookmarks: query.flag("allowWatchBookmarks"),
        timeout,
    };
    let (chunks, mut received) = mpsc::channel(64);
    tokio::spawn(watch::run(shared.clone(), request, chunks));
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| received.poll_recv(cx)));
    let mut response = Response::new(body.boxed_unsync());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn selection(target: &Target, query: &Query) -> Result<Selection, ApiError> {
    Selection::parse(
        target.resource,
        target.namespace.clone(),
        query.get("labelSelector"),
        query.get("fieldSelector"),
    )
}

fn parse_number(parameter: &str, value: &str) -> Result<u64, ApiError> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{parameter}: invalid value {value:?}: not a non-negative integer"
        ))
    })
}

/// Opaque to clients: hex of `RV/NAMESPACE/NAME` (names cannot contain '/').
fn encode_continue(rv: u64, (namespace, name): &ObjectKey) -> String {
    format!("{rv}/{namespace}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(u64, ObjectKey), ApiError> {
    let invalid = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| {
            token
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(invalid)?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let mut parts = text.splitn(3, '/');
    let (Some(rv), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let rv = rv.parse().map_err(|_| invalid())?;
    Ok((rv, (namespace.to_string(), name.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip_and_garbage_is_a_bad_request() {
        let key = ("ns".to_string(), "pod-1".to_string());
        assert_eq!(
            decode_continue(&encode_continue(42, &key)).expect("decodes"),
            (42, key)
        );
        for garbage in ["zz", "abc", "3132"] {
            assert_eq!(
                decode_continue(garbage).expect_err(garbage).code,
                400,
                "{garbage}"
            );
        }
    }
}
