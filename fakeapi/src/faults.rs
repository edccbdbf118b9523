//! Injected failures: every request on a resource (by plural) answers an HTTP error.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::status::ApiError;

/// The HTTP codes `fail` accepts: client and server errors.
pub(crate) const INJECTABLE: std::ops::RangeInclusive<u16> = 400..=599;

#[derive(Default)]
pub(crate) struct Faults {
    by_plural: Mutex<HashMap<String, u16>>,
}

impl Faults {
    pub fn set(&self, plural: &str, code: Option<u16>) {
        let mut by_plural = self
            .by_plural
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match code {
            Some(code) => by_plural.insert(plural.to_string(), code),
            None => by_plural.remove(plural),
        };
    }

    /// The error a request on `plural` gets, if one is injected.
    pub fn check(&self, plural: &str, verb: &str) -> Option<ApiError> {
        let code = *self
            .by_plural
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(plural)?;
        let message = match code {
            403 => format!(
                "{plural} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{plural}\" (injected by the fake)"
            ),
            404 => "the server could not find the requested resource (injected by the fake)"
                .to_string(),
            _ => format!("{verb} {plural}: HTTP {code} injected by the fake"),
        };
        Some(ApiError::new(code, message))
    }
}
