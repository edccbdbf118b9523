//! CEL evaluation as the API server does it for CRD validation rules: Kubernetes' CEL
//! libraries (from kube-cel), `self` bound to the value the rule sits on.

use std::net::IpAddr;
use std::sync::Arc;

use kube_cel::KubeCelExt;
use kube_cel::cel::{Context, Program, Value as CelValue};
use serde_json::Value;

/// A context with Kubernetes' CEL libraries, `isCIDR` replaced by [`is_cidr`].
pub fn kubernetes_context() -> Context<'static> {
    let mut context = Context::default().with_all();
    context.add_function("isCIDR", |text: Arc<String>| is_cidr(&text));
    context
}

/// Kubernetes' `isCIDR` (k8s.io/apiserver/pkg/cel/library/cidr.go): Go's
/// `netip.ParsePrefix`, which rejects IPv4 octets and prefix lengths with leading zeros and
/// IPv6 zones, then IPv4-mapped IPv6 rejected. Host bits after the mask are allowed.
/// kube-cel's own `isCIDR` accepts leading zeros (`010.0.0.0/8`), so it is replaced.
pub fn is_cidr(text: &str) -> bool {
    let Some((address, bits)) = text.rsplit_once('/') else {
        return false;
    };
    // Rust's parser, like Go's netip, rejects octal-looking octets and zones.
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    let mapped = matches!(address, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some());
    let max_bits = if address.is_ipv4() { 32 } else { 128 };
    let plain_decimal = !bits.is_empty()
        && bits.bytes().all(|b| b.is_ascii_digit())
        && (bits == "0" || !bits.starts_with('0'));
    !mapped && plain_decimal && bits.parse::<u32>().is_ok_and(|bits| bits <= max_bits)
}

/// Evaluates `program` with `self` bound to `value`: Ok(true) passes, anything else fails.
pub fn evaluate(program: &Program, context: &Context, value: &Value) -> Result<bool, String> {
    let mut scope = context.new_inner_scope();
    scope.add_variable_from_value("self", to_cel(value));
    match program.execute(&scope) {
        Ok(CelValue::Bool(passed)) => Ok(passed),
        Ok(other) => Err(format!("not a bool: {other:?}")),
        Err(error) => Err(error.to_string()),
    }
}

/// JSON as the API server hands it to CEL: integers are `int`.
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
            CelValue::Int,
        ),
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: std::collections::HashMap<String, CelValue> =
                fields.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            map.into()
        }
    }
}
