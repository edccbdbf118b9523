use std::fs;
use std::io;
use std::path::Path;

use serde_json::{Map, Value};

use super::files::is_json;
use super::superseded;
use crate::sources::decode::{DEFAULT_NAMESPACE, DecodeError, Rejection, decode_valid};
use crate::sources::object::{Object, ObjectId, ObjectKind};

#[derive(Debug, thiserror::Error)]
pub(super) enum ParseError {
    #[error("cannot read the file")]
    Read {
        #[source]
        source: io::Error,
    },
    /// `detail` is serde-saphyr's message for people, naming line and column.
    #[error("invalid YAML: {detail}")]
    Yaml { detail: String },
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
    #[error(
        "{api_version} {kind} is not supported; ignored, nothing of it is enforced: {migration}"
    )]
    Superseded {
        api_version: String,
        kind: String,
        migration: String,
    },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl ParseError {
    pub(super) fn field(&self) -> Option<&str> {
        match self {
            Self::MissingField { field }
            | Self::NotAString { field }
            | Self::NotAList { field } => Some(field),
            Self::Decode(error) => error.field(),
            _ => None,
        }
    }
}

/// One object-shaped document (or `List` item) of a file.
#[derive(Debug)]
pub(super) enum ParsedDocument {
    /// Parsed and validated: safe to enforce.
    Valid { id: ObjectId, object: Object },
    /// `id` is known when the document names its object, so its last good
    /// version can stay enforced.
    Rejected {
        id: Option<ObjectId>,
        label: String,
        errors: Vec<ParseError>,
        /// The object as written, when it decoded but failed validation.
        invalid: Option<Object>,
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

/// Documents that hold nothing are skipped and not counted.
fn yaml_documents(text: &str) -> Result<Vec<Value>, ParseError> {
    serde_saphyr::from_multiple_with_options(text, yaml_options()).map_err(|error| {
        ParseError::Yaml {
            detail: error.render_with_formatter(&serde_saphyr::UserMessageFormatter),
        }
    })
}

/// YAML as netseg has always read it (YAML 1.2's core schema, as serde_yaml
/// did): `on`, `yes`, `0755`, `1_000` and `!!binary` text stay strings,
/// merge keys (`<<`) expand, a duplicate key is an error; errors name line
/// and column on one line.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        underscored_numbers_as_strings: true,
        ignore_binary_tag_for_string: true,
        with_snippet: false,
    }
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
        Value::Object(map) => parse_mapping(map, location, out),
        _ => out.push(rejected(None, location.to_owned(), ParseError::NotAMapping)),
    }
}

fn parse_mapping(map: Map<String, Value>, location: &str, out: &mut Vec<ParsedDocument>) {
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
        let error = match superseded::migration(&api_version, &kind, &map) {
            Some(migration) => ParseError::Superseded {
                api_version,
                kind,
                migration,
            },
            None => ParseError::UnsupportedKind { api_version, kind },
        };
        return out.push(rejected(None, label, error));
    };
    let id = match object_id(object_kind, &map) {
        Ok(id) => id,
        Err(error) => return out.push(rejected(None, format!("{kind} in {location}"), error)),
    };
    let (errors, invalid) = match decode_valid(object_kind, Value::Object(map)) {
        Ok(object) => return out.push(ParsedDocument::Valid { id, object }),
        Err(Rejection { errors, invalid }) => {
            (errors.into_iter().map(ParseError::from).collect(), invalid)
        }
    };
    let label = id.to_string();
    out.push(ParsedDocument::Rejected {
        id: Some(id),
        label,
        errors,
        invalid,
    });
}

fn expand_list(
    mut map: Map<String, Value>,
    kind: &str,
    location: &str,
    out: &mut Vec<ParsedDocument>,
) {
    let items = match map.remove("items") {
        None | Some(Value::Null) => return,
        Some(Value::Array(items)) => items,
        Some(_) => {
            let error = ParseError::NotAList { field: "items" };
            return out.push(rejected(None, format!("{kind} in {location}"), error));
        }
    };
    let item_kind = ObjectKind::from_list_kind(kind);
    for (index, mut item) in items.into_iter().enumerate() {
        if let (Some(item_kind), Value::Object(item)) = (item_kind, &mut item) {
            item.entry("apiVersion")
                .or_insert_with(|| item_kind.api_version().into());
            item.entry("kind")
                .or_insert_with(|| item_kind.name().into());
        }
        parse_document(item, &format!("{location} items[{index}]"), out);
    }
}

fn string_field<'a>(
    map: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, ParseError> {
    match map.get(field) {
        None | Some(Value::Null) => Err(ParseError::MissingField { field }),
        Some(Value::String(value)) if value.is_empty() => Err(ParseError::MissingField { field }),
        Some(Value::String(value)) => Ok(value),
        Some(_) => Err(ParseError::NotAString { field }),
    }
}

/// The identity is read before decoding so that an object whose body is
/// malformed can still be matched to its last good version.
fn object_id(kind: ObjectKind, map: &Map<String, Value>) -> Result<ObjectId, ParseError> {
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

fn raw_label(kind: &str, map: &Map<String, Value>, location: &str) -> String {
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
        invalid: None,
    }
}
