use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::files::is_json;
use super::object::{ManifestObject, ObjectId, ObjectKind};

#[derive(Debug, thiserror::Error)]
pub(super) enum ParseError {
    #[error("cannot read the file")]
    Read {
        #[source]
        source: io::Error,
    },
    #[error("invalid YAML")]
    Yaml {
        #[source]
        source: serde_yaml::Error,
    },
    #[error("invalid JSON")]
    Json {
        #[source]
        source: serde_json::Error,
    },
    #[error("is not a mapping")]
    NotAMapping,
    #[error("is required")]
    MissingField { field: &'static str },
    #[error("must be a string")]
    NotAString { field: &'static str },
    #[error("must be a list")]
    NotAList { field: &'static str },
    #[error("{api_version} {kind} is not a kind netseg enforces; ignored")]
    UnsupportedKind { api_version: String, kind: String },
    // The serde message says it all ("invalid type: string \"x\", expected i32").
    #[error("{source}")]
    WrongType {
        path: Option<String>,
        source: serde_yaml::Error,
    },
    // Rejected rather than ignored: a misspelt `matchLabels` would otherwise
    // silently become an empty selector that matches every pod.
    #[error("unknown field")]
    UnknownField { path: String },
    #[error("{}", error.problem)]
    Invalid { error: netseg_policy::FieldError },
}

impl ParseError {
    pub(super) fn field(&self) -> Option<&str> {
        match self {
            Self::MissingField { field }
            | Self::NotAString { field }
            | Self::NotAList { field } => Some(field),
            Self::WrongType { path, .. } => path.as_deref(),
            Self::UnknownField { path } => Some(path),
            Self::Invalid { error } => Some(&error.field),
            _ => None,
        }
    }
}

/// One object-shaped document (or `List` item) of a file.
#[derive(Debug)]
pub(super) enum ParsedDocument {
    /// Parsed and validated: safe to enforce.
    Valid {
        id: ObjectId,
        object: ManifestObject,
    },
    /// `id` is known when the document names its object, so its last good
    /// version can stay enforced.
    Rejected {
        id: Option<ObjectId>,
        label: String,
        errors: Vec<ParseError>,
    },
}

pub(super) fn read_file(path: &Path) -> Result<String, ParseError> {
    fs::read_to_string(path).map_err(|source| ParseError::Read { source })
}

/// Parses the text of one file. `Err` means the file as a whole could not be
/// understood (YAML/JSON syntax), so nothing in it can be trusted.
pub(super) fn parse_text(path: &Path, text: &str) -> Result<Vec<ParsedDocument>, ParseError> {
    let documents = if is_json(path) {
        json_documents(text)?
    } else {
        yaml_documents(text)?
    };
    let mut parsed = Vec::new();
    for (index, document) in documents.into_iter().enumerate() {
        parse_document(document, &format!("document {}", index + 1), &mut parsed);
    }
    Ok(parsed)
}

fn yaml_documents(text: &str) -> Result<Vec<Value>, ParseError> {
    serde_yaml::Deserializer::from_str(text)
        .map(|document| {
            let mut value = Value::deserialize(document)?;
            value.apply_merge()?;
            Ok(value)
        })
        .collect::<Result<_, serde_yaml::Error>>()
        .map_err(|source| ParseError::Yaml { source })
}

/// Like kubectl, a JSON file may hold a stream of objects.
fn json_documents(text: &str) -> Result<Vec<Value>, ParseError> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .map_err(|source| ParseError::Json { source })
}

fn parse_document(document: Value, location: &str, out: &mut Vec<ParsedDocument>) {
    match document {
        Value::Null => {}
        Value::Mapping(map) => parse_mapping(map, location, out),
        _ => out.push(rejected(None, location.to_owned(), ParseError::NotAMapping)),
    }
}

fn parse_mapping(map: Mapping, location: &str, out: &mut Vec<ParsedDocument>) {
    let type_meta = string_field(&map, "apiVersion").and_then(|api_version| {
        string_field(&map, "kind").map(|kind| (api_version.to_owned(), kind.to_owned()))
    });
    let (api_version, kind) = match type_meta {
        Ok(type_meta) => type_meta,
        Err(error) => return out.push(rejected(None, location.to_owned(), error)),
    };
    if kind == "List" || ObjectKind::from_list_kind(&kind).is_some() {
        return expand_list(map, &kind, location, out);
    }
    let Some(object_kind) = ObjectKind::from_type(&api_version, &kind) else {
        let label = raw_label(&kind, &map, location);
        return out.push(rejected(
            None,
            label,
            ParseError::UnsupportedKind { api_version, kind },
        ));
    };
    let id = match object_id(object_kind, &map) {
        Ok(id) => id,
        Err(error) => return out.push(rejected(None, format!("{kind} in {location}"), error)),
    };
    let errors = match decode(object_kind, Value::Mapping(map)) {
        Ok(object) => match validation_errors(&object) {
            errors if errors.is_empty() => return out.push(ParsedDocument::Valid { id, object }),
            errors => errors,
        },
        Err(errors) => errors,
    };
    let label = id.to_string();
    out.push(ParsedDocument::Rejected {
        id: Some(id),
        label,
        errors,
    });
}

fn expand_list(mut map: Mapping, kind: &str, location: &str, out: &mut Vec<ParsedDocument>) {
    let items = match map.remove("items") {
        None | Some(Value::Null) => return,
        Some(Value::Sequence(items)) => items,
        Some(_) => {
            let error = ParseError::NotAList { field: "items" };
            return out.push(rejected(None, format!("{kind} in {location}"), error));
        }
    };
    let item_kind = ObjectKind::from_list_kind(kind);
    for (index, mut item) in items.into_iter().enumerate() {
        if let (Some(item_kind), Value::Mapping(item)) = (item_kind, &mut item) {
            item.entry("apiVersion".into())
                .or_insert_with(|| item_kind.api_version().into());
            item.entry("kind".into())
                .or_insert_with(|| item_kind.name().into());
        }
        parse_document(item, &format!("{location} items[{index}]"), out);
    }
}

fn string_field<'a>(map: &'a Mapping, field: &'static str) -> Result<&'a str, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(ParseError::MissingField { field }),
        Some(Value::String(value)) if value.is_empty() => Err(ParseError::MissingField { field }),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(ParseError::NotAString { field }),
    }
}

/// The identity is read before decoding so that an object whose body is
/// malformed can still be matched to its last good version.
fn object_id(kind: ObjectKind, map: &Mapping) -> Result<ObjectId, ParseError> {
    let metadata = map.get("metadata");
    let name = match metadata.and_then(|metadata| metadata.get("name")) {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(ParseError::MissingField {
                field: "metadata.name",
            });
        }
        Some(_) => {
            return Err(ParseError::NotAString {
                field: "metadata.name",
            });
        }
    };
    let namespace = match metadata.and_then(|metadata| metadata.get("namespace")) {
        _ if !kind.is_namespaced() => None,
        Some(Value::String(namespace)) if !namespace.is_empty() => Some(namespace.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => Some(DEFAULT_NAMESPACE.to_owned()),
        Some(_) => {
            return Err(ParseError::NotAString {
                field: "metadata.namespace",
            });
        }
    };
    Ok(ObjectId {
        kind,
        namespace,
        name,
    })
}

/// kubectl's namespace for objects that name none.
const DEFAULT_NAMESPACE: &str = "default";

fn raw_label(kind: &str, map: &Mapping, location: &str) -> String {
    let metadata = map.get("metadata");
    let name = metadata.and_then(|m| m.get("name")).and_then(Value::as_str);
    let namespace = metadata
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str);
    match (namespace, name) {
        (Some(namespace), Some(name)) => format!("{kind} {namespace}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => format!("{kind} in {location}"),
    }
}

fn rejected(id: Option<ObjectId>, label: String, error: ParseError) -> ParsedDocument {
    ParsedDocument::Rejected {
        id,
        label,
        errors: vec![error],
    }
}

fn decode(kind: ObjectKind, value: Value) -> Result<ManifestObject, Vec<ParseError>> {
    Ok(match kind {
        ObjectKind::Namespace => ManifestObject::Namespace(Arc::new(decode_as(value)?)),
        ObjectKind::Node => ManifestObject::Node(Arc::new(decode_as(value)?)),
        ObjectKind::Pod => {
            let mut pod: Pod = decode_as(value)?;
            default_namespace(&mut pod.metadata);
            ManifestObject::Pod(Arc::new(pod))
        }
        ObjectKind::NetworkPolicy => {
            let mut policy: NetworkPolicy = decode_as(value)?;
            default_namespace(&mut policy.metadata);
            ManifestObject::NetworkPolicy(Arc::new(policy))
        }
        ObjectKind::ClusterNetworkPolicy => {
            ManifestObject::ClusterNetworkPolicy(Arc::new(decode_tolerating(value, fails_closed)?))
        }
        ObjectKind::Segment => {
            ManifestObject::Segment(Arc::new(decode_tolerating(value, type_fields)?))
        }
        ObjectKind::SegmentPolicy => {
            ManifestObject::SegmentPolicy(Arc::new(decode_tolerating(value, fails_closed)?))
        }
    })
}

fn default_namespace(metadata: &mut ObjectMeta) {
    if metadata.namespace.as_deref().is_none_or(str::is_empty) {
        metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
    }
}

fn decode_as<T: DeserializeOwned>(value: Value) -> Result<T, Vec<ParseError>> {
    decode_tolerating(value, |_| false)
}

/// Decodes `value`, rejecting unknown fields except those `tolerated` names.
fn decode_tolerating<T: DeserializeOwned>(
    value: Value,
    tolerated: fn(&str) -> bool,
) -> Result<T, Vec<ParseError>> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let decoded =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut on_ignored));
    match decoded {
        Err(error) => {
            let path = error.path().to_string();
            let path = (path != ".").then_some(path);
            Err(vec![ParseError::WrongType {
                path,
                source: error.into_inner(),
            }])
        }
        Ok(_) if unknown.iter().any(|path| !tolerated(path)) => Err(unknown
            .into_iter()
            .filter(|path| !tolerated(path))
            .map(|path| ParseError::UnknownField { path })
            .collect()),
        Ok(decoded) => Ok(decoded),
    }
}

/// The type fields, which the generated types of custom resources leave to
/// the parser (it checked them).
fn type_fields(path: &str) -> bool {
    matches!(path, "apiVersion" | "kind")
}

/// Whether an unknown field is one that a rule peer or protocol entry of a
/// ClusterNetworkPolicy or SegmentPolicy may carry: a field of a newer CRD
/// version, which the API asks implementations to fail closed on (an Accept
/// rule matches nothing, a Deny or Pass rule denies everything) rather than
/// to reject the object.
fn fails_closed(path: &str) -> bool {
    if type_fields(path) {
        return true;
    }
    let mut parts = path.split('.');
    let (Some("spec"), Some(rule), Some(entry), Some(_field), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let is_rule = rule.starts_with("ingress[") || rule.starts_with("egress[");
    let is_entry = ["from[", "to[", "protocols["]
        .iter()
        .any(|prefix| entry.starts_with(prefix));
    is_rule && is_entry
}

/// serde_ignored's own Display writes `spec.?.ingress.0`; this writes the
/// `spec.ingress[0]` form that serde_path_to_error and kubectl use.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => match field_path(parent) {
            parent if parent.is_empty() => key.clone(),
            parent => format!("{parent}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// The one call into the policy crate's validators, kept apart so a change
/// in their signature touches only this function.
fn validation_errors(object: &ManifestObject) -> Vec<ParseError> {
    let errors = match object {
        ManifestObject::Namespace(namespace) => netseg_policy::validate_namespace(namespace),
        ManifestObject::Pod(pod) => netseg_policy::validate_pod(pod),
        ManifestObject::Node(node) => netseg_policy::validate_node(node),
        ManifestObject::NetworkPolicy(policy) => netseg_policy::validate_network_policy(policy),
        ManifestObject::ClusterNetworkPolicy(policy) => {
            netseg_policy::validate_cluster_network_policy(policy)
        }
        ManifestObject::Segment(segment) => netseg_policy::validate_segment(segment),
        ManifestObject::SegmentPolicy(policy) => netseg_policy::validate_segment_policy(policy),
    };
    errors
        .into_iter()
        .map(|error| ParseError::Invalid { error })
        .collect()
}
