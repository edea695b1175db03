//! The `slipway …` command lines in the README and docs/ must parse: every subcommand and flag
//! they show exists. Commands are taken from shell code blocks and from inline code spans that
//! start with `slipway `; placeholders (`<ID>`, `…`) stand for values.

use clap::CommandFactory;
use clap::error::ErrorKind;

const DOCUMENTS: [(&str, &str); 4] = [
    ("README.md", include_str!("../../../README.md")),
    ("docs/api.md", include_str!("../../../docs/api.md")),
    ("docs/operations.md", include_str!("../../../docs/operations.md")),
    ("docs/servers.md", include_str!("../../../docs/servers.md")),
];

/// Shell words and the operators between commands (`|`, `;`, `&&`, `$(`, `)`), with quotes
/// removed; a `#` starting a word ends the line.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    let flush = |word: &mut String, in_word: &mut bool, out: &mut Vec<String>| {
        if *in_word {
            out.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == c {
                        break;
                    }
                    word.push(q);
                }
            }
            '#' if !in_word => break,
            ' ' | '\t' => flush(&mut word, &mut in_word, &mut out),
            '|' | ';' | '(' | ')' | '&' => {
                flush(&mut word, &mut in_word, &mut out);
                out.push(c.to_string());
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    flush(&mut word, &mut in_word, &mut out);
    out
}

/// The `slipway` invocations on a line: each simple command whose program (after any
/// `NAME=value` assignments) is `slipway`, also inside `$(…)`.
fn invocations(line: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut line = line.to_string();
    // Command substitutions first (they may sit in double quotes): each becomes a value.
    while let Some(start) = line.find("$(") {
        let end = line[start..].find(')').map_or(line.len(), |e| start + e);
        found.extend(invocations(&line[start + 2..end]));
        line.replace_range(start..(end + 1).min(line.len()), "value");
    }
    for command in words(&line).split(|w| ["|", ";", "(", ")", "&"].contains(&w.as_str())) {
        let start = command.iter().position(|w| !(w.contains('=') && w.starts_with(|c: char| c.is_ascii_uppercase())));
        if let Some(start) = start
            && command[start] == "slipway"
        {
            // Redirections (`>> file`, `2>&1`, `< in`) belong to the shell, not to slipway.
            let end = command[start..]
                .iter()
                .position(|w| w.starts_with('>') || w.starts_with('<') || w.starts_with("2>"))
                .map_or(command.len(), |i| start + i);
            found.push(command[start..end].to_vec());
        }
    }
    found
}

/// Every documented command line, with where it was found.
fn documented() -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for (name, text) in DOCUMENTS {
        let mut in_shell = false;
        let mut pending = String::new();
        for (n, line) in text.lines().enumerate() {
            let at = format!("{name}:{}", n + 1);
            if let Some(fence) = line.trim_start().strip_prefix("```") {
                in_shell = !in_shell && matches!(fence.trim(), "sh" | "bash" | "shell" | "console");
                continue;
            }
            if in_shell {
                pending.push_str(line.trim_end_matches('\\'));
                if line.ends_with('\\') {
                    continue;
                }
                all.extend(invocations(&std::mem::take(&mut pending)).into_iter().map(|c| (at.clone(), c)));
            } else {
                for span in line.split('`').skip(1).step_by(2) {
                    if span.starts_with("slipway ") {
                        all.extend(invocations(span).into_iter().map(|c| (at.clone(), c)));
                    }
                }
            }
        }
    }
    all
}

#[test]
fn shell_words_are_split_like_a_shell_would() {
    assert_eq!(
        invocations(r#"curl -H "x: $(slipway token create curl --ability '*:read')" # comment"#),
        vec![vec!["slipway", "token", "create", "curl", "--ability", "*:read"]]
    );
    assert_eq!(
        invocations("echo 'pw' | SLIPWAY_X=1 slipway admin create-user … --password-stdin"),
        vec![vec!["slipway", "admin", "create-user", "…", "--password-stdin"]]
    );
    assert!(invocations("cargo run --release -p slipway -- serve").is_empty());
}

#[test]
fn every_documented_command_line_parses() {
    let commands = documented();
    assert!(commands.len() > 20, "the README's commands were not found: {commands:?}");
    let mut wrong = Vec::new();
    for (at, command) in &commands {
        // `…` stands for a value or for arguments left out: either reading may parse.
        let as_value: Vec<&str> = command.iter().map(|w| if w == "…" { "value" } else { w.as_str() }).collect();
        let left_out: Vec<&str> = command.iter().map(String::as_str).filter(|w| *w != "…").collect();
        let errors: Vec<clap::Error> = [as_value, left_out]
            .into_iter()
            .filter_map(|words| crate::Cli::command().try_get_matches_from(words).err())
            .collect();
        // Documentation may leave out required values; it may not name what does not exist.
        let fine = |e: &clap::Error| {
            matches!(
                e.kind(),
                ErrorKind::MissingRequiredArgument
                    | ErrorKind::MissingSubcommand
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
            )
        };
        if errors.len() == 2 && !errors.iter().any(fine) {
            wrong.push(format!("{at}: {}\n{}", command.join(" "), errors[0].render()));
        }
    }
    assert!(wrong.is_empty(), "documented commands that do not parse:\n{}", wrong.join("\n"));
}
