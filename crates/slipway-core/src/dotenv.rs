//! The `.env` format Slipway writes and reads. Values are written double-quoted with `\\`, `"`,
//! `$`, newline, carriage return and tab escaped, which phpdotenv, python-dotenv and Node's
//! dotenv read back exactly; reading also accepts single-quoted (literal) and unquoted values
//! and `export ` prefixes, as found in hand-written files.

/// One `KEY="value"` line (without the newline).
pub fn line(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 4);
    out.push_str(key);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A whole file from `(key, value)` pairs.
pub fn render<'a>(vars: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::from("# Managed by Slipway: edit environment variables in Slipway, not here.\n");
    for (k, v) in vars {
        out.push_str(&line(k, v));
        out.push('\n');
    }
    out
}

/// Parses a file; lines that are not assignments (comments, blanks) are skipped, and an
/// unterminated quote is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut vars = Vec::new();
    let mut rest = text;
    let mut line_no = 0;
    while !rest.is_empty() {
        line_no += 1;
        let (raw, after) = rest.split_once('\n').unwrap_or((rest, ""));
        rest = after;
        let l = raw.trim_start();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let l = l.strip_prefix("export ").unwrap_or(l);
        let Some((key, value_text)) = l.split_once('=') else { continue };
        let key = key.trim().to_string();
        let value_text = value_text.trim_start();
        let value = if let Some(body) = value_text.strip_prefix('"') {
            // Double-quoted, possibly running over the following lines.
            let mut out = String::new();
            let mut source = body.to_string();
            loop {
                let mut chars = source.chars();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some('n') => out.push('\n'),
                            Some('r') => out.push('\r'),
                            Some('t') => out.push('\t'),
                            Some(c) => out.push(c),
                            None => out.push('\\'),
                        },
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                if closed {
                    break;
                }
                if rest.is_empty() {
                    return Err(format!("line {line_no}: the quoted value of {key} never ends"));
                }
                let (next, after) = rest.split_once('\n').unwrap_or((rest, ""));
                rest = after;
                out.push('\n');
                source = next.to_string();
            }
            out
        } else if let Some(body) = value_text.strip_prefix('\'') {
            match body.find('\'') {
                Some(end) => body[..end].to_string(),
                None => return Err(format!("line {line_no}: the quoted value of {key} never ends")),
            }
        } else {
            // Unquoted: up to a ` #` comment, trimmed.
            let v = value_text.split(" #").next().unwrap_or("");
            v.trim().to_string()
        };
        vars.push((key, value));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_round_trip_exactly() {
        let values = [
            "plain",
            "",
            "with \"double\" and 'single' quotes",
            "$HOME and ${PATH} and $(id) and `id`",
            "line one\nline two\r\nthree\ttab",
            "a # not a comment",
            "back\\slash\\n literal",
            "ünïcödé ✓",
            " leading and trailing ",
        ];
        let pairs: Vec<(String, String)> =
            values.iter().enumerate().map(|(i, v)| (format!("K{i}"), v.to_string())).collect();
        let text = render(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(parse(&text).unwrap(), pairs);
    }

    #[test]
    fn hand_written_files_are_read() {
        let text =
            "# comment\n\nexport A=1\nB = two words # note\nC='lit $x \\n'\nD=\"multi\nline\"\nnot an assignment\n";
        assert_eq!(
            parse(text).unwrap(),
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "lit $x \\n".into()),
                ("D".into(), "multi\nline".into()),
            ]
        );
        assert!(parse("A=\"open\n").unwrap_err().contains("never ends"));
    }
}
