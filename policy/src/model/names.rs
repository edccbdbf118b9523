//! Syntax of Kubernetes names, label keys and values, and port names.
//! Each check returns the reason a string is invalid, or `None`.

use std::collections::BTreeMap;

use super::errors::Errors;

const QUALIFIED_NAME_MAX: usize = 63;
const SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

fn is_alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A DNS-1123 label: namespace names.
pub(crate) fn dns_label_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > QUALIFIED_NAME_MAX {
        return Some("must be 1 to 63 characters");
    }
    let ok_chars = s.chars().all(|c| is_lower_alnum(c) || c == '-');
    let ok_ends = s.starts_with(is_lower_alnum) && s.ends_with(is_lower_alnum);
    (!ok_chars || !ok_ends)
        .then_some("must be lowercase alphanumerics and '-', starting and ending alphanumeric")
}

/// A DNS-1123 subdomain: pod and policy names, label key prefixes.
pub(crate) fn dns_subdomain_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > SUBDOMAIN_MAX {
        return Some("must be 1 to 253 characters");
    }
    let bad_part = s.split('.').any(|part| {
        part.is_empty()
            || !part.chars().all(|c| is_lower_alnum(c) || c == '-')
            || !part.starts_with(is_lower_alnum)
            || !part.ends_with(is_lower_alnum)
    });
    bad_part.then_some("must be dot-separated lowercase alphanumerics and '-'")
}

/// The name part of a qualified name, also the syntax of a non-empty label value.
fn name_part_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > QUALIFIED_NAME_MAX {
        return Some("must be 1 to 63 characters");
    }
    let ok_chars = s
        .chars()
        .all(|c| is_alnum(c) || matches!(c, '-' | '_' | '.'));
    let ok_ends = s.starts_with(is_alnum) && s.ends_with(is_alnum);
    (!ok_chars || !ok_ends)
        .then_some("must be alphanumerics, '-', '_' or '.', starting and ending alphanumeric")
}

/// What is wrong with a label key (`[prefix/]name`), if anything.
pub fn label_key_problem(key: &str) -> Option<&'static str> {
    match key.split_once('/') {
        Some((prefix, name)) => dns_subdomain_problem(prefix).or_else(|| name_part_problem(name)),
        None => name_part_problem(key),
    }
}

/// A label value: empty, or like the name part of a key.
pub(crate) fn label_value_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        None
    } else {
        name_part_problem(value)
    }
}

/// A named port (IANA service name): what a string `port` must look like.
pub(crate) fn port_name_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() || s.len() > IANA_SVC_NAME_MAX {
        return Some("must be 1 to 15 characters");
    }
    let ok = s.chars().all(|c| is_lower_alnum(c) || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    (!ok).then_some(
        "must be lowercase alphanumerics and single '-' inside, with at least one letter",
    )
}

/// Checks `metadata.labels`.
pub(crate) fn check_labels(
    labels: Option<&BTreeMap<String, String>>,
    path: &str,
    errs: &mut Errors,
) {
    for (key, value) in labels.into_iter().flatten() {
        if let Some(reason) = label_key_problem(key) {
            errs.invalid(format_args!("{path}"), key, reason);
        }
        if let Some(reason) = label_value_problem(value) {
            errs.invalid(format_args!("{path}[{key}]"), value, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert_eq!(label_key_problem("app"), None);
        assert_eq!(label_key_problem("kubernetes.io/metadata.name"), None);
        assert!(label_key_problem("").is_some());
        assert!(label_key_problem("-app").is_some());
        assert!(label_key_problem("Bad_Prefix/app").is_some());
        assert!(label_key_problem("a/b/c").is_some());
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value_problem(""), None);
        assert_eq!(label_value_problem("v1.2_x-Y"), None);
        assert!(label_value_problem("a b").is_some());
        assert!(label_value_problem(&"x".repeat(64)).is_some());
    }

    #[test]
    fn port_names() {
        assert_eq!(port_name_problem("serve-80-tcp"), None);
        assert!(port_name_problem("80").is_some());
        assert!(port_name_problem("a--b").is_some());
        assert!(port_name_problem("this-name-is-too-long").is_some());
        assert!(port_name_problem("Http").is_some());
    }

    #[test]
    fn object_names() {
        assert_eq!(dns_label_problem("kube-system"), None);
        assert!(dns_label_problem("a.b").is_some());
        assert_eq!(dns_subdomain_problem("web-0.x"), None);
        assert!(dns_subdomain_problem("web..x").is_some());
    }
}
