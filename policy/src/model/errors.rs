//! Field errors: what is wrong with which field of an object.

use std::fmt;

/// What is wrong with a field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    /// The field must be set.
    #[error("required value")]
    Required,
    /// The value does not parse or breaks a constraint.
    #[error("invalid value {value:?}: {reason}")]
    Invalid {
        /// The offending value, as written.
        value: String,
        /// What the value should be.
        reason: String,
    },
    /// The value is not one of a fixed set.
    #[error("unsupported value {value:?}: supported values are {supported}")]
    Unsupported {
        /// The offending value, as written.
        value: String,
        /// The values that are supported, comma-separated.
        supported: &'static str,
    },
    /// The field must not be set (in this combination).
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why the field may not be set.
        reason: &'static str,
    },
}

/// One problem with one field, named by its path in the object
/// (`spec.ingress[0].ports[1].endPort`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    /// The path of the field, as in Kubernetes API errors.
    pub field: String,
    /// What is wrong with it.
    pub problem: FieldProblem,
}

/// Collects the field errors of one object while it is parsed.
#[derive(Debug, Default)]
pub(crate) struct Errors(pub(crate) Vec<FieldError>);

impl Errors {
    pub(crate) fn push(&mut self, field: impl fmt::Display, problem: FieldProblem) {
        self.0.push(FieldError {
            field: field.to_string(),
            problem,
        });
    }

    pub(crate) fn required(&mut self, field: impl fmt::Display) {
        self.push(field, FieldProblem::Required);
    }

    pub(crate) fn invalid(
        &mut self,
        field: impl fmt::Display,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) {
        let problem = FieldProblem::Invalid {
            value: value.to_string(),
            reason: reason.into(),
        };
        self.push(field, problem);
    }

    pub(crate) fn unsupported(
        &mut self,
        field: impl fmt::Display,
        value: impl fmt::Display,
        supported: &'static str,
    ) {
        let problem = FieldProblem::Unsupported {
            value: value.to_string(),
            supported,
        };
        self.push(field, problem);
    }

    pub(crate) fn forbidden(&mut self, field: impl fmt::Display, reason: &'static str) {
        self.push(field, FieldProblem::Forbidden { reason });
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
