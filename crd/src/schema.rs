//! Schema pieces the derives cannot express as attributes: string lists whose items carry
//! their own validation, and the CEL rules used in more than one place.

use schemars::{Schema, SchemaGenerator, json_schema};

/// 1..=25 CIDRs, each checked with Kubernetes' `isCIDR` and at most 43 characters long (a
/// fully written-out IPv6 address and `/128`), as upstream ClusterNetworkPolicy has them.
pub(crate) fn cidr_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 25,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "maxLength": 43,
            "x-kubernetes-validations": [
                {"rule": "isCIDR(self)", "message": "Invalid CIDR format provided"}
            ]
        }
    })
}

/// Upstream's DomainName pattern with its `[a-zA-z0-9]` typo corrected (network-policy-api
/// #391): an optional `*.` prefix, then dot-separated labels, optionally fully qualified.
pub(crate) fn domain_name_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 25,
        "x-kubernetes-list-type": "set",
        "items": {
            "type": "string",
            "pattern": r"^(\*\.)?([a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.)+[a-zA-Z0-9]([-a-zA-Z0-9_]*[a-zA-Z0-9])?\.?$"
        }
    })
}

/// Segment names are object names: DNS subdomains, at most 253 characters.
pub(crate) fn segment_name_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "minItems": 1,
        "maxItems": 25,
        "x-kubernetes-list-type": "set",
        "items": {"type": "string", "minLength": 1, "maxLength": 253}
    })
}

/// Every rule `name` that is set occurs once in its list.
pub(crate) const UNIQUE_RULE_NAMES: &str =
    "self.all(r, !has(r.name) || self.exists_one(o, has(o.name) && o.name == r.name))";
