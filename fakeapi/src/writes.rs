//! POST, PUT, PATCH and DELETE, on objects and on their `/status`.
//!
//! Patches: `application/merge-patch+json` (RFC 7386), `application/json-patch+json`
//! (RFC 6902), and `application/apply-patch+yaml` applied as a merge patch: no field
//! ownership, so a field a manager stops sending is kept, and lists are replaced whole.
//! Strategic merge patch (kubectl's default for built-in kinds) is refused with 415.
//! No admission, no validation beyond name and namespace, no defaulting, no dry run.

use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use crate::resources::Resource;
use crate::routes::{Body, Query, Target, json_response};
use crate::server::Shared;
use crate::status::ApiError;
use crate::store::{Part, object_key};

pub(crate) fn create(
    shared: &Shared,
    target: &Target,
    query: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    refuse_dry_run(query)?;
    let object = scoped_to(target, parse_json(body)?)?;
    let created = shared.store().create(target.resource, object)?;
    Ok(json_response(StatusCode::CREATED, &created))
}

pub(crate) fn update(
    shared: &Shared,
    target: &Target,
    query: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    refuse_dry_run(query)?;
    let object = named_as(target, scoped_to(target, parse_json(body)?)?)?;
    let updated = shared
        .store()
        .update(target.resource, object, part(target))?;
    Ok(json_response(StatusCode::OK, &updated))
}

pub(crate) fn patch(
    shared: &Shared,
    target: &Target,
    query: &Query,
    content_type: &str,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    refuse_dry_run(query)?;
    let name = target.name()?;
    let key = (
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    );
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    let mut store = shared.store();
    let stored = store.get(target.resource, &key);
    let patched = match media_type {
        "application/merge-patch+json" => {
            let mut object = existing(target, stored)?;
            json_patch::merge(&mut object, &parse_json(body)?);
            object
        }
        "application/json-patch+json" => {
            let operations: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not a JSON patch: {e}")))?;
            let mut object = existing(target, stored)?;
            json_patch::patch(&mut object, &operations)
                .map_err(|e| ApiError::new(422, format!("json patch: {e}")))?;
            object
        }
        "application/apply-patch+yaml" => {
            if query.get("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::new(
                    422,
                    "fieldManager: Required value: is required for apply patch",
                ));
            }
            let applied: Value = serde_saphyr::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("the body is not YAML or JSON: {e}")))?;
            let applied = named_as(target, scoped_to(target, applied)?)?;
            match stored {
                Some(stored) => {
                    let mut object = (*stored).clone();
                    json_patch::merge(&mut object, &applied);
                    object
                }
                None if target.status => {
                    return Err(ApiError::not_found(target.resource.plural, name));
                }
                None => {
                    let created = store.create(target.resource, applied)?;
                    return Ok(json_response(StatusCode::CREATED, &created));
                }
            }
        }
        other => {
            return Err(ApiError::new(
                415,
                format!(
                    "the fake does not support the patch type {other:?} (merge-patch+json, json-patch+json and apply-patch+yaml are supported)"
                ),
            ));
        }
    };
    if object_key(target.resource, &patched)? != key {
        return Err(ApiError::new(
            422,
            "metadata.name and metadata.namespace cannot be changed by a patch",
        ));
    }
    let updated = store.update(target.resource, patched, part(target))?;
    Ok(json_response(StatusCode::OK, &updated))
}

pub(crate) fn delete(
    shared: &Shared,
    target: &Target,
    query: &Query,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    refuse_dry_run(query)?;
    let name = target.name()?;
    let options = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let preconditions = &options["preconditions"];
    let key = (
        target.namespace.clone().unwrap_or_default(),
        name.to_string(),
    );
    let deleted = shared.store().delete(
        target.resource,
        &key,
        preconditions["resourceVersion"].as_str(),
        preconditions["uid"].as_str(),
    )?;
    Ok(json_response(StatusCode::OK, &deleted))
}

fn part(target: &Target) -> Part {
    if target.status {
        Part::Status
    } else {
        Part::Main
    }
}

fn existing(target: &Target, stored: Option<std::sync::Arc<Value>>) -> Result<Value, ApiError> {
    let name = target.name.as_deref().unwrap_or("");
    stored
        .map(|s| (*s).clone())
        .ok_or_else(|| ApiError::not_found(target.resource.plural, name))
}

fn refuse_dry_run(query: &Query) -> Result<(), ApiError> {
    match query.get("dryRun") {
        Some(_) => Err(ApiError::bad_request("dryRun is not supported by the fake")),
        None => Ok(()),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))
}

/// Checks the object's type against the URL's and gives it the URL's namespace.
fn scoped_to(target: &Target, mut object: Value) -> Result<Value, ApiError> {
    check_type(target.resource, &object)?;
    if !object["metadata"].is_object() {
        return Err(ApiError::new(
            422,
            format!(
                "{}: metadata: Required value (a JSON object)",
                target.resource.kind
            ),
        ));
    }
    if let Some(namespace) = &target.namespace {
        match object["metadata"]["namespace"].as_str() {
            None | Some("") => object["metadata"]["namespace"] = json!(namespace),
            Some(given) if given == namespace => {}
            Some(_) => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    Ok(object)
}

/// The object's name must be the URL's.
fn named_as(target: &Target, object: Value) -> Result<Value, ApiError> {
    let name = target.name()?;
    match object["metadata"]["name"].as_str() {
        Some(given) if given == name => Ok(object),
        _ => Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            object["metadata"]["name"]
        ))),
    }
}

fn check_type(resource: &Resource, object: &Value) -> Result<(), ApiError> {
    if !object.is_object() {
        return Err(ApiError::bad_request(format!(
            "a {} must be a JSON object",
            resource.kind
        )));
    }
    let expected = resource.api_version();
    for (field, want) in [("apiVersion", expected.as_str()), ("kind", resource.kind)] {
        if let Some(given) = object[field].as_str()
            && given != want
        {
            return Err(ApiError::bad_request(format!(
                "the {field} in the data ({given}) does not match the expected {field} ({want})"
            )));
        }
    }
    Ok(())
}
