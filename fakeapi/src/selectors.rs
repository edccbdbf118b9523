//! `labelSelector` and `fieldSelector` as the API server parses and applies them.
//!
//! Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
//! Field selectors: `=`, `==`, `!=` on `metadata.name`, `metadata.namespace`, and on Pods
//! `spec.nodeName`. The set-based `>`/`<` operators and other fields are refused (400).

use serde_json::Value;

use crate::resources::Resource;
use crate::status::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum LabelRequirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldRequirement {
    path: &'static [&'static str],
    value: String,
    equal: bool,
}

/// What a list or watch request selects: namespace, labels and fields, all ANDed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    pub namespace: Option<String>,
    labels: Vec<LabelRequirement>,
    fields: Vec<FieldRequirement>,
}

impl Selection {
    pub fn parse(
        resource: &Resource,
        namespace: Option<String>,
        label_selector: Option<&str>,
        field_selector: Option<&str>,
    ) -> Result<Selection, ApiError> {
        Ok(Selection {
            namespace,
            labels: split_top_level(label_selector.unwrap_or(""))
                .into_iter()
                .map(parse_label_requirement)
                .collect::<Result<_, _>>()?,
            fields: split_top_level(field_selector.unwrap_or(""))
                .into_iter()
                .map(|r| parse_field_requirement(resource, r))
                .collect::<Result<_, _>>()?,
        })
    }

    pub fn matches(&self, object: &Value) -> bool {
        let metadata = &object["metadata"];
        if let Some(ns) = &self.namespace
            && metadata["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        let label = |key: &str| metadata["labels"][key].as_str();
        let labels_match = self.labels.iter().all(|requirement| match requirement {
            LabelRequirement::Equals(k, v) => label(k) == Some(v),
            LabelRequirement::NotEquals(k, v) => label(k) != Some(v),
            LabelRequirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::NotIn(k, vs) => !label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelRequirement::Exists(k) => label(k).is_some(),
            LabelRequirement::DoesNotExist(k) => label(k).is_none(),
        });
        labels_match
            && self.fields.iter().all(|f| {
                let actual = f
                    .path
                    .iter()
                    .fold(object, |v, key| &v[*key])
                    .as_str()
                    .unwrap_or("");
                (actual == f.value) == f.equal
            })
    }
}

/// Splits at commas outside parentheses; empty input gives no requirements.
fn split_top_level(selector: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&selector[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_label_requirement(text: &str) -> Result<LabelRequirement, ApiError> {
    let invalid = || ApiError::bad_request(format!("unable to parse requirement: {text:?}"));
    let key = |k: &str| {
        let k = k.trim();
        if k.is_empty()
            || k.contains(char::is_whitespace)
            || k.contains(['(', ')', '!', '=', '<', '>'])
        {
            Err(invalid())
        } else {
            Ok(k.to_string())
        }
    };
    if let Some((head, values)) = text.split_once('(') {
        let values = values.strip_suffix(')').ok_or_else(invalid)?;
        let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
        let (k, op) = head
            .trim()
            .rsplit_once(char::is_whitespace)
            .ok_or_else(invalid)?;
        return match op {
            "in" => Ok(LabelRequirement::In(key(k)?, values)),
            "notin" => Ok(LabelRequirement::NotIn(key(k)?, values)),
            _ => Err(invalid()),
        };
    }
    if let Some(k) = text.strip_prefix('!') {
        return Ok(LabelRequirement::DoesNotExist(key(k)?));
    }
    if let Some((k, v)) = text.split_once("!=") {
        return Ok(LabelRequirement::NotEquals(key(k)?, v.trim().to_string()));
    }
    if let Some((k, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
        return Ok(LabelRequirement::Equals(key(k)?, v.trim().to_string()));
    }
    Ok(LabelRequirement::Exists(key(text)?))
}

fn parse_field_requirement(resource: &Resource, text: &str) -> Result<FieldRequirement, ApiError> {
    let (field, value, equal) = if let Some((f, v)) = text.split_once("!=") {
        (f, v, false)
    } else if let Some((f, v)) = text.split_once("==").or_else(|| text.split_once('=')) {
        (f, v, true)
    } else {
        return Err(ApiError::bad_request(format!(
            "invalid field selector: {text:?}"
        )));
    };
    let path: &'static [&'static str] = match (field.trim(), resource.kind) {
        ("metadata.name", _) => &["metadata", "name"],
        ("metadata.namespace", _) => &["metadata", "namespace"],
        ("spec.nodeName", "Pod") => &["spec", "nodeName"],
        (other, _) => {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {other} (the fake knows metadata.name, metadata.namespace, and spec.nodeName on pods)"
            )));
        }
    };
    Ok(FieldRequirement {
        path,
        value: value.trim().to_string(),
        equal,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::by_plural;

    fn selects(labels: &str, fields: &str, object: &Value) -> bool {
        let pods = by_plural("", "v1", "pods").expect("pods are served");
        Selection::parse(pods, None, Some(labels), Some(fields))
            .expect("selector parses")
            .matches(object)
    }

    #[test]
    fn label_operators_select_as_kubernetes_does() {
        let pod = json!({"metadata": {"name": "a", "labels": {"app": "web", "tier": "front"}}});
        for (selector, expected) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (db, web)", true),
            ("app notin (db,web)", false),
            ("missing notin (x)", true),
            ("tier", true),
            ("!tier", false),
            ("!missing,app=web", true),
            ("app=web,tier=back", false),
            ("", true),
        ] {
            assert_eq!(
                selects(selector, "", &pod),
                expected,
                "labelSelector {selector:?}"
            );
        }
    }

    #[test]
    fn field_selectors_compare_missing_fields_as_empty() {
        let pod = json!({"metadata": {"name": "a", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let unscheduled = json!({"metadata": {"name": "b", "namespace": "ns"}, "spec": {}});
        assert!(selects("", "spec.nodeName=n1,metadata.namespace=ns", &pod));
        assert!(!selects("", "spec.nodeName=n1", &unscheduled));
        assert!(selects("", "spec.nodeName!=n1", &unscheduled));
        assert!(selects("", "spec.nodeName=", &unscheduled));
        assert!(!selects("", "metadata.name!=a", &pod));
    }

    #[test]
    fn malformed_or_unsupported_selectors_are_bad_requests() {
        let pods = by_plural("", "v1", "pods").expect("pods are served");
        let leases = by_plural("coordination.k8s.io", "v1", "leases").expect("leases are served");
        for labels in ["app in web", "app in (a", "a b=c", "=x"] {
            let err = Selection::parse(pods, None, Some(labels), None).expect_err(labels);
            assert_eq!(err.code, 400, "{labels}");
        }
        let err = Selection::parse(leases, None, None, Some("spec.nodeName=n"))
            .expect_err("leases have no nodeName");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("spec.nodeName"), "{}", err.message);
    }
}
