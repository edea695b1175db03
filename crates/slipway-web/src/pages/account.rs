//! The signed-in user's account: profile and two-factor enrolment (with a QR code drawn here).

use askama::Template;
use axum::extract::Form;
use axum::response::Html;
use serde::Deserialize;
use serde_json::json;

use crate::error::WebError;
use crate::session::Session;
use crate::view::{FieldErrors, Layout, Me, render};

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    me: Me,
    /// While enrolling: the QR code (SVG markup drawn by Slipway) and the secret to type in.
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    errors: FieldErrors,
    /// What the last change did, in the API's words.
    notice: String,
}

async fn page(
    session: &Session,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    errors: FieldErrors,
) -> Result<Html<String>, WebError> {
    page_with(session, enrolment, recovery_codes, errors, String::new()).await
}

async fn page_with(
    session: &Session,
    enrolment: Option<(String, String)>,
    recovery_codes: Vec<String>,
    errors: FieldErrors,
    notice: String,
) -> Result<Html<String>, WebError> {
    let me = Me::load(session).await?;
    let layout = Layout::new("Your account", "account", &me, session);
    render(&AccountPage { layout, me, enrolment, recovery_codes, errors, notice })
}

pub async fn show(session: Session) -> Result<Html<String>, WebError> {
    page(&session, None, vec![], FieldErrors::default()).await
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    password: String,
}

#[derive(Debug, Deserialize)]
struct Enrolment {
    otpauth_uri: String,
    secret: String,
}

/// The otpauth URI as an SVG QR code. The URI holds the secret, so it is drawn here rather than
/// by any outside service.
fn qr_svg(uri: &str) -> Result<String, WebError> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(|e| WebError::Internal(format!("QR code: {e}")))?;
    Ok(code.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).quiet_zone(true).build().replacen(
        "<svg ",
        "<svg role=\"img\" aria-label=\"QR code for your authenticator app\" ",
        1,
    ))
}

pub async fn enrol(session: Session, Form(form): Form<PasswordForm>) -> Result<Html<String>, WebError> {
    let reply = session.api.post("/api/v1/user/two-factor", json!({"password": form.password})).await?;
    if reply.status.as_u16() == 422 {
        return page(&session, None, vec![], FieldErrors(reply.field_errors())).await;
    }
    let enrolment: Enrolment = reply.data()?;
    let svg = qr_svg(&enrolment.otpauth_uri)?;
    page(&session, Some((svg, enrolment.secret)), vec![], FieldErrors::default()).await
}

#[derive(Debug, Deserialize)]
pub struct CodeForm {
    code: String,
}

#[derive(Debug, Deserialize)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

pub async fn confirm(session: Session, Form(form): Form<CodeForm>) -> Result<Html<String>, WebError> {
    let reply = session.api.post("/api/v1/user/two-factor/confirm", json!({"code": form.code.trim()})).await?;
    if reply.status.as_u16() == 422 {
        let mut errors = reply.field_errors();
        errors.push(("enrolment".into(), vec!["Start again: turn two-factor on with your password.".into()]));
        return page(&session, None, vec![], FieldErrors(errors)).await;
    }
    let codes: RecoveryCodes = reply.data()?;
    page(&session, None, codes.recovery_codes, FieldErrors::default()).await
}

#[derive(Debug, Deserialize)]
pub struct DisableForm {
    password: String,
    code: String,
}

/// Turns two-factor off (the API asks for the password and a current code).
pub async fn disable(session: Session, Form(form): Form<DisableForm>) -> Result<Html<String>, WebError> {
    let body = json!({"password": form.password, "code": form.code.trim()});
    let reply = session.api.post("/api/v1/user/two-factor/disable", body).await?;
    if reply.status.as_u16() == 422 {
        return page(&session, None, vec![], FieldErrors(reply.field_errors())).await;
    }
    reply.success()?;
    page(&session, None, vec![], FieldErrors::default()).await
}

#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    current_password: String,
    password: String,
    confirmation: String,
}

/// A new password (the API ends the other dashboard sessions and says so).
pub async fn change_password(session: Session, Form(form): Form<PasswordChange>) -> Result<Html<String>, WebError> {
    if form.password != form.confirmation {
        let errors = vec![("confirmation".to_string(), vec!["The two new passwords differ.".to_string()])];
        return page(&session, None, vec![], FieldErrors(errors)).await;
    }
    let body = json!({"current_password": form.current_password, "password": form.password});
    let reply = session.api.send(axum::http::Method::PUT, "/api/v1/user/password", Some(body)).await?;
    if reply.status.as_u16() == 422 {
        // `password` is the new one here; the two-factor forms use that name for the current one.
        let errors =
            reply.field_errors().into_iter().map(|(f, m)| (if f == "password" { "new_password".into() } else { f }, m));
        return page(&session, None, vec![], FieldErrors(errors.collect())).await;
    }
    let reply = reply.success()?;
    let notice = reply.body.get("message").and_then(|m| m.as_str()).unwrap_or("Your password is changed.").to_string();
    page_with(&session, None, vec![], FieldErrors::default(), notice).await
}
