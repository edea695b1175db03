//! How the client reports a failure: what was not found, in words; each message of an error
//! chain once; and with `--output json`, the error as JSON on stdout.

use std::collections::BTreeMap;

use slipway_client::ClientError;

use super::Output;

/// What a request named, so that a 404 can say what was not found.
#[derive(Debug, Clone, Copy)]
pub enum Missing<'a> {
    Server(&'a str),
    Site { server: &'a str, site: &'a str },
    Deployment { server: &'a str, site: &'a str, id: &'a str },
    Item { server: &'a str, kind: &'a str, id: &'a str },
    Token(&'a str),
}

/// The message Slipway gives every 404; a more specific one from the API is kept as it is.
const GENERIC_NOT_FOUND: &str = "Not found.";

impl Missing<'_> {
    pub fn message(&self) -> String {
        match self {
            Missing::Server(server) => format!("No server named or with id {server:?} in your organizations."),
            Missing::Site { server, site } => format!(
                "No site with the domain or id {site:?} on a server named or with id {server:?} in your organizations."
            ),
            Missing::Deployment { server, site, id } => {
                format!("No deployment {id:?} of site {site:?} on server {server:?} in your organizations.")
            }
            Missing::Item { server, kind, id } => format!("No {kind} {id:?} on server {server:?}."),
            Missing::Token(id) => format!("No token with the id {id:?} among yours."),
        }
    }

    /// For `map_err`: a bare 404 becomes one that says what was not found.
    pub fn describe(self) -> impl FnOnce(ClientError) -> ClientError {
        move |e| match e {
            ClientError::Api { status: 404, message, errors } if message == GENERIC_NOT_FOUND => {
                ClientError::Api { status: 404, message: self.message(), errors }
            }
            other => other,
        }
    }
}

/// The error's messages from the outermost in, each once: a cause whose text an outer message
/// already contains adds nothing.
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Prints a failed command's error: `error: …` on stderr, or with `--output json`
/// `{"message", "errors", "status"}` on stdout (`errors` maps fields to messages, and is empty
/// when the failure was not about input; `status` is the HTTP status, when Slipway answered).
#[allow(clippy::print_stdout)]
pub fn report(e: &anyhow::Error, output: Output) {
    match output {
        Output::Human => eprintln!("error: {}", chain_text(e)),
        Output::Json => {
            let api = e.chain().find_map(|c| c.downcast_ref::<ClientError>());
            let mut value = match api {
                // The API's own words when nothing was added around them.
                Some(ClientError::Api { status, message, errors }) if e.chain().count() == 1 => {
                    serde_json::json!({"message": message, "errors": errors, "status": status})
                }
                other => serde_json::json!({
                    "message": chain_text(e),
                    "errors": BTreeMap::<String, Vec<String>>::new(),
                    "status": other.and_then(ClientError::status),
                }),
            };
            // What ended badly (an operation, a deployment) goes in the same document.
            if let Some(failed) = e.chain().find_map(|c| c.downcast_ref::<super::follow::OperationFailed>()) {
                value[failed.key] = failed.resource.clone();
            }
            println!("{}", serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_says_each_message_once() {
        #[derive(Debug)]
        struct Outer {
            source: std::io::Error,
        }
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "cannot reach Slipway at http://x: {}", self.source)
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let inner = std::io::Error::other("connection refused");
        let e = anyhow::Error::new(Outer { source: inner }).context("login failed");
        assert_eq!(chain_text(&e), "login failed: cannot reach Slipway at http://x: connection refused");
    }

    #[test]
    fn a_bare_404_says_what_was_not_found() {
        let bare = ClientError::Api { status: 404, message: GENERIC_NOT_FOUND.into(), errors: BTreeMap::new() };
        let described = Missing::Server("web-1").describe()(bare);
        assert!(described.to_string().starts_with("No server named or with id \"web-1\" in your organizations."));
        let specific = ClientError::Api { status: 404, message: "No such site.".into(), errors: BTreeMap::new() };
        let kept = Missing::Server("web-1").describe()(specific);
        assert!(kept.to_string().starts_with("No such site."), "{kept}");
    }
}
