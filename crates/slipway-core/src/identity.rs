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

/// A name or label shown to people: 1–255 characters, no control characters, and at least one
/// a person can see (a name of zero-width spaces looks like no name at all).
pub fn check_label(errors: &mut FieldErrors, field: &str, value: &str) {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        errors.add(field, format!("The {field} field is required."));
    } else if trimmed.chars().count() > 255 {
        errors.add(field, format!("The {field} may not be longer than 255 characters."));
    } else if trimmed.chars().any(char::is_control) {
        errors.add(field, format!("The {field} may not contain control characters."));
    } else if !trimmed.chars().any(is_visible) {
        errors.add(field, format!("The {field} must contain a visible character."));
    }
}

/// Whether `c` shows as something on its own: a letter, number, punctuation mark or symbol,
/// except those Unicode renders as nothing (Default_Ignorable_Code_Point: the Hangul fillers)
/// and the braille blank. Spaces, format characters (zero-width spaces and joiners, bidi
/// marks, the soft hyphen, tags), combining marks alone, and unassigned or private-use code
/// points do not.
pub fn is_visible(c: char) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    const BLANK: [char; 5] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'];
    matches!(c.general_category_group(), G::Letter | G::Number | G::Punctuation | G::Symbol) && !BLANK.contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_need_a_visible_character() {
        let problem = |value: &str| {
            let mut errors = FieldErrors::new();
            check_label(&mut errors, "name", value);
            errors.get("name").map(|m| m[0].clone())
        };
        for fine in ["a", "CI deploys", "Ünïcødé", "日本", "💥", "-", " x\u{200B} "] {
            assert_eq!(problem(fine), None, "{fine:?}");
        }
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}",
            "\u{3164}\u{3164}",
            "\u{2800}",
            "\u{00AD}",
            "\u{034F}\u{0301}",
            "\u{E0041}\u{E0042}",
            "\u{202E}\u{2066}",
            "\u{3000}\u{2003}\u{200B}",
            "\u{E000}",
        ] {
            assert_eq!(
                problem(invisible).as_deref(),
                Some("The name must contain a visible character."),
                "{invisible:?}"
            );
        }
        assert_eq!(problem("  ").as_deref(), Some("The name field is required."));
    }

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
