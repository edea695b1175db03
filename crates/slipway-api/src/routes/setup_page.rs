//! The page behind the setup link printed on first start: a plain form (no JavaScript, no
//! external assets) that creates the first owner, the same way as `POST /api/v1/setup`.

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::response::Html;
use axum::routing::get;
use serde::Deserialize;

use crate::error::ApiError;
use crate::routes::account::{ClientIp, SetupRequest, run_setup, setup_code_matches};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/setup", get(form).post(submit))
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Slipway</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>body{{font:16px system-ui,sans-serif;max-width:32rem;\
         margin:3rem auto;padding:0 1rem}}label{{display:block;margin:.8rem 0 .2rem}}input{{width:100%;padding:.4rem}}\
         button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#a00}}code{{word-break:break-all}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    ))
}

#[derive(Debug, Deserialize)]
struct CodeQuery {
    code: Option<String>,
}

fn form_html(code: &str, email: &str, name: &str, organization: &str, errors: &[String]) -> String {
    let errors: String = errors.iter().map(|e| format!("<p class=\"error\">{}</p>", escape(e))).collect();
    format!(
        "{errors}<form method=\"post\" action=\"/setup\"><input type=\"hidden\" name=\"code\" value=\"{}\">\
         <label>Your name<input name=\"name\" value=\"{}\" required></label>\
         <label>Email<input name=\"email\" type=\"email\" value=\"{}\" required></label>\
         <label>Password (at least 12 characters)<input name=\"password\" type=\"password\" minlength=\"12\" required></label>\
         <label>Organization<input name=\"organization\" value=\"{}\" required></label>\
         <button type=\"submit\">Create the owner account</button></form>",
        escape(code),
        escape(name),
        escape(email),
        escape(organization)
    )
}

async fn form(State(state): State<AppState>, Query(q): Query<CodeQuery>) -> Result<Html<String>, ApiError> {
    let code = q.code.unwrap_or_default();
    if !setup_code_matches(&state, &code).await? {
        return Ok(page(
            "Setup",
            "<p>This setup link is invalid or was already used. If Slipway is already set up, <a href=\"/login\">log in</a> (or run <code>slipway login</code>); a new setup link is printed only when Slipway starts with an empty database.</p>",
        ));
    }
    Ok(page("Set up Slipway", &form_html(&code, "", "", "", &[])))
}

#[derive(Debug, Deserialize)]
struct SetupForm {
    code: String,
    email: String,
    name: String,
    password: String,
    organization: String,
}

async fn submit(State(state): State<AppState>, ip: ClientIp, Form(f): Form<SetupForm>) -> Html<String> {
    let request = SetupRequest {
        code: f.code.clone(),
        email: f.email.clone(),
        name: f.name.clone(),
        password: f.password,
        organization: f.organization.clone(),
    };
    match run_setup(&state, request, ip.map(|c| c.0.0.ip())).await {
        Ok(result) => page(
            "Slipway is ready",
            &format!(
                "<p>Welcome, {}. Your organization is set up.</p><p>An API token with every ability, shown once:</p>\
                 <p><code>{}</code></p><p>Use it with <code>Authorization: Bearer …</code>, or run <code>slipway login</code>. \
                 The API reference is at <a href=\"/docs/\">/docs/</a>.</p>\
                 <p><a href=\"/login\">Log in to the dashboard</a></p>",
                escape(&result.user.name),
                escape(&result.token.plain_text_token)
            ),
        ),
        Err(ApiError::Validation(errors)) => {
            let messages: Vec<String> =
                errors.fields().flat_map(|f| errors.get(f).unwrap_or_default().to_vec()).collect();
            page("Set up Slipway", &form_html(&f.code, &f.email, &f.name, &f.organization, &messages))
        }
        Err(other) => page("Setup failed", &format!("<p class=\"error\">{}</p>", escape(&other.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(super::escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;");
    }
}
