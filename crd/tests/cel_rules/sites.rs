//! Where the CEL rules of a schema are, and which values of an object they apply to.

use serde_json::Value;

/// One `x-kubernetes-validations` rule at one place of one kind's schema.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleSite {
    pub kind: String,
    /// A field path with every list index written `[]`: `spec.egress[].to[]`.
    pub path: String,
    pub rule: String,
    pub message: String,
}

/// Every rule in `schema`; panics if a rule sits where this walk does not look (so the
/// coverage check cannot silently miss it).
pub fn rule_sites(kind: &str, schema: &Value) -> Vec<RuleSite> {
    let mut sites = Vec::new();
    walk(kind, schema, "", &mut sites);
    assert_eq!(
        sites.len(),
        count_rules(schema),
        "{kind}: rules outside properties/items"
    );
    sites
}

fn walk(kind: &str, schema: &Value, path: &str, sites: &mut Vec<RuleSite>) {
    let rules = schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array);
    for rule in rules.into_iter().flatten() {
        sites.push(RuleSite {
            kind: kind.to_string(),
            path: path.to_string(),
            rule: rule["rule"]
                .as_str()
                .expect("every validation has a rule")
                .to_string(),
            message: rule["message"]
                .as_str()
                .expect("every validation has a message")
                .to_string(),
        });
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, property) in properties.into_iter().flatten() {
        let child = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        walk(kind, property, &child, sites);
    }
    if let Some(items) = schema.get("items") {
        walk(kind, items, &format!("{path}[]"), sites);
    }
}

fn count_rules(schema: &Value) -> usize {
    match schema {
        Value::Object(fields) => fields
            .iter()
            .map(|(key, value)| {
                let here = match value {
                    Value::Array(rules) if key == "x-kubernetes-validations" => rules.len(),
                    _ => 0,
                };
                here + count_rules(value)
            })
            .sum(),
        Value::Array(values) => values.iter().map(count_rules).sum(),
        _ => 0,
    }
}

/// The values of `object` a rule at `path` (as [`RuleSite::path`]) is evaluated on, each
/// with its concrete field path (`spec.egress[0].to[1]`).
pub fn values_at<'a>(object: &'a Value, path: &str) -> Vec<(String, &'a Value)> {
    let mut values = vec![(String::new(), object)];
    for segment in path.split('.') {
        let (name, lists) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
        values = values
            .into_iter()
            .filter_map(|(at, v)| {
                let at = if at.is_empty() {
                    name.to_string()
                } else {
                    format!("{at}.{name}")
                };
                Some((at, v.get(name)?))
            })
            .collect();
        for _ in 0..lists.len() / 2 {
            values = values
                .into_iter()
                .flat_map(|(at, v)| elements(at, v))
                .collect();
        }
    }
    values
}

fn elements(at: String, list: &Value) -> Vec<(String, &Value)> {
    let items = list.as_array().map(Vec::as_slice).unwrap_or_default();
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (format!("{at}[{i}]"), item))
        .collect()
}
