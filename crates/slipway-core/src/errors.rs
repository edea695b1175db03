//! Field-level validation errors, in the `{"field": ["message", …]}` shape of a 422 response.

use std::collections::BTreeMap;

use serde::Serialize;

/// Validation messages keyed by field name (a dotted path for nested fields).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// A single error on a single field.
    pub fn one(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when nothing was recorded, so validators can end with `errors.into_result()?`.
    pub fn into_result(self) -> Result<(), FieldErrors> {
        if self.is_empty() { Ok(()) } else { Err(self) }
    }

    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_messages_per_field() {
        let mut e = FieldErrors::new();
        assert!(e.clone().into_result().is_ok());
        e.add("name", "The name field is required.");
        e.add("name", "The name may not be longer than 255 characters.");
        e.add("page", "The page must be at least 1.");
        assert_eq!(e.get("name").unwrap().len(), 2);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({
                "name": ["The name field is required.", "The name may not be longer than 255 characters."],
                "page": ["The page must be at least 1."]
            })
        );
        assert!(e.into_result().is_err());
    }
}
