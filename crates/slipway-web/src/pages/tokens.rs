//! Access tokens: the list, creating one (its secret shown once), revoking.

use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::Method;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_api::AppState;
use slipway_core::ability::Ability;

use super::once::Secret;
use crate::api::Web;
use crate::error::WebError;
use crate::model::Token;
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, Membership, render, when_opt};

pub struct AbilityGroup {
    pub resource: &'static str,
    pub abilities: Vec<String>,
}

/// An organization's own tokens (not tied to a person), for its owners and admins.
pub struct OrganizationTokens {
    pub id: String,
    pub name: String,
    pub tokens: Vec<TokenRow>,
}

pub struct TokenRow {
    pub t: Token,
    pub last_used: String,
    pub expires: String,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    groups: Vec<AbilityGroup>,
    organizations: Vec<Membership>,
    errors: FieldErrors,
    name: String,
    current_token: String,
    organization_tokens: Vec<OrganizationTokens>,
}

fn token_row(t: Token) -> TokenRow {
    TokenRow {
        last_used: match (&t.last_used_at, &t.last_used_ip) {
            (Some(at), Some(ip)) => format!("{} from {ip}", crate::view::when(at)),
            (at, _) => when_opt(at),
        },
        expires: t.expires_at.as_ref().map(crate::view::when).unwrap_or_else(|| "never".into()),
        t,
    }
}

fn ability_groups() -> Vec<AbilityGroup> {
    let mut groups: Vec<AbilityGroup> = vec![];
    for ability in Ability::all() {
        let resource = ability.resource.as_str();
        match groups.last_mut() {
            Some(g) if g.resource == resource => g.abilities.push(ability.to_string()),
            _ => groups.push(AbilityGroup { resource, abilities: vec![ability.to_string()] }),
        }
    }
    groups
}

async fn tokens_page(session: &Session, errors: FieldErrors, name: String) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let (tokens, _) = session.api.get("/api/v1/tokens?per_page=100").await?.page::<Token>()?;
    let tokens = tokens.into_iter().map(token_row).collect();
    let mut organization_tokens = vec![];
    for org in me.organizations.iter().filter(|o| me.manages(&o.id)) {
        let path = format!("/api/v1/organizations/{}/tokens?per_page=100", crate::api::encode(&org.id));
        let (tokens, _) = session.api.get(&path).await?.page::<Token>()?;
        let tokens = tokens.into_iter().map(token_row).collect();
        organization_tokens.push(OrganizationTokens { id: org.id.clone(), name: org.name.clone(), tokens });
    }
    let layout = Layout::new("Access tokens", "tokens", &me, session);
    render(&TokensPage {
        layout,
        tokens,
        groups: ability_groups(),
        organizations: me.organizations,
        errors,
        name,
        current_token: session.token_id.clone(),
        organization_tokens,
    })
}

pub async fn list(session: Session) -> Result<Html<String>, WebError> {
    tokens_page(&session, FieldErrors::default(), String::new()).await
}

/// A comma- or space-separated list field, or `null` when empty.
fn list_field(text: &str) -> Value {
    let items: Vec<&str> = text.split([',', ' ', '\n']).map(str::trim).filter(|s| !s.is_empty()).collect();
    if items.is_empty() { Value::Null } else { json!(items) }
}

pub async fn create(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let field =
        |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.trim().to_string()).unwrap_or_default();
    let abilities: Vec<&str> = pairs.iter().filter(|(k, _)| k == "abilities").map(|(_, v)| v.as_str()).collect();
    let expires = field("expires_on");
    let expires_at = if expires.is_empty() { Value::Null } else { json!(format!("{expires}T23:59:59Z")) };
    let organization = field("organization_id");
    let body = json!({
        "name": field("name"),
        "abilities": if abilities.is_empty() { Value::Null } else { json!(abilities) },
        "organization_id": if organization.is_empty() { Value::Null } else { json!(organization) },
        "server_ids": list_field(&field("server_ids")),
        "site_ids": list_field(&field("site_ids")),
        "allowed_ips": list_field(&field("allowed_ips")),
        "expires_at": expires_at,
    });
    let reply = session.api.post("/api/v1/tokens", body).await?;
    if reply.status.as_u16() == 422 {
        return Ok(tokens_page(&session, FieldErrors(reply.field_errors()), field("name")).await?.into_response());
    }
    show_once(&state, &web, &session, reply)
}

/// Sends the browser to the page that shows the new secret in the API's answer, once.
fn show_once(state: &AppState, web: &Web, session: &Session, reply: crate::api::Reply) -> Result<Response, WebError> {
    let reply = reply.success()?;
    let plain = reply.body.pointer("/data/plain_text_token").and_then(Value::as_str).unwrap_or_default();
    let secret =
        Secret { what: "the token".into(), value: plain.into(), back: "/tokens".into(), section: "tokens".into() };
    Ok(super::once::redirect(state, web, session, "/tokens/created", &secret))
}

/// A new secret for a token (the old one stops working), shown once.
pub async fn rotate(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let reply = session.api.post(&format!("/api/v1/tokens/{}/rotate", crate::api::encode(&id)), json!({})).await?;
    show_once(&state, &web, &session, reply)
}

pub async fn revoke(session: Session, Path(id): Path<String>) -> Result<Response, WebError> {
    session.api.send(Method::DELETE, &format!("/api/v1/tokens/{}", crate::api::encode(&id)), None).await?.success()?;
    Ok(Redirect::to("/tokens").into_response())
}

#[derive(Debug, Deserialize)]
pub struct OrganizationTokenForm {
    name: String,
    #[serde(default)]
    abilities: String,
}

/// A token of the organization (it stays when people leave), its secret shown once.
pub async fn create_for_organization(
    State(state): State<AppState>,
    axum::Extension(web): axum::Extension<Web>,
    session: Session,
    Path(organization): Path<String>,
    Form(form): Form<OrganizationTokenForm>,
) -> Result<Response, WebError> {
    let abilities: Vec<&str> = form.abilities.split([',', ' ']).map(str::trim).filter(|a| !a.is_empty()).collect();
    let body = json!({
        "name": form.name.trim(),
        "abilities": if abilities.is_empty() { Value::Null } else { json!(abilities) },
    });
    let path = format!("/api/v1/organizations/{}/tokens", crate::api::encode(&organization));
    let reply = session.api.post(&path, body).await?;
    if reply.status.as_u16() == 422 {
        let errors = reply.field_errors().into_iter().map(|(f, m)| (format!("organization.{f}"), m)).collect();
        return Ok(tokens_page(&session, FieldErrors(errors), String::new()).await?.into_response());
    }
    show_once(&state, &web, &session, reply)
}

pub async fn revoke_for_organization(
    session: Session,
    Path((organization, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let path =
        format!("/api/v1/organizations/{}/tokens/{}", crate::api::encode(&organization), crate::api::encode(&id));
    session.api.send(Method::DELETE, &path, None).await?.success()?;
    Ok(Redirect::to("/tokens").into_response())
}
