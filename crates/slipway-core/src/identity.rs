//! Validated identity inputs: email addresses, display names and labels.

use crate::FieldErrors;

/// An email address, trimmed; compared case-insensitively through [`Email::normalized`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, String> {
        let text = text.trim();
        let valid = text.len() <= 254
            && !text.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(text.split_once('@'), Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
                    && !domain.contains('@') && !domain.contains(".."));
        if valid { Ok(Email(text.to_string())) } else { Err("The email must be a valid email address.".into()) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for uniqueness and lookups.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A name or label shown to people: 1–255 characters, no control characters.
pub fn check_label(errors: &mut FieldErrors, field: &str, value: &str) {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.add(field, format!("The {field} field is required."));
    } else if trimmed.chars().count() > 255 {
        errors.add(field, format!("The {field} may not be longer than 255 characters."));
    } else if trimmed.chars().any(char::is_control) {
        errors.add(field, format!("The {field} may not contain control characters."));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(Email::parse(" Ana@Example.com ").unwrap().normalized(), "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "a b@example.com",
            "ana@@example.com",
            "ana@.example.com",
            "ana@example..com",
            "a\n@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels() {
        let mut e = FieldErrors::new();
        check_label(&mut e, "name", "CI pipeline");
        assert!(e.is_empty());
        check_label(&mut e, "name", "  ");
        check_label(&mut e, "title", &"x".repeat(256));
        check_label(&mut e, "label", "bad\u{0}");
        assert_eq!(e.fields().count(), 3);
    }
}
