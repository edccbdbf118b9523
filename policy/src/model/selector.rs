//! Label selectors in a canonical form: equal selectors compare equal, so
//! they can key identities and be deduplicated.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::errors::Errors;
use super::names::{label_key_problem, label_value_problem};

/// Labels of a pod or namespace.
pub(crate) type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

impl Requirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

/// A parsed selector: the AND of its requirements (none = everything).
/// `matchLabels` entries become `In` requirements with one value.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

impl Selector {
    /// The empty selector, which selects everything.
    pub(crate) fn everything() -> Self {
        Selector::default()
    }

    pub(crate) fn matches(&self, labels: &Labels) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

fn parse_requirement(
    expr: &LabelSelectorRequirement,
    at: &str,
    errs: &mut Errors,
) -> Option<Requirement> {
    if let Some(reason) = label_key_problem(&expr.key) {
        errs.invalid(format_args!("{at}.key"), &expr.key, reason);
    }
    let values = expr.values.as_deref().unwrap_or_default();
    for (j, value) in values.iter().enumerate() {
        if let Some(reason) = label_value_problem(value) {
            errs.invalid(format_args!("{at}.values[{j}]"), value, reason);
        }
    }
    let operator = match expr.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        other => {
            let supported = "In, NotIn, Exists, DoesNotExist";
            errs.unsupported(format_args!("{at}.operator"), other, supported);
            return None;
        }
    };
    let needs_values = matches!(operator, Operator::In | Operator::NotIn);
    if needs_values && values.is_empty() {
        errs.required(format_args!("{at}.values"));
    } else if !needs_values && !values.is_empty() {
        let reason = "must be empty for Exists and DoesNotExist";
        errs.forbidden(format_args!("{at}.values"), reason);
    }
    Some(Requirement {
        key: expr.key.clone(),
        operator,
        values: values.iter().cloned().collect(),
    })
}

/// Parses `selector` at `path`; `None` (with errors pushed) when invalid.
pub(crate) fn parse_selector(
    selector: &LabelSelector,
    path: &str,
    errs: &mut Errors,
) -> Option<Selector> {
    let before = errs.0.len();
    let mut requirements = Vec::new();
    for (key, value) in selector.match_labels.iter().flatten() {
        if let Some(reason) = label_key_problem(key) {
            errs.invalid(format_args!("{path}.matchLabels"), key, reason);
        }
        if let Some(reason) = label_value_problem(value) {
            errs.invalid(format_args!("{path}.matchLabels[{key}]"), value, reason);
        }
        requirements.push(Requirement {
            key: key.clone(),
            operator: Operator::In,
            values: BTreeSet::from([value.clone()]),
        });
    }
    for (i, expr) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        requirements.extend(parse_requirement(expr, &at, errs));
    }
    requirements.sort();
    requirements.dedup();
    (errs.0.len() == before).then_some(Selector { requirements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn parse(sel: LabelSelector) -> Result<Selector, Vec<String>> {
        let mut errs = Errors::default();
        parse_selector(&sel, "s", &mut errs)
            .ok_or_else(|| errs.0.iter().map(|e| e.field.clone()).collect())
    }

    #[test]
    fn operators() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("a", "1")])),
            match_expressions: Some(vec![
                expr("b", "NotIn", &["x"]),
                expr("c", "Exists", &[]),
                expr("d", "DoesNotExist", &[]),
            ]),
        };
        let sel = parse(sel).expect("valid");
        assert!(sel.matches(&labels(&[("a", "1"), ("c", "")])));
        assert!(sel.matches(&labels(&[("a", "1"), ("b", "y"), ("c", "z")])));
        assert!(!sel.matches(&labels(&[("a", "1"), ("b", "x"), ("c", "")])));
        assert!(!sel.matches(&labels(&[("a", "1"), ("c", ""), ("d", "")])));
        assert!(!sel.matches(&labels(&[("a", "2"), ("c", "")])));
    }

    #[test]
    fn invalid_selectors_are_rejected_with_paths() {
        let bad = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![
                expr("a", "Equals", &["x"]),
                expr("b", "In", &[]),
                expr("c", "Exists", &["x"]),
            ]),
        };
        assert_eq!(
            parse(bad),
            Err(vec![
                "s.matchExpressions[0].operator".to_string(),
                "s.matchExpressions[1].values".to_string(),
                "s.matchExpressions[2].values".to_string(),
            ])
        );
    }

    #[test]
    fn canonical_form_ignores_spelling() {
        let a = LabelSelector {
            match_labels: Some(labels(&[("a", "1")])),
            match_expressions: None,
        };
        let b = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![expr("a", "In", &["1"]), expr("a", "In", &["1"])]),
        };
        assert_eq!(parse(a), parse(b));
    }
}
