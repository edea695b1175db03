//! Quoting for POSIX shell scripts. User values reach a remote script only as validated
//! newtypes, and only through [`quote`] (or as environment variables set with [`env_assign`]):
//! never by string formatting into a command.
//!
//! The rule: wrap the value in single quotes, and write each single quote inside it as `'\''`
//! (close, escaped quote, reopen). Inside single quotes the shell interprets nothing: no `$`,
//! no backticks, no `\`, no newlines as separators. NUL cannot be passed to a shell at all, so
//! it is rejected.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("the value contains a NUL byte, which no shell argument can hold")]
    Nul,
}

/// `value` as one shell word that the shell passes on byte for byte.
pub fn quote(value: &str) -> Result<String, QuoteError> {
    quote_bytes(value.as_bytes()).map(|bytes| String::from_utf8(bytes).expect("quoting UTF-8 keeps it UTF-8"))
}

/// The same for arbitrary bytes (file contents, values that are not UTF-8).
pub fn quote_bytes(value: &[u8]) -> Result<Vec<u8>, QuoteError> {
    if value.contains(&0) {
        return Err(QuoteError::Nul);
    }
    let mut out = Vec::with_capacity(value.len() + 2);
    out.push(b'\'');
    for &b in value {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    Ok(out)
}

/// `NAME='value'` for the start of a script; `name` must be a valid variable name.
pub fn env_assign(name: &str, value: &str) -> Result<String, QuoteError> {
    assert!(
        !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.as_bytes()[0].is_ascii_digit(),
        "variable names are chosen by Slipway's code, never by users: {name:?}"
    );
    Ok(format!("{name}={}", quote(value)?))
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStrExt;
    use std::process::Command;

    use super::*;

    /// Values that break naive quoting; each must come out of a real shell unchanged and
    /// without running anything.
    fn hostile() -> Vec<Vec<u8>> {
        let mut values: Vec<Vec<u8>> = [
            "plain",
            "",
            "with space",
            "it's",
            "''",
            "'",
            "\"double\"",
            "$(touch /tmp/slipway-pwned)",
            "`touch /tmp/slipway-pwned`",
            "${HOME}",
            "$HOME",
            "a; touch /tmp/slipway-pwned",
            "a && touch /tmp/slipway-pwned",
            "a | cat",
            "line1\nline2\ntouch /tmp/slipway-pwned",
            "back\\slash\\",
            "tab\there",
            "*",
            "~",
            "-n",
            "--help",
            "#comment",
            "!bang",
            "ünïcödé ✓",
            "'; touch /tmp/slipway-pwned; echo '",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        values.push("x".repeat(100_000).into_bytes());
        values.push(vec![0xff, 0xfe, b'\'', 0x80, b'$']);
        values
    }

    #[test]
    fn the_shell_gets_every_hostile_value_back_unchanged() {
        let marker = std::path::Path::new("/tmp/slipway-pwned");
        let _ = std::fs::remove_file(marker);
        for value in hostile() {
            let word = quote_bytes(&value).unwrap();
            let mut script = b"printf '%s' ".to_vec();
            script.extend_from_slice(&word);
            let out = Command::new("sh").arg("-c").arg(std::ffi::OsStr::from_bytes(&script)).output().unwrap();
            assert!(out.status.success(), "{:?}", String::from_utf8_lossy(&value));
            assert_eq!(out.stdout, value, "value changed in transit: {:?}", String::from_utf8_lossy(&value));
        }
        assert!(!marker.exists(), "a hostile value ran a command");
    }

    #[test]
    fn environment_assignments_are_inert_too() {
        let line = env_assign("SLIPWAY_VALUE", "$(id) `id` 'x'\nnext").unwrap();
        let script = format!("{line}\nprintf '%s' \"$SLIPWAY_VALUE\"");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "$(id) `id` 'x'\nnext");
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(quote("a\0b"), Err(QuoteError::Nul));
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
    }

    #[test]
    #[should_panic(expected = "variable names are chosen by Slipway's code")]
    fn variable_names_are_checked() {
        let _ = env_assign("BAD NAME", "x");
    }
}
