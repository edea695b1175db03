//! The dashboard in process, over a throwaway database: sessions, CSRF, headers, what each
//! role sees and may do, and that no secret reaches a page. (The browser tests in
//! `crates/slipway/tests/e2e/dashboard.rs` drive the same pages in Chromium end to end.)

use slipway_core::InstallStatus;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use slipway_api::{ApiConfig, AppState};
use slipway_core::{Role, SecretsKey};
use slipway_store::testing::TestDatabase;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";

struct Dashboard {
    _db: TestDatabase,
    state: AppState,
    router: Router,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    html: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// The CSRF value the page's forms carry.
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a form with a CSRF value") + 19;
        self.html[at..].split('"').next().unwrap().to_string()
    }
}

impl Dashboard {
    async fn new(db: TestDatabase, public_url: &str, tweak: impl FnOnce(&mut ApiConfig)) -> Dashboard {
        let store = db.store().await;
        let mut config = ApiConfig::new(public_url);
        tweak(&mut config);
        let state = AppState::new(store, SecretsKey::generate(), config);
        let web = slipway_web::router(slipway_api::app(state.clone()), public_url);
        let router = slipway_api::app_with(state.clone(), web);
        Dashboard { _db: db, state, router }
    }

    async fn user(&self, email: &str) -> (String, String) {
        let new = slipway_store::testing::user(email, "Owner", PASSWORD);
        let (id, org) = (new.id.clone(), slipway_core::new_id());
        self.state.store.create_user_with_organization(&new, &org, "Agency", "owner").await.unwrap();
        (id, org)
    }

    async fn member(&self, org: &str, email: &str, role: Role) {
        let new = slipway_store::testing::user(email, &format!("A {role}"), PASSWORD);
        self.state.store.create_user(&new).await.unwrap();
        self.state.store.add_member(org, &new.id, role.as_str()).await.unwrap();
    }

    /// The stored token behind a secret (a session cookie's value, a token shown once).
    async fn token_row(&self, secret: &str) -> slipway_store::AccessToken {
        let hash = slipway_core::token::PlainToken::parse(secret).unwrap().hash();
        self.state.store.token_by_hash(&hash).await.unwrap().expect("a stored token").as_ref().clone()
    }

    /// A server and an installed site on it, straight into the store; returns the site's page.
    async fn site(&self, org: &str) -> String {
        let server = slipway_store::testing::server(org, "web-1");
        self.state.store.insert_server(&server).await.unwrap();
        let site = slipway_store::testing::site(&server, "shop.example.com");
        let site = self.state.store.insert_site(&site).await.unwrap();
        format!("/servers/{}/sites/{}", server.id, site.id)
    }
}

impl Dashboard {
    /// An API call with a `*` token of `user_id`: its status and JSON.
    async fn api(
        &self,
        user_id: &str,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let (row, plain) = slipway_store::testing::personal_token(user_id, &["*"]);
        self.state.store.insert_token(&row).await.unwrap();
        let mut request =
            Request::builder().method(method).uri(path).header("authorization", format!("Bearer {}", plain.expose()));
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}

/// A browser: a cookie jar over the dashboard.
struct Browser<'a> {
    app: &'a Dashboard,
    cookies: BTreeMap<String, String>,
    /// Every `Set-Cookie` line received, to check their flags.
    set_cookies: Vec<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a Dashboard) -> Self {
        Browser { app, cookies: BTreeMap::new(), set_cookies: vec![] }
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        form: Option<&[(&str, &str)]>,
        extra: &[(&str, &str)],
    ) -> Page {
        let mut request = Request::builder().method(method).uri(path);
        if !extra.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
            request = request.header(header::HOST, "slipway.test");
        }
        let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !jar.is_empty() {
            request = request.header(header::COOKIE, jar.join("; "));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let body = match form {
            Some(fields) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(fields).unwrap())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let response = self.app.router.clone().oneshot(request).await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        for line in headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            self.set_cookies.push(line.to_string());
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.into(), value.into());
            }
        }
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page { status, headers, html: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, &[]).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.send(Method::POST, path, Some(form), &[]).await
    }

    async fn login_with(&mut self, email: &str, otp: &str, next: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, 200);
        let csrf = form.csrf();
        self.post("/login", &[("csrf", &csrf), ("email", email), ("password", PASSWORD), ("otp", otp), ("next", next)])
            .await
    }

    async fn login(&mut self, email: &str) {
        let done = self.login_with(email, "", "/").await;
        assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
        assert_eq!(done.location(), "/");
    }

    fn session(&self) -> String {
        self.cookies.get("slipway_session").cloned().expect("a session cookie")
    }
}

#[tokio::test]
async fn login_gives_a_strict_http_only_session_that_logout_ends_on_the_server() {
    for db in TestDatabase::each().await {
        let app = Dashboard::new(db, "http://slipway.test", |_| {}).await;
        app.user("owner@example.com").await;
        let mut browser = Browser::new(&app);
        // Without a session every page leads to the login form, and back after it.
        let page = browser.get("/servers").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(page.location(), "/login?next=%2Fservers");

        let refused = browser.login_with("owner@example.com", "", "/").await;
        assert_eq!(refused.status, StatusCode::SEE_OTHER);
        let wrong = {
            let form = browser.get("/login").await;
            let csrf = form.csrf();
            browser
                .post("/login", &[("csrf", &csrf), ("email", "owner@example.com"), ("password", "wrong password!")])
                .await
        };
        assert_eq!(wrong.status, StatusCode::OK);
        assert!(wrong.html.contains("These credentials do not match our records."), "{}", wrong.html);
        assert!(wrong.html.contains("value=\"owner@example.com\""), "the email is kept");

        let home = browser.get("/").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.html);
        assert!(home.html.contains("No servers yet"), "{}", home.html);
        let session_line = browser.set_cookies.iter().find(|l| l.starts_with("slipway_session=slp_")).unwrap();
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(session_line.contains(flag), "{session_line}");
        }
        assert!(!session_line.contains("Secure"), "plain HTTP: no Secure flag");

        // The session is a token the API issued at login, with the session's absolute lifetime.
        let stolen = browser.session();
        let row = app.token_row(&stolen).await;
        assert_eq!(row.created_via, "dashboard");
        let lifetime = row.expires_at.unwrap() - row.created_at;
        assert!((lifetime - chrono::Duration::hours(12)).num_seconds().abs() < 60, "{lifetime}");

        let home = browser.get("/").await;
        let out = browser.post("/logout", &[("csrf", &home.csrf())]).await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert_eq!(out.location(), "/login?ended=out");
        assert!(!browser.cookies.contains_key("slipway_session"));
        // The old cookie is dead on the server too, not only forgotten by the browser.
        browser.cookies.insert("slipway_session".into(), stolen);
        let again = browser.get("/").await;
        assert_eq!(again.status, StatusCode::SEE_OTHER);
        assert_eq!(again.location(), "/login?ended=expired");
        // And an API token (not a dashboard login) is not a session.
    }
}

#[tokio::test]
async fn an_api_token_in_the_cookie_is_not_a_session() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (user, _) = app.user("owner@example.com").await;
    let (row, plain) = slipway_store::testing::personal_token(&user, &["*"]);
    app.state.store.insert_token(&row).await.unwrap();
    let mut browser = Browser::new(&app);
    browser.cookies.insert("slipway_session".into(), plain.expose().to_string());
    let page = browser.get("/").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().starts_with("/login"), "{}", page.location());
}

#[tokio::test]
async fn forms_without_the_right_csrf_value_or_from_another_site_are_refused() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    app.user("owner@example.com").await;
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let csrf = browser.get("/tokens").await.csrf();

    let missing = browser.post("/tokens", &[("name", "ci")]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN, "{}", missing.html);
    assert!(missing.html.contains("did not come from this Slipway"), "{}", missing.html);
    let wrong = browser.post("/tokens", &[("csrf", &"0".repeat(64)), ("name", "ci")]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let cross = browser
        .send(Method::POST, "/tokens", Some(&[("csrf", &csrf), ("name", "ci")]), &[("origin", "https://evil.example")])
        .await;
    let elsewhere = [("origin", "http://slipway.test.evil.example"), ("host", "127.0.0.1:8080")];
    let lookalike = browser.send(Method::POST, "/tokens", Some(&[("csrf", &csrf), ("name", "ci")]), &elsewhere).await;
    assert_eq!(lookalike.status, StatusCode::FORBIDDEN);
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let fetch_site = browser
        .send(Method::POST, "/tokens", Some(&[("csrf", &csrf), ("name", "ci")]), &[("sec-fetch-site", "cross-site")])
        .await;
    assert_eq!(fetch_site.status, StatusCode::FORBIDDEN);
    // The login form is protected too (no session yet: its own cookie's value).
    let mut stranger = Browser::new(&app);
    let login = stranger.post("/login", &[("email", "owner@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(login.status, StatusCode::FORBIDDEN);
    assert!(!stranger.cookies.contains_key("slipway_session"));
    // None of the refused forms created anything; the right one does.
    let listed = browser.get("/tokens").await;
    assert!(!listed.html.contains("<td>ci<"), "a refused form created a token");
    // Behind a proxy that changes the Host header, the public URL's origin is still this site.
    let proxied = [("origin", "http://slipway.test"), ("host", "127.0.0.1:8080")];
    let created = browser.send(Method::POST, "/tokens", Some(&[("csrf", &csrf), ("name", "ci")]), &proxied).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.html);
    assert_eq!(created.location(), "/tokens/created");
}

#[tokio::test]
async fn a_viewer_sees_no_button_it_cannot_use_and_a_forced_action_is_refused() {
    for db in TestDatabase::each().await {
        let app = Dashboard::new(db, "http://slipway.test", |_| {}).await;
        let (_, org) = app.user("owner@example.com").await;
        app.member(&org, "viewer@example.com", Role::Viewer).await;
        let site = app.site(&org).await;
        let server = site.split("/sites/").next().unwrap().to_string();

        let mut owner = Browser::new(&app);
        owner.login("owner@example.com").await;
        let page = owner.get(&site).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.html.contains("Deploy now"));
        assert!(page.html.contains("Save the variable"));
        assert!(owner.get(&server).await.html.contains("Provision"));

        let mut viewer = Browser::new(&app);
        viewer.login("viewer@example.com").await;
        let page = viewer.get(&site).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.html.contains("shop.example.com"));
        for button in ["Deploy now", "Save the variable", "Reveal the values", "Roll back"] {
            assert!(!page.html.contains(button), "a viewer sees {button:?}");
        }
        let server_page = viewer.get(&server).await;
        assert!(!server_page.html.contains("Provision") && !server_page.html.contains("Add a site"));
        assert!(!viewer.get("/servers").await.html.contains("Add a server"));
        // Forced, with the viewer's own valid CSRF value: the API behind it says no.
        let csrf = page.csrf();
        let forced = viewer.post(&format!("{site}/deploy"), &[("csrf", &csrf)]).await;
        assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);
        let forced = viewer.post(&format!("{site}/env"), &[("csrf", &csrf), ("key", "A"), ("value", "b")]).await;
        assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);
        let forced = viewer.get(&format!("{site}/env")).await;
        assert_eq!(forced.status, StatusCode::FORBIDDEN, "revealing values needs site:update");
        let page = slipway_core::page::PageRequest::default();
        let (deployments, _) =
            app.state.store.deployments_of_site(site.rsplit('/').next().unwrap(), page).await.unwrap();
        assert!(deployments.is_empty(), "a refused deploy left a deployment");
    }
}

#[tokio::test]
async fn planted_secrets_never_reach_a_page_and_a_new_token_is_shown_once() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let site = app.site(&org).await;
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let csrf = browser.get(&site).await.csrf();
    const PLANTED: &str = "planted-secret-4f1c9a";
    let saved =
        browser.post(&format!("{site}/env"), &[("csrf", &csrf), ("key", "API_SECRET"), ("value", PLANTED)]).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);

    let created = browser
        .post(
            "/tokens",
            &[("csrf", &csrf), ("name", "deploys"), ("abilities", "site:read"), ("abilities", "site:deploy")],
        )
        .await;
    assert_eq!(created.location(), "/tokens/created");
    // The secret travels sealed, never in clear, in the cookie that carries it to the next page.
    let carried = browser.cookies.get("slipway_shown_once").cloned().unwrap();
    assert!(!carried.contains("slp_"));
    let shown = browser.get("/tokens/created").await;
    let at = shown.html.find("id=\"new-token\">").expect("the secret is shown") + 15;
    let secret = shown.html[at..].split('<').next().unwrap().to_string();
    assert!(secret.starts_with("slp_"), "{secret}");
    // It works against the API, with the abilities picked.
    let api = app
        .router
        .clone()
        .oneshot(
            Request::get("/api/v1/tokens/current")
                .header("authorization", format!("Bearer {secret}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::OK);
    let body: serde_json::Value = serde_json::from_slice(&api.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["data"]["abilities"], serde_json::json!(["site:read", "site:deploy"]));
    // Shown once: a reload does not show it again.
    let reload = browser.get("/tokens/created").await;
    assert!(!reload.html.contains(&secret) && reload.html.contains("shown once"), "{}", reload.html);

    let mut pages = vec![
        site.clone(),
        "/".into(),
        "/tokens".into(),
        "/sites".into(),
        "/servers".into(),
        "/account".into(),
        "/organization".into(),
    ];
    pages.push(site.split("/sites/").next().unwrap().to_string());
    for path in &pages {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
        for planted in [PLANTED, secret.as_str(), browser.session().as_str()] {
            assert!(!page.html.contains(planted), "{path} shows a secret");
        }
    }
    assert!(browser.get(&site).await.html.contains("<code>API_SECRET</code>"), "the key is listed, its value is not");
    // Revealed on purpose by someone allowed to: then, and only then.
    assert!(browser.get(&format!("{site}/env")).await.html.contains(PLANTED));
}

#[tokio::test]
async fn an_idle_session_ends_and_says_why() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |c| {
        c.session_idle = Duration::from_secs(1);
    })
    .await;
    app.user("owner@example.com").await;
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let session = browser.session();
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let page = browser.get("/tokens").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login?ended=idle&next=%2Ftokens");
    assert!(browser.get("/login?ended=idle").await.html.contains("without activity"));
    // Ended on the server: the token is revoked.
    let row = app.token_row(&session).await;
    assert!(row.revoked_at.is_some());
}

#[tokio::test]
async fn over_https_cookies_are_secure_and_host_only() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "https://slipway.test", |_| {}).await;
    app.user("owner@example.com").await;
    let mut browser = Browser::new(&app);
    let form = browser.get("/login").await;
    let csrf = form.csrf();
    assert!(browser.set_cookies.iter().any(|l| l.starts_with("__Host-slipway_login=") && l.contains("; Secure")));
    let done = browser.post("/login", &[("csrf", &csrf), ("email", "owner@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
    let line = browser.set_cookies.iter().find(|l| l.starts_with("__Host-slipway_session=slp_")).unwrap();
    for flag in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(line.contains(flag), "{line}");
    }
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
}

#[tokio::test]
async fn pages_carry_the_security_headers_and_refused_forms_show_field_messages() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let mut browser = Browser::new(&app);
    let login = browser.get("/login").await;
    assert_eq!(login.headers.get("content-security-policy").unwrap(), slipway_web::CONTENT_SECURITY_POLICY);
    assert!(slipway_web::CONTENT_SECURITY_POLICY.contains("script-src 'self'"));
    assert!(!slipway_web::CONTENT_SECURITY_POLICY.contains("unsafe"));
    assert_eq!(login.headers.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(login.headers.get("cache-control").unwrap(), "no-store");
    browser.login("owner@example.com").await;
    for path in ["/", "/servers", "/servers/new", "/sites", "/tokens", "/account", "/organization"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.headers.get("content-type").unwrap().to_str().unwrap().starts_with("text/html"));
        assert!(page.headers.contains_key("content-security-policy"), "{path}");
        // No inline script or style for the CSP to block, and nothing from elsewhere.
        assert!(
            !page.html.contains("<script>") && !page.html.contains(" style=") && !page.html.contains("<style"),
            "{path}"
        );
        assert!(!page.html.contains("https://") && !page.html.contains("http://"), "{path} links outside");
    }
    for asset in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"] {
        assert_eq!(browser.get(asset).await.status, StatusCode::OK, "{asset}");
    }

    // A form the API refuses comes back with its message next to the field, and what was typed.
    let csrf = browser.get("/servers/new").await.csrf();
    let refused = browser
        .post("/servers", &[("csrf", &csrf), ("name", ""), ("ip_address", "not an address!"), ("ssh_port", "22")])
        .await;
    assert_eq!(refused.status, StatusCode::OK);
    assert!(refused.html.contains("id=\"name-error\""), "{}", refused.html);
    assert!(refused.html.contains("id=\"ip_address-error\""), "{}", refused.html);
    assert!(refused.html.contains("value=\"not an address!\""));
    let port = browser
        .post("/servers", &[("csrf", &csrf), ("name", "web"), ("ip_address", "203.0.113.9"), ("ssh_port", "x")])
        .await;
    assert!(port.html.contains("The SSH port must be a number"), "{}", port.html);
    assert!(app.state.store.servers_named(&[org], "web").await.unwrap().is_empty(), "a refused form created a server");
}

#[tokio::test]
async fn login_goes_back_only_to_pages_of_this_site() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |c| {
        // More logins than the default five a minute from one address.
        c.rate_limits.auth_per_minute = 100;
    })
    .await;
    app.user("owner@example.com").await;
    for (next, expected) in [
        ("/tokens", "/tokens"),
        ("//evil.example/x", "/"),
        ("https://evil.example", "/"),
        ("/\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("/%09/evil.example", "/%09/evil.example"),
    ] {
        let mut browser = Browser::new(&app);
        let done = browser.login_with("owner@example.com", "", next).await;
        assert_eq!(done.location(), expected, "next={next}");
    }
}

#[tokio::test]
async fn a_page_counts_once_against_the_rate_limit_whatever_it_reads() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |c| {
        c.rate_limits.api_per_minute = 4;
    })
    .await;
    let (_, org) = app.user("owner@example.com").await;
    let site = app.site(&org).await;
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    // The site page makes six API reads; four pages fit in a limit of four.
    for n in 0..4 {
        assert_eq!(browser.get(&site).await.status, StatusCode::OK, "page {n}");
    }
    let limited = browser.get(&site).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.html.contains("Too many requests"));
    // As the API does: a client (or a person's script) can tell when to come back.
    let retry_after: u64 = limited.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    assert!(limited.html.contains(&format!("Retry after {retry_after} seconds")), "{}", limited.html);
    // The pages' live polls have their own budget: following a long operation still works.
    let poll = browser.get(&format!("{site}/state")).await;
    assert_eq!(poll.status, StatusCode::OK, "{}", poll.html);
    assert_eq!(poll.html, r#"{"status":"done"}"#);
}

#[tokio::test]
async fn tokens_rotate_and_owners_manage_the_organization_tokens_members_cannot() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    app.member(&org, "member@example.com", Role::Member).await;
    let mut owner = Browser::new(&app);
    owner.login("owner@example.com").await;
    let page = owner.get("/tokens").await;
    assert!(page.html.contains("Tokens of Agency"), "owners see the organization's tokens");
    let csrf = page.csrf();

    // An organization token, its secret shown once like any other.
    let created = owner
        .post(
            &format!("/organizations/{org}/tokens"),
            &[("csrf", &csrf), ("name", "deploy bot"), ("abilities", "site:deploy site:read")],
        )
        .await;
    assert_eq!(created.location(), "/tokens/created", "{}", created.html);
    let shown = owner.get("/tokens/created").await;
    let at = shown.html.find("id=\"new-token\">").unwrap() + 15;
    let first = shown.html[at..].split('<').next().unwrap().to_string();
    let listed = owner.get("/tokens").await;
    assert!(
        listed.html.contains("<td>deploy bot</td>") && listed.html.contains("site:read site:deploy"),
        "{}",
        listed.html
    );
    let bearer = |secret: &str| {
        Request::get("/api/v1/tokens/current")
            .header("authorization", format!("Bearer {secret}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(app.router.clone().oneshot(bearer(&first)).await.unwrap().status(), StatusCode::OK);
    // Made in a session, it outlives the session: a session's expiry is no cap on what it makes.
    let row = app.token_row(&first).await;
    assert_eq!(row.expires_at, None, "an organization token made in the dashboard does not expire with the session");

    // A personal token rotated: a new secret, shown once; the old one stops working.
    let made = owner.post("/tokens", &[("csrf", &csrf), ("name", "laptop")]).await;
    assert_eq!(made.location(), "/tokens/created");
    let shown = owner.get("/tokens/created").await;
    let at = shown.html.find("id=\"new-token\">").unwrap() + 15;
    let old = shown.html[at..].split('<').next().unwrap().to_string();
    let id = app.token_row(&old).await.id;
    let rotated = owner.post(&format!("/tokens/{id}/rotate"), &[("csrf", &csrf)]).await;
    assert_eq!(rotated.location(), "/tokens/created", "{}", rotated.html);
    let shown = owner.get("/tokens/created").await;
    let at = shown.html.find("id=\"new-token\">").unwrap() + 15;
    let new = shown.html[at..].split('<').next().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(app.router.clone().oneshot(bearer(&old)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.router.clone().oneshot(bearer(&new)).await.unwrap().status(), StatusCode::OK);

    // A dashboard session cannot be rotated into a token that lives on (nor shows a button for it).
    let mut elsewhere = Browser::new(&app);
    elsewhere.login("owner@example.com").await;
    let other_session = app.token_row(&elsewhere.session()).await.id;
    assert!(!owner.get("/tokens").await.html.contains(&format!("/tokens/{other_session}/rotate")));
    let refused = owner.post(&format!("/tokens/{other_session}/rotate"), &[("csrf", &csrf)]).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);

    // A member sees no organization tokens, and a forced creation is refused by the API.
    let mut member = Browser::new(&app);
    member.login("member@example.com").await;
    let page = member.get("/tokens").await;
    assert!(!page.html.contains("Tokens of Agency"));
    let forced =
        member.post(&format!("/organizations/{org}/tokens"), &[("csrf", &page.csrf()), ("name", "mine now")]).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);
}

#[tokio::test]
async fn server_and_site_pages_show_what_runs_there() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let site = app.site(&org).await;
    let server = site.split("/sites/").next().unwrap().to_string();
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let page = browser.get(&server).await;
    for heading in ["SSH keys", "Network rules", "Daemons", "Cron jobs", "Databases"] {
        assert!(page.html.contains(&format!(">{heading}</h2>")), "the server page lists {heading}");
    }
    let page = browser.get(&site).await;
    for heading in ["Queue workers", "Redirects", "Certificates", "Backup schedules", "Webhook deliveries"] {
        assert!(page.html.contains(&format!(">{heading}</h2>")), "the site page lists {heading}");
    }
    // The sites page lists sites across servers, from the API's list of all sites.
    assert!(browser.get("/sites").await.html.contains("shop.example.com"));
}

async fn change_password(b: &mut Browser<'_>, csrf: &str, current: &str, new: &str, again: &str) -> Page {
    let form = [("csrf", csrf), ("current_password", current), ("password", new), ("confirmation", again)];
    b.post("/account/password", &form).await
}

#[tokio::test]
async fn a_new_password_ends_the_other_sessions_but_not_this_one() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    app.user("owner@example.com").await;
    let (mut here, mut elsewhere) = (Browser::new(&app), Browser::new(&app));
    here.login("owner@example.com").await;
    elsewhere.login("owner@example.com").await;
    let csrf = here.get("/account").await.csrf();
    let differ = change_password(&mut here, &csrf, PASSWORD, "a fresh passphrase", "another passphrase").await;
    assert!(differ.html.contains("The two new passwords differ."), "{}", differ.html);
    let wrong = change_password(&mut here, &csrf, "not the password", "a fresh passphrase", "a fresh passphrase").await;
    assert!(wrong.html.contains("id=\"current_password-error\""), "{}", wrong.html);
    let weak = change_password(&mut here, &csrf, PASSWORD, "short", "short").await;
    assert!(weak.html.contains("id=\"new_password-error\""), "{}", weak.html);
    assert!(!weak.html.contains("id=\"password-error\""), "the two-factor form's field stays clean");
    let done = change_password(&mut here, &csrf, PASSWORD, "a fresh passphrase", "a fresh passphrase").await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.html.contains("your other dashboard session has ended"), "{}", done.html);
    assert_eq!(here.get("/").await.status, StatusCode::OK);
    let ended = elsewhere.get("/").await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    assert!(ended.location().starts_with("/login"));
}

#[tokio::test]
async fn owners_manage_members_and_the_last_owner_stays() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (owner_id, org) = app.user("owner@example.com").await;
    let newcomer = slipway_store::testing::user("new@example.com", "Nina Newcomer", PASSWORD);
    app.state.store.create_user(&newcomer).await.unwrap();
    let mut owner = Browser::new(&app);
    owner.login("owner@example.com").await;
    let csrf = owner.get("/organization").await.csrf();
    let members = format!("/organizations/{org}/members");

    let unknown = owner.post(&members, &[("csrf", &csrf), ("email", "nobody@example.com"), ("role", "viewer")]).await;
    assert_eq!(unknown.status, StatusCode::OK);
    assert!(unknown.html.contains("id=\"member-email-error\""), "{}", unknown.html);
    let added = owner.post(&members, &[("csrf", &csrf), ("email", "new@example.com"), ("role", "viewer")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    assert_eq!(app.state.store.role_of(&org, &newcomer.id).await.unwrap().as_deref(), Some("viewer"));
    let changed = owner.post(&format!("{members}/{}/role", newcomer.id), &[("csrf", &csrf), ("role", "member")]).await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.html);
    assert_eq!(app.state.store.role_of(&org, &newcomer.id).await.unwrap().as_deref(), Some("member"));

    // A member sees the members, not the controls, and cannot use them.
    let mut member = Browser::new(&app);
    member.login("new@example.com").await;
    let page = member.get("/organization").await;
    assert!(page.html.contains("Nina Newcomer") && !page.html.contains("Add the member"));
    let forced = member.post(&format!("{members}/{owner_id}/remove"), &[("csrf", &page.csrf())]).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);

    // The last owner cannot step down: the API's reason is shown.
    let last = owner.post(&format!("{members}/{owner_id}/role"), &[("csrf", &csrf), ("role", "admin")]).await;
    assert_eq!(last.status, StatusCode::OK);
    assert!(last.html.contains("An organization must keep at least one owner."), "{}", last.html);
    assert_eq!(app.state.store.role_of(&org, &owner_id).await.unwrap().as_deref(), Some("owner"));
    let removed = owner.post(&format!("{members}/{}/remove", newcomer.id), &[("csrf", &csrf)]).await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER);
    assert_eq!(app.state.store.role_of(&org, &newcomer.id).await.unwrap(), None);
}

#[tokio::test]
async fn items_are_added_and_deleted_from_their_pages_with_the_apis_rules() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    app.member(&org, "viewer@example.com", Role::Viewer).await;
    let site = app.site(&org).await;
    let server = site.split("/sites/").next().unwrap().to_string();
    let server_id = server.rsplit('/').next().unwrap();
    app.state.store.mark_provisioned(server_id, slipway_core::time::now()).await.unwrap();
    let mut owner = Browser::new(&app);
    owner.login("owner@example.com").await;
    let page = owner.get(&server).await;
    assert!(page.html.contains(&format!("href=\"{server}/items/daemons/new\"")), "an Add link per kind");
    let form = owner.get(&format!("{server}/items/daemons/new")).await;
    assert_eq!(form.status, StatusCode::OK);
    let csrf = form.csrf();
    let daemons = format!("{server}/items/daemons");

    let not_a_number = owner.post(&daemons, &[("csrf", &csrf), ("command", "node ws.js"), ("processes", "two")]).await;
    assert!(not_a_number.html.contains("id=\"processes-error\""), "{}", not_a_number.html);
    assert!(not_a_number.html.contains("value=\"node ws.js\""), "what was typed is kept");
    let refused = owner.post(&daemons, &[("csrf", &csrf), ("command", ""), ("name", "ws")]).await;
    assert!(refused.html.contains("id=\"command-error\""), "the API's message next to the field: {}", refused.html);
    let added = owner.post(&daemons, &[("csrf", &csrf), ("command", "node ws.js"), ("name", "websockets")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    assert_eq!(added.location(), server);
    let page = owner.get(&server).await;
    assert!(page.html.contains("<td>websockets</td>"), "{}", page.html);

    // A viewer sees neither the Add link nor Delete, and forcing them is refused.
    let mut viewer = Browser::new(&app);
    viewer.login("viewer@example.com").await;
    let seen = viewer.get(&server).await;
    assert!(
        seen.html.contains("<td>websockets</td>")
            && !seen.html.contains("Add a daemon")
            && !seen.html.contains("Delete websockets")
    );
    let forced = viewer.post(&daemons, &[("csrf", &seen.csrf()), ("command", "sh evil.sh")]).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);

    // Deleting goes through the API too (the item is removed from the server by a job).
    let end = page.html.find("/delete\"").expect("a Delete button");
    let id = page.html[..end].rsplit('/').next().unwrap().to_string();
    let deleted = owner.post(&format!("{daemons}/{id}/delete"), &[("csrf", &csrf)]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.html);
    let after = owner.get(&server).await;
    assert!(!after.html.contains("<td>websockets</td>") || after.html.contains("status-removing"), "{}", after.html);
    // A network rule keeps what its form shows when changed: a deny rule on a UDP range stays one.
    let rules = format!("{server}/items/network-rules");
    let rule = [
        ("csrf", csrf.as_str()),
        ("name", "no-games"),
        ("port", "27000-27050"),
        ("action", "deny"),
        ("protocol", "udp"),
    ];
    assert_eq!(owner.post(&rules, &rule).await.status, StatusCode::SEE_OTHER);
    let page = owner.get(&server).await;
    let at = page.html.find("/edit\" aria-label=\"Change no-games\"").expect("a Change link");
    let edit = format!("{}/edit", &page.html[..at].rsplit('"').next().unwrap());
    let form = owner.get(&edit).await;
    for prefilled in ["value=\"27000-27050\"", "<option value=\"deny\" selected>", "<option value=\"udp\" selected>"] {
        assert!(form.html.contains(prefilled), "{prefilled}: {}", form.html);
    }
    // A site's kinds have their own forms (a redirect), and kinds without one are refused.
    let redirect = owner.get(&format!("{site}/items/redirects/new")).await;
    assert_eq!(redirect.status, StatusCode::OK);
    assert_eq!(owner.get(&format!("{site}/items/webhooks/new")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn crafted_paths_are_refused_and_a_new_login_ends_the_session_it_replaces() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let site = app.site(&org).await;
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    // An encoded `/` or `?` in an id would make the page call another API route.
    for path in [format!("{site}%2Fsuspend%3F/items/redirects/new"), format!("{site}%252Fsuspend/items/redirects/new")]
    {
        assert_eq!(browser.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let first = browser.session();
    browser.login("owner@example.com").await;
    assert_ne!(browser.session(), first);
    let old = app.token_row(&first).await;
    assert!(old.revoked_at.is_some(), "the replaced session ended on the server");
}

#[tokio::test]
async fn a_short_organization_token_lifetime_shortens_the_session_instead_of_refusing_the_login() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    app.state.store.update_organization(&org, None, Some(Some(3600))).await.unwrap();
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let row = app.token_row(&browser.session()).await;
    let lifetime = row.expires_at.unwrap() - row.created_at;
    assert!(lifetime <= chrono::Duration::hours(1), "{lifetime}");
    assert_eq!(browser.get("/").await.status, StatusCode::OK);
}

/// The first `href` on the page that starts with `prefix`.
fn link(page: &Page, prefix: &str) -> String {
    let at =
        page.html.find(&format!("href=\"{prefix}")).unwrap_or_else(|| panic!("a link to {prefix}: {}", page.html)) + 6;
    page.html[at..].split('"').next().unwrap().to_string()
}

/// The secret on the page that shows one once.
fn shown_secret(page: &Page) -> String {
    let at = page.html.find("id=\"new-secret\">").unwrap_or_else(|| panic!("a secret: {}", page.html)) + 18;
    page.html[at..].split('<').next().unwrap().to_string()
}

#[tokio::test]
async fn a_database_its_users_and_backups_are_managed_from_its_own_page() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let mut server = slipway_store::testing::server(&org, "db-1");
    server.database_type = "mariadb".into();
    app.state.store.insert_server(&server).await.unwrap();
    app.state.store.mark_provisioned(&server.id, slipway_core::time::now()).await.unwrap();
    let server_page = format!("/servers/{}", server.id);
    let mut owner = Browser::new(&app);
    owner.login("owner@example.com").await;
    let csrf = owner.get(&server_page).await.csrf();

    let added = owner.post(&format!("{server_page}/items/databases"), &[("csrf", &csrf), ("name", "shop")]).await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.html);
    let page = owner.get(&server_page).await;
    let database_page = link(&page, &format!("{server_page}/databases/"));
    let database_id = database_page.rsplit('/').next().unwrap().to_string();
    let page = owner.get(&database_page).await;
    assert_eq!(page.status, StatusCode::OK);
    for part in ["Database shop", ">Users</h2>", ">Backup schedules</h2>", ">Backups</h2>", "utf8mb4"] {
        assert!(page.html.contains(part), "{part}: {}", page.html);
    }
    // Users are refused while the database is being made, with the API's reason; once it is
    // there, a user's name is checked before the server is asked (the browser test makes one
    // on a real engine, its password shown once).
    let users = format!("{database_page}/items/users");
    let early = owner.post(&users, &[("csrf", &csrf), ("name", "shop_app")]).await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.html);
    app.state.store.set_server_items_status(&[database_id], InstallStatus::Installed, None).await.unwrap();
    let bad = owner.post(&users, &[("csrf", &csrf), ("name", "Shop App"), ("hosts", "localhost, %evil")]).await;
    assert!(bad.html.contains("id=\"name-error\""), "{}", bad.html);
    assert!(bad.html.contains("value=\"localhost, %evil\""), "what was typed is kept: {}", bad.html);
    let form = owner.get(&format!("{users}/new")).await;
    assert!(form.html.contains("<option value=\"read_only\">Read only</option>"), "{}", form.html);

    // Deleting the database asks for its name again.
    let delete = format!("{server_page}/items/databases/{}/delete", database_page.rsplit('/').next().unwrap());
    let wrong = owner.post(&delete, &[("csrf", &csrf), ("confirm", "shoq")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", wrong.html);
    let deleted = owner.post(&delete, &[("csrf", &csrf), ("confirm", "shop")]).await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.html);
}

#[tokio::test]
async fn integrations_are_added_changed_and_tested_and_their_secrets_never_shown_again() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (owner_id, org) = app.user("owner@example.com").await;
    app.member(&org, "viewer@example.com", Role::Viewer).await;
    let mut owner = Browser::new(&app);
    owner.login("owner@example.com").await;
    let page = owner.get("/integrations").await;
    assert_eq!(page.status, StatusCode::OK);
    for heading in ["Notification channels", "Backup storages", "Git providers"] {
        assert!(page.html.contains(&format!(">{heading}</h2>")), "{heading}");
    }
    let csrf = page.csrf();
    let form = owner.get("/integrations/items/notification-channels/new").await;
    assert!(form.html.contains(&format!("<option value=\"{org}\"")), "the organization is a choice");
    assert!(form.html.contains("type=\"password\""), "secrets are typed unseen");

    // A webhook channel: its URL is a secret, its signing secret is shown once.
    const HOOK: &str = "https://hooks.example.com/planted-path-5e2b";
    let channels = "/integrations/items/notification-channels";
    let refused = owner.post(channels, &[("csrf", &csrf), ("name", ""), ("kind", "webhook"), ("url", HOOK)]).await;
    assert!(refused.html.contains("id=\"name-error\""), "{}", refused.html);
    assert!(!refused.html.contains("planted-path"), "a refused form does not echo a secret");
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", "On call"),
        ("kind", "webhook"),
        ("url", HOOK),
        ("events", "deployment.failed, server.unreachable"),
        ("organization_id", org.as_str()),
    ];
    let made = owner.post(channels, &fields).await;
    assert_eq!(made.location(), "/shown-once", "{}", made.html);
    let signing = shown_secret(&owner.get("/shown-once").await);
    assert!(!signing.is_empty());
    let page = owner.get("/integrations").await;
    assert!(page.html.contains("webhook to hooks.example.com; deployment.failed, server.unreachable"), "{}", page.html);
    assert!(!page.html.contains("planted-path") && !page.html.contains(&signing));

    // Changing it: the form holds the current values but not the URL, which stays when empty.
    let at = page.html.find("/edit\" aria-label=\"Change On call\"").expect("a Change link");
    let edit = format!("{}/edit", &page.html[..at].rsplit('"').next().unwrap());
    let form = owner.get(&edit).await;
    assert!(form.html.contains("value=\"On call\"") && !form.html.contains("planted-path"), "{}", form.html);
    assert!(!form.html.contains("id=\"kind\""), "the kind is fixed once created");
    let item = edit.trim_end_matches("/edit");
    assert!(form.html.contains("<input type=\"hidden\" name=\"kind\" value=\"webhook\">"), "carried as it is");
    let fields = [("csrf", csrf.as_str()), ("name", "Night shift"), ("kind", "webhook"), ("events", "*"), ("url", "")];
    let saved = owner.post(item, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.html);
    let page = owner.get("/integrations").await;
    assert!(
        page.html.contains(">Night shift</td>") && page.html.contains("webhook to hooks.example.com; *"),
        "{}",
        page.html
    );

    // Sending a test fails here (the host does not exist), and says so without the URL, which
    // is a credential (reqwest's error names it).
    let tested = owner.post(&format!("{item}/do/test"), &[("csrf", &csrf)]).await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.html);
    assert!(
        tested.html.contains("It did not work") && tested.html.contains("Send a test: Night shift"),
        "{}",
        tested.html
    );
    assert!(!tested.html.contains("planted-path"), "{}", tested.html);

    // What the form does not show is kept when it is saved: a channel limited to one server
    // stays limited to it.
    let server_id = app.site(&org).await.split('/').nth(2).unwrap().to_string();
    let channel_api = format!("/api/v1/notification-channels/{}", item.rsplit('/').next().unwrap());
    let body = serde_json::json!({"name": "Night shift", "kind": "webhook", "server_ids": [server_id]});
    let (status, changed) = app.api(&owner_id, Method::PUT, &channel_api, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    let fields = [("csrf", csrf.as_str()), ("name", "Night owls"), ("kind", "webhook"), ("events", "*")];
    assert_eq!(owner.post(item, &fields).await.status, StatusCode::SEE_OTHER);
    let (_, channel) = app.api(&owner_id, Method::GET, &channel_api, None).await;
    assert_eq!(channel["data"]["name"], "Night owls");
    assert_eq!(channel["data"]["server_ids"], serde_json::json!([server_id]), "{channel}");
    assert_eq!(channel["data"]["url_host"], "hooks.example.com");

    // A new signing secret, shown once too.
    let rotated = owner.post(&format!("{item}/do/rotate-secret"), &[("csrf", &csrf)]).await;
    assert_eq!(rotated.location(), "/shown-once");
    let new_signing = shown_secret(&owner.get("/shown-once").await);
    assert_ne!(new_signing, signing);

    // A git provider with a token, which is never shown.
    let providers = "/integrations/items/git-providers";
    let fields = [("csrf", csrf.as_str()), ("name", "GitHub"), ("kind", "github"), ("access_token", "ghp_planted7c1d")];
    assert_eq!(owner.post(providers, &fields).await.status, StatusCode::SEE_OTHER);
    let page = owner.get("/integrations").await;
    assert!(page.html.contains("github, with a token") && !page.html.contains("ghp_planted"), "{}", page.html);

    // A viewer sees the integrations and no button, and forcing one is refused.
    let mut viewer = Browser::new(&app);
    viewer.login("viewer@example.com").await;
    let seen = viewer.get("/integrations").await;
    assert!(seen.html.contains(">Night owls</td>"));
    for button in ["Add a notification channel", "Change Night owls", "Delete Night owls", "Send a test"] {
        assert!(!seen.html.contains(button), "{button}");
    }
    let forced = viewer.post(item, &[("csrf", &seen.csrf()), ("name", "mine")]).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);
    let forced = viewer.post(&format!("{item}/do/rotate-secret"), &[("csrf", &seen.csrf())]).await;
    assert_eq!(forced.status, StatusCode::FORBIDDEN, "{}", forced.html);
}

#[tokio::test]
async fn a_stuck_operation_needs_attention_and_the_server_page_lists_its_operations() {
    let app = Dashboard::new(TestDatabase::sqlite().await, "http://slipway.test", |_| {}).await;
    let (_, org) = app.user("owner@example.com").await;
    let site = app.site(&org).await;
    let server_id = site.split('/').nth(2).unwrap().to_string();
    let now = slipway_core::time::now();
    let hours_ago = now - chrono::Duration::hours(2);
    let job = slipway_store::NewJob {
        id: slipway_core::new_id(),
        kind: "server.provision".into(),
        payload: "{}".into(),
        organization_id: Some(org.clone()),
        resource_key: Some(format!("server:{server_id}")),
        server_key: Some(format!("server:{server_id}")),
        idempotent: false,
        max_attempts: 1,
        run_at: hours_ago,
    };
    app.state.store.enqueue_job(&job).await.unwrap();
    let mut browser = Browser::new(&app);
    browser.login("owner@example.com").await;
    let home = browser.get("/").await;
    assert!(home.html.contains("Nothing needs attention"), "just asked for is not stuck: {}", home.html);
    // A worker took it two hours ago and has not finished.
    let claimed = app.state.store.claim_job("gone-quiet", hours_ago, now + chrono::Duration::hours(1)).await.unwrap();
    assert_eq!(claimed.map(|j| j.id), Some(job.id.clone()));
    let home = browser.get("/").await;
    assert!(home.html.contains("Operation server.provision on web-1"), "{}", home.html);
    assert!(home.html.contains("running for 120 minutes"), "{}", home.html);
    assert!(home.html.contains(&format!("href=\"/operations/{}?server={server_id}\"", job.id)), "{}", home.html);
    let server = browser.get(&format!("/servers/{server_id}")).await;
    assert!(
        server.html.contains(">Operations</h2>") && server.html.contains("running for 120 minutes"),
        "{}",
        server.html
    );
}
