//! Errors as the API server sends them: a `metav1.Status` body with the HTTP code, a reason
//! and a message, so that kube and client-go classify them as they would a real server's.

use serde_json::{Value, json};

/// A failed request, answered as a `metav1.Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details.name` and `details.kind` (the plural), when the error is about one object.
    pub details: Option<(String, String)>,
}

impl ApiError {
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason_for(code),
            message: message.into(),
            details: None,
        }
    }

    pub fn about(mut self, plural: &str, name: &str) -> Self {
        self.details = Some((name.to_string(), plural.to_string()));
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, message)
    }

    pub fn not_found(plural: &str, name: &str) -> Self {
        ApiError::new(404, format!("{plural} \"{name}\" not found")).about(plural, name)
    }

    pub fn conflict(plural: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            format!("Operation cannot be fulfilled on {plural} \"{name}\": {why}"),
        )
        .about(plural, name)
    }

    pub fn already_exists(plural: &str, name: &str) -> Self {
        ApiError {
            reason: "AlreadyExists",
            ..ApiError::new(409, format!("{plural} \"{name}\" already exists")).about(plural, name)
        }
    }

    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, message)
    }

    /// The `metav1.Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some((name, kind)) = &self.details {
            status["details"] = json!({ "name": name, "kind": kind });
        }
        status
    }
}

/// `metav1.StatusReason` for an HTTP code, as the API server pairs them.
pub(crate) fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        // metav1.StatusReasonUnknown
        _ => "",
    }
}
