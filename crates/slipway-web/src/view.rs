//! What every page shares: the layout's data, rendering, and small display helpers.

use askama::Template;
use axum::response::Html;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use slipway_core::Role;
use slipway_core::ability::Ability;

use crate::error::WebError;
use crate::session::Session;

/// The signed-in user, as `GET /api/v1/user` answers.
#[derive(Debug, Deserialize)]
pub struct Me {
    pub name: String,
    pub email: String,
    pub two_factor_enabled: bool,
    pub organizations: Vec<Membership>,
}

#[derive(Debug, Deserialize)]
pub struct Membership {
    pub id: String,
    pub name: String,
    pub role: String,
}

impl Me {
    pub async fn load(session: &Session) -> Result<Me, WebError> {
        session.api.get("/api/v1/user").await?.data()
    }

    /// Whether this user's role in `organization` allows `ability`: what decides which buttons a
    /// page shows. The API checks the same rule again when the button is used.
    pub fn may(&self, organization: &str, ability: &str) -> bool {
        let Some(ability) = Ability::parse(ability) else { return false };
        self.organizations
            .iter()
            .find(|m| m.id == organization)
            .and_then(|m| Role::parse(&m.role))
            .is_some_and(|role| role.allows(ability))
    }
}

impl Me {
    /// Whether this user is an owner or admin of `organization` (who manage its members,
    /// settings and organization tokens).
    pub fn manages(&self, organization: &str) -> bool {
        self.organizations
            .iter()
            .find(|m| m.id == organization)
            .and_then(|m| Role::parse(&m.role))
            .is_some_and(Role::manages_organization)
    }
}

/// The frame around a page: its title, the navigation and the logout form.
#[derive(Debug)]
pub struct Layout {
    pub title: String,
    pub section: &'static str,
    pub user: Option<String>,
    pub csrf: String,
}

impl Layout {
    pub fn new(title: impl Into<String>, section: &'static str, me: &Me, session: &Session) -> Self {
        Layout { title: title.into(), section, user: Some(me.name.clone()), csrf: session.csrf.clone() }
    }

    /// For pages outside a session (the login form).
    pub fn public(title: impl Into<String>) -> Self {
        Layout { title: title.into(), section: "", user: None, csrf: String::new() }
    }

    /// `aria-current` for the navigation link of this page's section.
    pub fn current(&self, section: &str) -> &'static str {
        if self.section == section { "page" } else { "false" }
    }
}

pub fn render<T: Template>(page: &T) -> Result<Html<String>, WebError> {
    page.render().map(Html).map_err(|e| WebError::Internal(format!("template: {e}")))
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: Layout,
    message: &'a str,
}

pub fn error_page(title: &str, message: &str) -> Html<String> {
    let page = ErrorPage { layout: Layout::public(title), message };
    Html(page.render().unwrap_or_else(|_| "Error".into()))
}

/// A time as people read it, in UTC.
pub fn when(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_opt(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(when).unwrap_or_else(|| "never".into())
}

/// Field messages of a refused form, to show next to each field.
#[derive(Debug, Default)]
pub struct FieldErrors(pub Vec<(String, Vec<String>)>);

impl FieldErrors {
    pub fn of(&self, field: &str) -> String {
        self.0
            .iter()
            .filter(|(f, _)| f == field || f.starts_with(&format!("{field}.")))
            .flat_map(|(_, m)| m.clone())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Messages for fields the form does not show (so nothing the API said is lost).
    pub fn other(&self, shown: &str) -> Vec<String> {
        let shown: Vec<&str> = shown.split(',').collect();
        self.0
            .iter()
            .filter(|(f, _)| !shown.iter().any(|s| f == s || f.starts_with(&format!("{s}."))))
            .flat_map(|(f, m)| m.iter().map(move |m| format!("{f}: {m}")))
            .collect()
    }
}

/// A form field for the API: trimmed, and `null` when left empty (so the API's default applies).
pub fn optional(text: &str) -> serde_json::Value {
    let text = text.trim();
    if text.is_empty() { serde_json::Value::Null } else { serde_json::Value::String(text.to_string()) }
}

/// `?page=` of a list page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<u32>,
}

impl PageQuery {
    pub fn number(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }
}
