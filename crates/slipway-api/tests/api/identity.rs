//! Identity and access, end to end through the router: setup, login, tokens (format, shown
//! once, narrowing, expiry, revocation, rotation, IP restriction), 2FA, JWT exchange, rate
//! limits, idempotency, organisations and the audit log.

use std::net::SocketAddr;

use crate::common::{PASSWORD, PUBLIC_URL, TestApp};
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use slipway_core::token::{PlainToken, sha256_hex};
use slipway_store::testing::TestDatabase;

async fn app() -> TestApp {
    TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await
}

fn from_ip(mut request: Request<Body>, ip: [u8; 4]) -> Request<Body> {
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 5555))));
    request
}

fn json_request(method: Method, uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::builder().method(method).uri(uri).header("content-type", "application/json");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

async fn login(app: &TestApp, email: &str, extra: Value) -> crate::common::Reply {
    let mut body = json!({"email": email, "password": PASSWORD});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.call(Method::POST, "/api/v1/login", None, Some(body)).await
}

#[tokio::test]
async fn setup_creates_the_first_owner_once() {
    let app = app().await;
    app.state
        .store
        .put_setting(slipway_api::routes::account::SETUP_CODE_SETTING, &sha256_hex("the-code"))
        .await
        .unwrap();
    let body = |code: &str| json!({"code": code, "email": "owner@example.com", "name": "Owner", "password": PASSWORD, "organization": "Acme"});

    let page = app.get("/setup?code=the-code").await;
    assert!(page.text().contains("Create the owner account"), "{}", page.text());
    assert!(app.get("/setup?code=wrong").await.text().contains("invalid or was already used"));

    let wrong = app.call(Method::POST, "/api/v1/setup", None, Some(body("wrong"))).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.json()["errors"]["code"].is_array());

    let weak = app
        .call(
            Method::POST,
            "/api/v1/setup",
            None,
            Some(json!({"code": "the-code", "email": "x", "name": "", "password": "short", "organization": "A"})),
        )
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = weak.json()["errors"].clone();
    for field in ["email", "name", "password"] {
        assert!(errors[field].is_array(), "{field}: {errors}");
    }

    let done = app.call(Method::POST, "/api/v1/setup", None, Some(body("the-code"))).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.text());
    let data = done.json()["data"].clone();
    assert_eq!(data["user"]["organizations"][0]["role"], "owner");
    let token = data["token"]["plain_text_token"].as_str().unwrap().to_string();
    assert_eq!(app.get_as("/api/v1/user", &token).await.json()["data"]["email"], "owner@example.com");

    let again = app.call(Method::POST, "/api/v1/setup", None, Some(body("the-code"))).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "the code works once");
    assert!(app.get("/setup?code=the-code").await.text().contains("invalid or was already used"));
}

#[tokio::test]
async fn registration_is_off_by_default_and_works_when_enabled() {
    let body = json!({"email": "new@example.com", "name": "New", "password": PASSWORD});
    let off = app().await;
    let reply = off.call(Method::POST, "/api/v1/register", None, Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.json()["message"].as_str().unwrap().contains("Registration is disabled"));

    let on = TestApp::configured(TestDatabase::sqlite().await, |c| c.registration_enabled = true).await;
    let reply = on.call(Method::POST, "/api/v1/register", None, Some(body.clone())).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    assert_eq!(reply.json()["data"]["organizations"][0]["name"], "New's organization");
    let dup = on
        .call(
            Method::POST,
            "/api/v1/register",
            None,
            Some(json!({"email": "NEW@example.com", "name": "N", "password": PASSWORD})),
        )
        .await;
    assert_eq!(dup.json()["errors"]["email"][0], "The email has already been taken.");
}

#[tokio::test]
async fn login_issues_a_token_shown_once_and_stored_only_as_a_hash() {
    let app = app().await;
    let user = app.user("ana@example.com").await;
    let bad = app
        .call(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({"email": "ana@example.com", "password": "wrong password!"})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"]["email"][0], "These credentials do not match our records.");
    let unknown = app
        .call(Method::POST, "/api/v1/login", None, Some(json!({"email": "nobody@example.com", "password": PASSWORD})))
        .await;
    assert_eq!(unknown.json(), bad.json(), "unknown accounts look the same as wrong passwords");

    let ok = login(&app, "ANA@example.com", json!({"name": "laptop", "abilities": ["server:read", "site:*"]})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    let data = ok.json()["data"].clone();
    let plain = data["plain_text_token"].as_str().unwrap();
    assert!(PlainToken::parse(plain).is_ok(), "slp_ format with a valid checksum: {plain}");
    assert_eq!((data["name"].as_str(), data["created_via"].as_str()), (Some("laptop"), Some("login")));
    assert_eq!(data["abilities"], json!(["server:read", "site:*"]));

    let id = data["id"].as_str().unwrap();
    let row = app.state.store.token(id).await.unwrap().unwrap();
    assert_eq!(row.token_hash, sha256_hex(plain));
    assert!(!format!("{row:?}").contains(plain), "the plain token is not stored");
    let shown = app.get_as(&format!("/api/v1/tokens/{id}"), &user.token).await.json();
    assert!(shown["data"].get("plain_text_token").is_none(), "never shown again: {shown}");
    let list = app.get_as("/api/v1/tokens", &user.token).await.json();
    assert!(!list.to_string().contains(plain));
    assert_eq!(list["meta"]["total"], 2);

    let unknown_ability = login(&app, "ana@example.com", json!({"abilities": ["server:launch"]})).await;
    assert_eq!(unknown_ability.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown_ability.json()["errors"]["abilities.0"].is_array());
}

#[tokio::test]
async fn both_header_schemes_are_accepted_in_any_case() {
    let app = app().await;
    let user = app.user("h@example.com").await;
    for scheme in ["Bearer", "bearer", "BEARER", "Token", "token"] {
        let request = Request::get("/api/v1/user")
            .header("authorization", format!("{scheme} {}", user.token))
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.send(request).await.status, StatusCode::OK, "{scheme}");
    }
    let basic = Request::get("/api/v1/user")
        .header("authorization", format!("Basic {}", user.token))
        .body(Body::empty())
        .unwrap();
    assert_eq!(app.send(basic).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_never_exceed_their_creator() {
    let app = app().await;
    let user = app.user("c@example.com").await;
    let mut servers = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let body = json!({"name": name, "provider": "custom", "ip_address": "203.0.113.10"});
        servers.push(app.post_as("/api/v1/servers", &user.token, body).await.json()["data"]["id"].clone());
    }
    let (s1, s2, s3) = (servers[0].clone(), servers[1].clone(), servers[2].clone());
    let narrow = app
        .token(&user.id, &["token:*", "site:read"], |t| {
            t.server_ids = Some(json!([s1, s2]).to_string());
            t.allowed_ips = Some(r#"["127.0.0.0/8"]"#.into());
            t.expires_at = Some(slipway_core::time::now() + chrono::Duration::days(1));
        })
        .await;
    let create = |body: Value| app.post_as("/api/v1/tokens", &narrow, body);

    let wider = create(json!({"name": "x", "abilities": ["site:*"]})).await;
    assert_eq!(wider.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wider.json()["errors"]["abilities"][0].as_str().unwrap().contains("site:*"));
    let wider_servers = create(json!({"name": "x", "server_ids": [s3]})).await;
    assert!(wider_servers.json()["errors"]["server_ids"].is_array());
    let wider_ips = create(json!({"name": "x", "allowed_ips": ["10.0.0.0/8"]})).await;
    assert!(wider_ips.json()["errors"]["allowed_ips.0"].is_array());
    let later = create(
        json!({"name": "x", "expires_at": (slipway_core::time::now() + chrono::Duration::days(2)).to_rfc3339()}),
    )
    .await;
    assert!(later.json()["errors"]["expires_at"].is_array(), "{}", later.text());
    let past = create(json!({"name": "x", "expires_at": "2001-01-01T00:00:00Z"})).await;
    assert!(past.json()["errors"]["expires_at"].is_array());

    let inherited = create(json!({"name": "child"})).await;
    assert_eq!(inherited.status, StatusCode::CREATED, "{}", inherited.text());
    let child = inherited.json()["data"].clone();
    assert_eq!(child["abilities"], json!(["site:read", "token:*"]));
    assert_eq!(child["server_ids"], json!([s1, s2]));
    assert_eq!(child["allowed_ips"], json!(["127.0.0.0/8"]));
    assert!(child["expires_at"].is_string(), "inherits the creator's expiry");

    let subset =
        create(json!({"name": "deploy", "abilities": ["site:read"], "server_ids": [s1], "allowed_ips": ["127.0.0.1"]}))
            .await;
    assert_eq!(subset.status, StatusCode::CREATED, "{}", subset.text());
    assert_eq!(subset.json()["data"]["allowed_ips"], json!(["127.0.0.1/32"]));

    // Editing narrows only.
    let id = subset.json()["data"]["id"].as_str().unwrap().to_string();
    let widen = app
        .call(Method::PATCH, &format!("/api/v1/tokens/{id}"), Some(&narrow), Some(json!({"abilities": ["*"]})))
        .await;
    assert_eq!(widen.status, StatusCode::UNPROCESSABLE_ENTITY);
    let rename = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(&narrow),
            Some(json!({"name": "renamed", "abilities": []})),
        )
        .await;
    assert_eq!(rename.status, StatusCode::OK, "{}", rename.text());
    assert_eq!(
        (rename.json()["data"]["name"].as_str(), rename.json()["data"]["abilities"].clone()),
        (Some("renamed"), json!([]))
    );
}

#[tokio::test]
async fn organization_maximum_lifetime_caps_new_tokens() {
    let app = app().await;
    let user = app.user("m@example.com").await;
    let set = app
        .call(
            Method::PATCH,
            &format!("/api/v1/organizations/{}", user.org_id),
            Some(&user.token),
            Some(json!({"max_token_lifetime_seconds": 7200})),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    let created = app.post_as("/api/v1/tokens", &user.token, json!({"name": "capped"})).await.json();
    let expires: chrono::DateTime<chrono::Utc> = created["data"]["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires <= slipway_core::time::now() + chrono::Duration::seconds(7200));
    let too_long = app
        .post_as(
            "/api/v1/tokens",
            &user.token,
            json!({"name": "x", "expires_at": (slipway_core::time::now() + chrono::Duration::days(1)).to_rfc3339()}),
        )
        .await;
    assert!(too_long.json()["errors"]["expires_at"][0].as_str().unwrap().contains("maximum token lifetime"));
}

#[tokio::test]
async fn revocation_and_expiry_hold_from_the_very_next_request() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let user = app.user("r@example.com").await;
        let created = app.post_as("/api/v1/tokens", &user.token, json!({"name": "short"})).await.json();
        let (id, plain) = (
            created["data"]["id"].as_str().unwrap().to_string(),
            created["data"]["plain_text_token"].as_str().unwrap().to_string(),
        );
        assert_eq!(app.get_as("/api/v1/user", &plain).await.status, StatusCode::OK);
        let revoked = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&user.token), None).await;
        assert_eq!(revoked.status, StatusCode::NO_CONTENT);
        assert_eq!(app.get_as("/api/v1/user", &plain).await.status, StatusCode::UNAUTHORIZED);

        let soon = app
            .token(&user.id, &["*"], |t| {
                t.expires_at = Some(slipway_core::time::now() + chrono::Duration::milliseconds(300))
            })
            .await;
        assert_eq!(app.get_as("/api/v1/user", &soon).await.status, StatusCode::OK);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            if app.get_as("/api/v1/user", &soon).await.status == StatusCode::UNAUTHORIZED {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "expired token still accepted");
            tokio::task::yield_now().await;
        }

        // Logout revokes the token used.
        let session = app.token(&user.id, &["*"], |_| {}).await;
        assert_eq!(app.post_as("/api/v1/logout", &session, json!({})).await.json()["message"], "Logged out.");
        assert_eq!(app.get_as("/api/v1/user", &session).await.status, StatusCode::UNAUTHORIZED);
        let current = app.token(&user.id, &["*"], |_| {}).await;
        assert_eq!(
            app.call(Method::DELETE, "/api/v1/tokens/current", Some(&current), None).await.status,
            StatusCode::NO_CONTENT
        );
        assert_eq!(app.get_as("/api/v1/tokens/current", &current).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn ip_restricted_tokens_work_only_from_their_networks() {
    let app = app().await;
    let user = app.user("ip@example.com").await;
    let token = app.token(&user.id, &["*"], |t| t.allowed_ips = Some(r#"["10.0.0.0/8"]"#.into())).await;
    let request = |ip| {
        from_ip(
            Request::get("/api/v1/user")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
            ip,
        )
    };
    let refused = app.send(request([192, 168, 1, 10])).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.json()["message"].as_str().unwrap().contains("network address"));
    assert_eq!(app.send(request([10, 1, 2, 3])).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rotation_replaces_the_secret_and_is_safe_to_retry_with_an_idempotency_key() {
    let app = app().await;
    let user = app.user("rot@example.com").await;
    let created =
        app.post_as("/api/v1/tokens", &user.token, json!({"name": "ci", "abilities": ["site:deploy"]})).await.json();
    let (id, old) = (
        created["data"]["id"].as_str().unwrap().to_string(),
        created["data"]["plain_text_token"].as_str().unwrap().to_string(),
    );
    let rotate = || {
        let request = Request::post(format!("/api/v1/tokens/{id}/rotate"))
            .header("authorization", format!("Bearer {}", user.token))
            .header("idempotency-key", "rotate-ci-1")
            .body(Body::empty())
            .unwrap();
        app.send(request)
    };
    let first = rotate().await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let retried = rotate().await;
    assert_eq!(retried.status, StatusCode::CREATED);
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.json(), retried.json(), "the retry returns the same new secret");
    let new = first.json()["data"]["plain_text_token"].as_str().unwrap().to_string();
    assert_eq!(first.json()["data"]["abilities"], json!(["site:deploy"]), "same settings");
    assert_eq!(app.get_as("/api/v1/tokens/current", &old).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get_as("/api/v1/tokens/current", &new).await.status, StatusCode::OK);
    // Without the key, rotating the revoked one again is a clear 404, not a second token.
    let again = app.post_as(&format!("/api/v1/tokens/{id}/rotate"), &user.token, json!({})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get_as("/api/v1/tokens", &user.token).await.json()["meta"]["total"], 2);
}

#[tokio::test]
async fn idempotency_keys_return_the_first_response_and_refuse_a_different_body() {
    let app = app().await;
    let user = app.user("idem@example.com").await;
    let post = |body: Value, key: &str| {
        let request = Request::post("/api/v1/tokens")
            .header("authorization", format!("Bearer {}", user.token))
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(Body::from(body.to_string()))
            .unwrap();
        app.send(request)
    };
    let first = post(json!({"name": "once"}), "k-1").await;
    let second = post(json!({"name": "once"}), "k-1").await;
    assert_eq!(first.json(), second.json());
    assert_eq!(app.get_as("/api/v1/tokens", &user.token).await.json()["meta"]["total"], 2, "created once");
    let different = post(json!({"name": "other"}), "k-1").await;
    assert_eq!(different.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(different.json()["errors"]["Idempotency-Key"].is_array());
    let invalid = post(json!({"name": "x"}), "").await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn api_rate_limit_headers_and_429_hold_across_replicas_on_postgres() {
    for db in TestDatabase::each().await {
        let limited = |c: &mut slipway_api::ApiConfig| c.rate_limits.api_per_minute = 4;
        let app = TestApp::configured(db, limited).await;
        let user = app.user("rl@example.com").await;
        crate::common::within_one_rate_window().await;
        let first = app.get_as("/api/v1/user", &user.token).await;
        assert_eq!(first.header("x-ratelimit-limit"), Some("4"));
        assert_eq!(first.header("x-ratelimit-remaining"), Some("3"));
        let reset: i64 = first.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset > slipway_api::ratelimit::unix_now());
        assert_eq!(first.header("ratelimit-policy"), Some("\"api\";q=4;w=60"));
        assert!(first.header("ratelimit").unwrap().starts_with("\"api\";r=3;t="));

        // On PostgreSQL a second replica shares the count; on SQLite it is the same process.
        let replica = match &app.db {
            TestDatabase::Postgres { .. } => {
                let store = app.db.connect().await;
                let state = slipway_api::AppState::new(store, app.state.secrets.clone(), (*app.state.config).clone());
                Some(slipway_api::app(state))
            }
            TestDatabase::Sqlite { .. } => None,
        };
        for _ in 0..3 {
            let request = Request::get("/api/v1/user")
                .header("authorization", format!("Bearer {}", user.token))
                .body(Body::empty())
                .unwrap();
            let request = from_ip(request, [127, 0, 0, 1]);
            let status = match &replica {
                Some(r) => tower::ServiceExt::oneshot(r.clone(), request).await.unwrap().status(),
                None => app.send(request).await.status,
            };
            assert_eq!(status, StatusCode::OK);
        }
        let refused = app.get_as("/api/v1/user", &user.token).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{:?}", app.db);
        assert!(refused.json()["message"].as_str().unwrap().starts_with("Too many requests."));
        let retry: i64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
        // Another token has its own budget; health checks are never limited.
        let other = app.token(&user.id, &["*"], |_| {}).await;
        assert_eq!(app.get_as("/api/v1/user", &other).await.status, StatusCode::OK);
        assert!(app.get("/healthz").await.header("x-ratelimit-limit").is_none());
    }
}

#[tokio::test]
async fn login_is_limited_per_address_and_per_account() {
    let app = app().await;
    crate::common::within_one_rate_window().await;
    app.user("victim@example.com").await;
    for i in 0..5 {
        let body = json!({"email": "victim@example.com", "password": "wrong password!"});
        let reply = app.send(from_ip(json_request(Method::POST, "/api/v1/login", None, body), [10, 0, 0, i])).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(reply.header("x-ratelimit-limit").is_some());
    }
    // A sixth try on the same account from yet another address is refused: per account.
    let body = json!({"email": "victim@example.com", "password": PASSWORD});
    let refused = app.send(from_ip(json_request(Method::POST, "/api/v1/login", None, body), [10, 0, 0, 99])).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("x-ratelimit-limit"), Some("5"));
    // Per address: one address trying many accounts is stopped too.
    for i in 0..5 {
        let body = json!({"email": format!("guess{i}@example.com"), "password": "wrong password!"});
        app.send(from_ip(json_request(Method::POST, "/api/v1/login", None, body), [172, 16, 0, 1])).await;
    }
    let body = json!({"email": "guess9@example.com", "password": "wrong password!"});
    assert_eq!(
        app.send(from_ip(json_request(Method::POST, "/api/v1/login", None, body), [172, 16, 0, 1])).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn token_creation_is_limited_to_ten_a_minute() {
    let app = app().await;
    crate::common::within_one_rate_window().await;
    let user = app.user("many@example.com").await;
    for i in 0..10 {
        assert_eq!(
            app.post_as("/api/v1/tokens", &user.token, json!({"name": format!("t{i}")})).await.status,
            StatusCode::CREATED
        );
    }
    let refused = app.post_as("/api/v1/tokens", &user.token, json!({"name": "t10"})).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.header("ratelimit-policy"), Some("\"token-create\";q=10;w=60"));
}

fn base32_decode(text: &str) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut buffer, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes() {
        buffer = (buffer << 5) | alphabet.iter().position(|&a| a == c).unwrap() as u32;
        bits += 5;
        if bits >= 8 {
            out.push((buffer >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    out
}

fn current_code(secret: &[u8], offset_steps: i64) -> String {
    let counter = (slipway_core::time::now().timestamp() / 30 + offset_steps) as u64;
    format!("{:06}", slipway_core::totp::code_at(secret, counter))
}

#[tokio::test]
async fn two_factor_login_with_codes_and_single_use_recovery_codes() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.auth_per_minute = 100).await;
    let user = app.user("2fa@example.com").await;
    let no_password = app.post_as("/api/v1/user/two-factor", &user.token, json!({"password": "not my password"})).await;
    assert_eq!(no_password.status, StatusCode::UNPROCESSABLE_ENTITY, "a token alone cannot enrol");
    let enrol = app.post_as("/api/v1/user/two-factor", &user.token, json!({"password": PASSWORD})).await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.text());
    let secret = base32_decode(enrol.json()["data"]["secret"].as_str().unwrap());
    assert!(
        enrol.json()["data"]["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/Slipway:2fa%40example.com")
            || enrol.json()["data"]["otpauth_uri"]
                .as_str()
                .unwrap()
                .starts_with("otpauth://totp/Slipway:2fa@example.com")
    );
    // Not on until confirmed.
    assert_eq!(login(&app, &user.email, json!({})).await.status, StatusCode::CREATED);
    let bad = app.post_as("/api/v1/user/two-factor/confirm", &user.token, json!({"code": "000000"})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let confirmed =
        app.post_as("/api/v1/user/two-factor/confirm", &user.token, json!({"code": current_code(&secret, 0)})).await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.text());
    let recovery: Vec<String> = serde_json::from_value(confirmed.json()["data"]["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    let missing = login(&app, &user.email, json!({})).await;
    assert_eq!(missing.json()["errors"]["otp"][0], "A one-time code is required for this account.");
    let wrong = login(&app, &user.email, json!({"otp": "123456"})).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    // The confirmation used the current step; the next one logs in, and cannot be replayed.
    let code = current_code(&secret, 1);
    assert_eq!(login(&app, &user.email, json!({"otp": code})).await.status, StatusCode::CREATED);
    assert_eq!(
        login(&app, &user.email, json!({"otp": code})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "replayed code"
    );
    assert_eq!(login(&app, &user.email, json!({"otp": recovery[0].to_uppercase()})).await.status, StatusCode::CREATED);
    assert_eq!(
        login(&app, &user.email, json!({"otp": recovery[0]})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "spent"
    );
    let me = app.get_as("/api/v1/user", &user.token).await.json();
    assert_eq!(me["data"]["two_factor_enabled"], true);

    let disabled = app
        .post_as("/api/v1/user/two-factor/disable", &user.token, json!({"password": PASSWORD, "code": recovery[1]}))
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.text());
    assert_eq!(login(&app, &user.email, json!({})).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn jwt_exchange_refresh_rotation_and_reuse_detection() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let user = app.user("jwt@example.com").await;
        let parent = app
            .post_as("/api/v1/tokens", &user.token, json!({"name": "parent", "abilities": ["*:read", "token:read"]}))
            .await
            .json();
        let parent_plain = parent["data"]["plain_text_token"].as_str().unwrap().to_string();
        let parent_id = parent["data"]["id"].as_str().unwrap().to_string();

        let pair = app.post_as("/api/v1/auth/exchange", &parent_plain, json!({})).await;
        assert_eq!(pair.status, StatusCode::OK, "{}", pair.text());
        let pair = pair.json();
        assert_eq!(
            (pair["token_type"].as_str(), pair["expires_in"].as_u64(), pair["account_id"].as_str()),
            (Some("Bearer"), Some(900), Some(user.id.as_str()))
        );
        let access = pair["access_token"].as_str().unwrap().to_string();
        assert_eq!(app.get_as("/api/v1/user", &access).await.status, StatusCode::OK);
        let write = app.post_as("/api/v1/tokens", &access, json!({"name": "x"})).await;
        assert_eq!(write.status, StatusCode::FORBIDDEN, "the JWT carries the parent's abilities");
        assert_eq!(
            app.get_as("/api/v1/user", pair["id_token"].as_str().unwrap()).await.status,
            StatusCode::UNAUTHORIZED,
            "an ID token is not an access token"
        );
        assert_eq!(app.post_as("/api/v1/auth/exchange", &access, json!({})).await.status, StatusCode::FORBIDDEN);

        let refresh =
            |token: &str| app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": token})));
        let first_refresh = pair["refresh_token"].as_str().unwrap().to_string();
        let renewed = refresh(&first_refresh).await;
        assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text());
        let renewed = renewed.json();
        let access2 = renewed["access_token"].as_str().unwrap().to_string();
        assert_eq!(app.get_as("/api/v1/user", &access2).await.status, StatusCode::OK);

        // Reusing the spent refresh token revokes the whole family.
        assert_eq!(refresh(&first_refresh).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get_as("/api/v1/user", &access2).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh(renewed["refresh_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);

        // Revoking the parent stops a fresh family at once.
        let pair = app.post_as("/api/v1/auth/exchange", &parent_plain, json!({})).await.json();
        let access3 = pair["access_token"].as_str().unwrap().to_string();
        assert_eq!(app.get_as("/api/v1/user", &access3).await.status, StatusCode::OK);
        app.call(Method::DELETE, &format!("/api/v1/tokens/{parent_id}"), Some(&user.token), None).await;
        assert_eq!(app.get_as("/api/v1/user", &access3).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(refresh(pair["refresh_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn organizations_members_roles_and_organization_tokens() {
    let app = app().await;
    let owner = app.user("owner@example.com").await;
    let other = app.user("viewer@example.com").await;
    let org = owner.org_id.clone();
    let members = format!("/api/v1/organizations/{org}/members");

    let added = app.post_as(&members, &owner.token, json!({"email": "VIEWER@example.com", "role": "viewer"})).await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text());
    assert_eq!(
        app.post_as(&members, &owner.token, json!({"email": "viewer@example.com", "role": "viewer"})).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert!(app.post_as(&members, &owner.token, json!({"email": "ghost@example.com", "role": "viewer"})).await.json()["errors"]["email"].is_array());
    assert!(app.post_as(&members, &owner.token, json!({"email": "viewer@example.com", "role": "god"})).await.json()["errors"]["role"].is_array());

    // The viewer sees the organization but cannot manage it.
    assert_eq!(
        app.get_as(&format!("/api/v1/organizations/{org}"), &other.token).await.json()["data"]["role"],
        "viewer"
    );
    let orgs = app.get_as("/api/v1/organizations", &other.token).await.json();
    assert_eq!(orgs["meta"]["total"], 2);
    assert_eq!(
        app.post_as(&members, &other.token, json!({"email": "owner@example.com", "role": "viewer"})).await.status,
        StatusCode::FORBIDDEN
    );

    // Last owner rules.
    let owner_member = format!("{members}/{}", owner.id);
    let demote = app.call(Method::PATCH, &owner_member, Some(&owner.token), Some(json!({"role": "admin"}))).await;
    assert_eq!(demote.status, StatusCode::CONFLICT);
    assert_eq!(demote.json()["message"], "An organization must keep at least one owner.");
    assert_eq!(app.call(Method::DELETE, &owner_member, Some(&owner.token), None).await.status, StatusCode::CONFLICT);

    // An admin cannot touch owners.
    let viewer_member = format!("{members}/{}", other.id);
    assert_eq!(
        app.call(Method::PATCH, &viewer_member, Some(&owner.token), Some(json!({"role": "admin"}))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.call(Method::PATCH, &owner_member, Some(&other.token), Some(json!({"role": "viewer"}))).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post_as(&members, &other.token, json!({"email": "owner@example.com", "role": "owner"})).await.status,
        StatusCode::FORBIDDEN
    );

    // An organization token created by the admin keeps working after the admin leaves.
    let ci = app
        .post_as(
            &format!("/api/v1/organizations/{org}/tokens"),
            &other.token,
            json!({"name": "ci", "abilities": ["organization:read", "token:read"]}),
        )
        .await;
    assert_eq!(ci.status, StatusCode::CREATED, "{}", ci.text());
    let ci_plain = ci.json()["data"]["plain_text_token"].as_str().unwrap().to_string();
    assert_eq!(ci.json()["data"]["kind"], "organization");
    assert_eq!(app.call(Method::DELETE, &viewer_member, Some(&owner.token), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get_as(&format!("/api/v1/organizations/{org}"), &other.token).await.status,
        StatusCode::NOT_FOUND,
        "the member left"
    );
    assert_eq!(app.get_as(&format!("/api/v1/organizations/{org}"), &ci_plain).await.status, StatusCode::OK);
    assert_eq!(
        app.get_as("/api/v1/user", &ci_plain).await.status,
        StatusCode::FORBIDDEN,
        "organization tokens have no user"
    );
    let listed = app.get_as(&format!("/api/v1/organizations/{org}/tokens"), &owner.token).await.json();
    assert_eq!(listed["meta"]["total"], 1);
    let ci_id = ci.json()["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        app.call(Method::DELETE, &format!("/api/v1/organizations/{org}/tokens/{ci_id}"), Some(&owner.token), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get_as(&format!("/api/v1/organizations/{org}"), &ci_plain).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audit_log_records_auth_events_and_mutations_without_secrets() {
    let app = app().await;
    let owner = app.user("audit@example.com").await;
    let member = app.user("member@example.com").await;
    app.post_as(
        &format!("/api/v1/organizations/{}/members", owner.org_id),
        &owner.token,
        json!({"email": "member@example.com", "role": "member"}),
    )
    .await;
    let bad = app
        .send(from_ip(
            json_request(
                Method::POST,
                "/api/v1/login",
                None,
                json!({"email": "audit@example.com", "password": "hunter2hunter2"}),
            ),
            [10, 9, 8, 7],
        ))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let created = app.post_as("/api/v1/tokens", &owner.token, json!({"name": "ci"})).await.json();
    let secret = created["data"]["plain_text_token"].as_str().unwrap().to_string();
    let denied = app.token(&owner.id, &["site:read"], |_| {}).await;
    app.post_as("/api/v1/tokens", &denied, json!({"name": "nope"})).await;

    let events = app.get_as("/api/v1/audit-events?per_page=100", &owner.token).await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text());
    let text = events.text();
    assert!(
        !text.contains(&secret) && !text.contains("hunter2") && !text.contains(&owner.token),
        "no secrets in the audit log"
    );
    let data = events.json()["data"].as_array().unwrap().clone();
    let find = |action: &str| {
        data.iter()
            .find(|e| e["action"] == action && e["outcome"] != "denied")
            .cloned()
            .unwrap_or_else(|| panic!("no {action} in {text}"))
    };
    let failed = find("login.failed");
    assert_eq!(
        (failed["actor_user_id"].as_str(), failed["client_ip"].as_str(), failed["outcome"].as_str()),
        (Some(owner.id.as_str()), Some("10.9.8.7"), Some("failure"))
    );
    let create = find("token.create");
    assert_eq!(create["resource_id"], created["data"]["id"]);
    assert_eq!(
        (create["method"].as_str(), create["route"].as_str(), create["status"].as_i64()),
        (Some("POST"), Some("/api/v1/tokens"), Some(201))
    );
    assert!(create["request_id"].is_string());
    assert!(
        data.iter()
            .any(|e| e["outcome"] == "denied" && e["action"] == "token.create" && e["route"] == "/api/v1/tokens"),
        "a 403 is recorded as denied, under the operation's action"
    );
    assert!(data.iter().any(|e| e["action"] == "member.add" && e["organization_id"] == owner.org_id.as_str()));

    // Filters, and members see only their own events.
    let only = app.get_as("/api/v1/audit-events?action=token.create", &owner.token).await.json();
    assert!(only["data"].as_array().unwrap().iter().all(|e| e["action"] == "token.create"));
    let theirs = app.get_as("/api/v1/audit-events?per_page=100", &member.token).await.json();
    assert!(theirs["data"].as_array().unwrap().iter().all(|e| e["actor_user_id"] == member.id.as_str()), "{theirs}");
    assert_eq!(
        app.get_as("/api/v1/audit-events?from=yesterday", &owner.token).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn token_use_is_recorded_without_a_write_per_request() {
    let app = app().await;
    let user = app.user("used@example.com").await;
    let id = app.get_as("/api/v1/tokens/current", &user.token).await.json()["data"]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let first = loop {
        let row = app.state.store.token(&id).await.unwrap().unwrap();
        if let Some(at) = row.last_used_at {
            assert_eq!(row.last_used_ip.as_deref(), Some("127.0.0.1"));
            break at;
        }
        assert!(std::time::Instant::now() < deadline, "last use never recorded");
        tokio::task::yield_now().await;
    };
    for _ in 0..5 {
        app.get_as("/api/v1/user", &user.token).await;
    }
    tokio::task::yield_now().await;
    assert_eq!(
        app.state.store.token(&id).await.unwrap().unwrap().last_used_at,
        Some(first),
        "coalesced: at most one write a minute"
    );
    let shown = app.get_as("/api/v1/tokens/current", &user.token).await.json();
    assert!(shown["data"]["last_used_at"].is_string());
    let _ = PUBLIC_URL;
}

/// On SQLite a token's row comes from the read cache and what it grants is parsed once per
/// version of that row; narrowing or revoking it must still hold from its very next request.
#[tokio::test]
async fn a_narrowed_or_revoked_token_is_held_to_it_from_the_next_request() {
    let app = app().await;
    let user = app.user("cached@example.com").await;
    let token = app.token(&user.id, &["server:read", "token:read", "token:update", "token:delete"], |_| {}).await;
    for _ in 0..3 {
        assert_eq!(app.get_as("/api/v1/servers", &token).await.status, StatusCode::OK);
    }
    let id = app.get_as("/api/v1/tokens/current", &token).await.json()["data"]["id"].as_str().unwrap().to_string();
    let narrowed = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tokens/{id}"),
            Some(&token),
            Some(json!({"abilities": ["token:read", "token:update", "token:delete"]})),
        )
        .await;
    assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text());
    let refused = app.get_as("/api/v1/servers", &token).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
    assert!(refused.text().contains("server:read"), "{}", refused.text());
    assert_eq!(app.get_as("/api/v1/tokens/current", &token).await.status, StatusCode::OK);

    let revoked = app.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&token), None).await;
    assert!(revoked.status.is_success(), "{}", revoked.text());
    assert_eq!(app.get_as("/api/v1/user", &token).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_narrow_token_cannot_reach_a_wider_token_of_the_same_user() {
    let app = app().await;
    let user = app.user("narrow@example.com").await;
    let wide_id =
        app.get_as("/api/v1/tokens/current", &user.token).await.json()["data"]["id"].as_str().unwrap().to_string();
    let narrow = app
        .token(&user.id, &["token:read", "token:update", "token:delete"], |t| {
            t.organization_id = Some(user.org_id.clone());
            t.allowed_ips = Some(r#"["127.0.0.1/32"]"#.into());
        })
        .await;
    for (method, path) in [
        (Method::GET, format!("/api/v1/tokens/{wide_id}")),
        (Method::POST, format!("/api/v1/tokens/{wide_id}/rotate")),
        (Method::PATCH, format!("/api/v1/tokens/{wide_id}")),
        (Method::DELETE, format!("/api/v1/tokens/{wide_id}")),
    ] {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| json!({"allowed_ips": ["10.0.0.0/8"]}));
        let reply = app.call(method.clone(), &path, Some(&narrow), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {}", reply.text());
    }
    assert_eq!(app.get_as("/api/v1/user", &user.token).await.status, StatusCode::OK, "the wide token is untouched");
    // The wide token still manages the narrow one, and a token manages itself.
    let listed = app.get_as("/api/v1/tokens", &user.token).await.json();
    let narrow_id = listed["data"].as_array().unwrap().iter().find(|t| t["id"] != wide_id.as_str()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(app.get_as(&format!("/api/v1/tokens/{narrow_id}"), &user.token).await.status, StatusCode::OK);
    assert_eq!(app.get_as(&format!("/api/v1/tokens/{narrow_id}"), &narrow).await.status, StatusCode::OK);
}

#[tokio::test]
async fn stored_idempotent_responses_hold_no_plain_secret_and_anonymous_keys_are_ignored() {
    let app = app().await;
    let user = app.user("sealed@example.com").await;
    let request = Request::post("/api/v1/tokens")
        .header("authorization", format!("Bearer {}", user.token))
        .header("content-type", "application/json")
        .header("idempotency-key", "sealed-1")
        .body(Body::from(json!({"name": "ci"}).to_string()))
        .unwrap();
    let created = app.send(request).await.json();
    let secret = created["data"]["plain_text_token"].as_str().unwrap().to_string();
    let TestDatabase::Sqlite { url, .. } = &app.db else { unreachable!() };
    let db = std::fs::read(url.trim_start_matches("sqlite://")).unwrap();
    let wal = std::fs::read(format!("{}-wal", url.trim_start_matches("sqlite://"))).unwrap_or_default();
    let needle = secret.as_bytes();
    let contains = |hay: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(&db) && !contains(&wal), "the new secret is not stored in clear");

    // Two anonymous logins with the same key are two logins: the key is ignored without a token.
    let login_with_key = || {
        let request = Request::post("/api/v1/login")
            .header("content-type", "application/json")
            .header("idempotency-key", "shared-key")
            .body(Body::from(json!({"email": "sealed@example.com", "password": PASSWORD}).to_string()))
            .unwrap();
        app.send(request)
    };
    let (a, b) = (login_with_key().await.json(), login_with_key().await.json());
    assert_ne!(a["data"]["id"], b["data"]["id"]);
}

#[tokio::test]
async fn a_token_cannot_guess_the_password_faster_than_login_allows() {
    let app = app().await;
    let user = app.user("guess@example.com").await;
    let narrow = app.token(&user.id, &["site:read"], |_| {}).await;
    crate::common::within_one_rate_window().await;
    for _ in 0..5 {
        let reply = app.post_as("/api/v1/user/two-factor", &narrow, json!({"password": "guess guess guess"})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let limited = app.post_as("/api/v1/user/two-factor", &narrow, json!({"password": PASSWORD})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    let events = app.get_as("/api/v1/audit-events?action=password_confirmation.failed", &user.token).await.json();
    assert_eq!(events["meta"]["total"], 5);
}

#[tokio::test]
async fn refreshing_honours_the_parent_tokens_network_restriction() {
    let app = app().await;
    let user = app.user("net@example.com").await;
    let parent = app.token(&user.id, &["*"], |t| t.allowed_ips = Some(r#"["127.0.0.0/8"]"#.into())).await;
    let pair = app.post_as("/api/v1/auth/exchange", &parent, json!({})).await.json();
    let body = json!({"refresh_token": pair["refresh_token"]});
    let elsewhere =
        app.send(from_ip(json_request(Method::POST, "/api/v1/auth/refresh", None, body.clone()), [192, 0, 2, 1])).await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    let here = app.send(from_ip(json_request(Method::POST, "/api/v1/auth/refresh", None, body), [127, 0, 0, 1])).await;
    assert_eq!(here.status, StatusCode::OK, "{}", here.text());
}

/// A client that gives up on a request holding an Idempotency-Key (a timeout, a dropped
/// connection) does not leave the key stuck: the request still runs to its end and its
/// response is stored, so the retry replays it, secret included, and the work is done once.
#[tokio::test]
async fn an_abandoned_idempotent_request_is_replayed_not_stuck() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| {
            c.rate_limits.api_per_minute = 100_000;
            c.rate_limits.token_create_per_minute = 100_000;
        })
        .await;
        let user = app.user("abandon@example.com").await;
        let app = std::sync::Arc::new(app);
        let create = |n: usize| {
            Request::post("/api/v1/tokens")
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {}", user.token))
                .header("idempotency-key", format!("abandoned-{n}"))
                .body(Body::from(json!({"name": format!("abandoned {n}")}).to_string()))
                .unwrap()
        };
        for n in 0..24 {
            // The client gives up after anything from no time at all to a few milliseconds.
            let first = {
                let app = app.clone();
                let request = create(n);
                tokio::spawn(async move { app.send(request).await })
            };
            tokio::time::sleep(std::time::Duration::from_micros(250 * n as u64)).await;
            first.abort();
            let retry =
                crate::common::eventually_reply(|| app.send(create(n)), |r| r.status != StatusCode::CONFLICT).await;
            assert_eq!(retry.status, StatusCode::CREATED, "retry {n}: {}", retry.text());
            let secret = retry.json()["data"]["plain_text_token"].as_str().unwrap().to_string();
            assert_eq!(app.get_as("/api/v1/tokens/current", &secret).await.status, StatusCode::OK, "the secret works");
        }
        let (tokens, _) =
            app.state.store.tokens_of_user(&user.id, slipway_core::PageRequest::new(1, 100)).await.unwrap();
        for n in 0..24 {
            let made = tokens.iter().filter(|t| t.name == format!("abandoned {n}")).count();
            assert_eq!(made, 1, "key {n} did its work once");
        }
    }
}

#[tokio::test]
async fn managing_an_organization_token_requires_covering_it() {
    let app = app().await;
    let owner = app.user("cover-org@example.com").await;
    let org = owner.org_id.clone();
    let created = app
        .post_as(
            &format!("/api/v1/organizations/{org}/tokens"),
            &owner.token,
            json!({"name": "ci", "abilities": ["server:read"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["data"]["id"].as_str().unwrap().to_string();
    let narrow = app.token(&owner.id, &["token:read", "token:delete"], |_| {}).await;
    let path = format!("/api/v1/organizations/{org}/tokens/{id}");
    let reply = app.call(Method::DELETE, &path, Some(&narrow), None).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "a token it does not cover, as for personal tokens: {}",
        reply.text()
    );
    let plain = created.json()["data"]["plain_text_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.get_as(&format!("/api/v1/organizations/{org}/tokens"), &owner.token).await.json()["meta"]["total"],
        1
    );
    let covering = app.token(&owner.id, &["server:read", "token:delete"], |_| {}).await;
    assert_eq!(app.call(Method::DELETE, &path, Some(&covering), None).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get_as("/api/v1/servers", &plain).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_jwt_cannot_create_or_rotate_tokens() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let user = app.user("jwt-mint@example.com").await;
        let org = user.org_id.clone();
        let pair = app.post_as("/api/v1/auth/exchange", &user.token, json!({})).await.json();
        let access = pair["access_token"].as_str().unwrap().to_string();
        let before = app.get_as("/api/v1/tokens", &user.token).await.json()["meta"]["total"].clone();
        let own_id = app.get_as("/api/v1/tokens/current", &user.token).await.json()["data"]["id"].clone();
        for (path, body) in [
            ("/api/v1/tokens".to_string(), json!({"name": "forever"})),
            (format!("/api/v1/organizations/{org}/tokens"), json!({"name": "forever"})),
            (format!("/api/v1/tokens/{}/rotate", own_id.as_str().unwrap()), json!({})),
        ] {
            let reply = app.post_as(&path, &access, body).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{path}: {}", reply.text());
            assert!(reply.json()["message"].as_str().unwrap().contains("access token"), "{}", reply.text());
        }
        assert_eq!(app.get_as("/api/v1/tokens", &user.token).await.json()["meta"]["total"], before, "nothing minted");

        // Refresh-token reuse revokes the family; nothing made with the JWT outlives it.
        let refresh = |t: &str| app.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": t})));
        let first = pair["refresh_token"].as_str().unwrap().to_string();
        assert_eq!(refresh(&first).await.status, StatusCode::OK);
        assert_eq!(refresh(&first).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get_as("/api/v1/user", &access).await.status, StatusCode::UNAUTHORIZED);
        assert_eq!(app.get_as("/api/v1/tokens", &user.token).await.json()["meta"]["total"], before);
    }
}

#[tokio::test]
async fn revoking_the_current_token_with_a_jwt_revokes_only_its_family() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let user = app.user("jwt-current@example.com").await;
        for (method, path) in [(Method::DELETE, "/api/v1/tokens/current"), (Method::POST, "/api/v1/logout")] {
            let pair = app.post_as("/api/v1/auth/exchange", &user.token, json!({})).await.json();
            let other = app.post_as("/api/v1/auth/exchange", &user.token, json!({})).await.json();
            let access = pair["access_token"].as_str().unwrap().to_string();
            let reply = app.call(method.clone(), path, Some(&access), None).await;
            assert!(reply.status.is_success(), "{path}: {}", reply.text());
            assert_eq!(app.get_as("/api/v1/user", &access).await.status, StatusCode::UNAUTHORIZED, "{path}");
            let refreshed = app
                .call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": pair["refresh_token"]})))
                .await;
            assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED, "{path}: the family's refresh token too");
            assert_eq!(
                app.get_as("/api/v1/user", &user.token).await.status,
                StatusCode::OK,
                "{path}: the parent lives"
            );
            let sibling = other["access_token"].as_str().unwrap();
            assert_eq!(app.get_as("/api/v1/user", sibling).await.status, StatusCode::OK, "{path}: other families too");
        }
    }
}

/// The (action, outcome) of the audit events the token may read that match `query`.
async fn actions(app: &TestApp, token: &str, query: &str) -> Vec<(Value, Value)> {
    let uri = format!("/api/v1/audit-events?per_page=100&{query}");
    let reply = app.get_as(&uri, token).await;
    assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    reply.json()["data"].as_array().unwrap().iter().map(|e| (e["action"].clone(), e["outcome"].clone())).collect()
}

#[tokio::test]
async fn security_events_are_recorded_against_the_account_they_concern() {
    let app = app().await;
    crate::common::within_one_rate_window().await;
    let owner = app.user("events@example.com").await;
    let org = owner.org_id.clone();
    // A reused refresh token, of a personal token and of an organization token.
    let ci = app
        .post_as(
            &format!("/api/v1/organizations/{org}/tokens"),
            &owner.token,
            json!({"name": "ci", "abilities": ["server:read"]}),
        )
        .await
        .json();
    for parent in [owner.token.clone(), ci["data"]["plain_text_token"].as_str().unwrap().to_string()] {
        let pair = app.post_as("/api/v1/auth/exchange", &parent, json!({})).await.json();
        let body = json!({"refresh_token": pair["refresh_token"]});
        for _ in 0..2 {
            app.call(Method::POST, "/api/v1/auth/refresh", None, Some(body.clone())).await;
        }
    }
    let reuse = app.get_as("/api/v1/audit-events?action=jwt.refresh_reuse", &owner.token).await.json();
    assert_eq!(reuse["meta"]["total"], 2, "{reuse}");
    let events = reuse["data"].as_array().unwrap();
    assert!(events.iter().any(|e| e["actor_user_id"] == owner.id.as_str()), "{reuse}");
    assert!(
        events.iter().any(|e| e["organization_id"] == org.as_str() && e["token_id"] == ci["data"]["id"]),
        "{reuse}"
    );
    // `jwt.refresh` finds the successful renewals; the reuse is its own event.
    assert_eq!(actions(&app, &owner.token, "action=jwt.refresh").await.len(), 2);

    // Failed and rate-limited logins are the account's: one filter finds them all.
    for _ in 0..6 {
        login(&app, "events@example.com", json!({"password": "wrong password!"})).await;
    }
    let logins = actions(&app, &owner.token, "action=login").await;
    assert!(logins.contains(&(json!("login.failed"), json!("failure"))), "{logins:?}");
    assert!(logins.contains(&(json!("login"), json!("rate_limited"))), "{logins:?}");
    assert_eq!(
        actions(&app, &owner.token, "action=login&outcome=rate_limited").await,
        vec![(json!("login"), json!("rate_limited"))]
    );

    // A token refused by the guard is recorded under the same action as one created.
    let narrow = app.token(&owner.id, &["server:read"], |_| {}).await;
    assert_eq!(app.post_as("/api/v1/tokens", &narrow, json!({"name": "x"})).await.status, StatusCode::FORBIDDEN);
    app.post_as("/api/v1/tokens", &owner.token, json!({"name": "y"})).await;
    let creations = actions(&app, &owner.token, "action=token.create").await;
    assert_eq!(creations, vec![(json!("token.create"), json!("success")), (json!("token.create"), json!("denied"))]);
    assert_eq!(
        app.get_as("/api/v1/audit-events?outcome=maybe", &owner.token).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

#[tokio::test]
async fn names_need_a_visible_character_and_token_lists_are_real_and_bounded() {
    let app = app().await;
    let owner = app.user("nonsense@example.com").await;
    let org = owner.org_id.clone();
    let invisible = "\u{200B}\u{200D}\u{2060}\u{3164}";
    for (method, path, body) in [
        (Method::POST, "/api/v1/tokens".to_string(), json!({"name": invisible})),
        (Method::POST, format!("/api/v1/organizations/{org}/tokens"), json!({"name": invisible})),
        (
            Method::POST,
            "/api/v1/servers".to_string(),
            json!({"name": invisible, "provider": "custom", "ip_address": "203.0.113.10"}),
        ),
        (Method::PATCH, format!("/api/v1/organizations/{org}"), json!({"name": invisible})),
    ] {
        let reply = app.call(method, &path, Some(&owner.token), Some(body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", reply.text());
        assert_eq!(reply.json()["errors"]["name"][0], "The name must contain a visible character.", "{path}");
    }

    // Restrictions name servers and sites that exist in the token's organizations.
    let server = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "web", "provider": "custom", "ip_address": "203.0.113.10"}),
        )
        .await
        .json()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let stranger = app.user("stranger@example.com").await;
    let theirs = app
        .post_as(
            "/api/v1/servers",
            &stranger.token,
            json!({"name": "x", "provider": "custom", "ip_address": "203.0.113.11"}),
        )
        .await
        .json()["data"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let made_up = slipway_core::new_id();
    let reply = app
        .post_as(
            "/api/v1/tokens",
            &owner.token,
            json!({"name": "t", "server_ids": [server, theirs, made_up], "site_ids": [made_up]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text());
    let errors = reply.json()["errors"].clone();
    let servers = errors["server_ids"][0].as_str().unwrap();
    assert!(servers.contains(&theirs) && servers.contains(&made_up) && !servers.contains(&server), "{errors}");
    assert!(errors["site_ids"][0].as_str().unwrap().contains(&made_up), "{errors}");
    let ok = app.post_as("/api/v1/tokens", &owner.token, json!({"name": "t", "server_ids": [server]})).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text());
    let id = ok.json()["data"]["id"].as_str().unwrap().to_string();
    let unrestricted = app.post_as("/api/v1/tokens", &owner.token, json!({"name": "u"})).await.json();
    let patch = app
        .call(
            Method::PATCH,
            &format!("/api/v1/tokens/{}", unrestricted["data"]["id"].as_str().unwrap()),
            Some(&owner.token),
            Some(json!({"site_ids": [made_up]})),
        )
        .await;
    assert_eq!(patch.status, StatusCode::UNPROCESSABLE_ENTITY, "narrowing to made-up ids too: {}", patch.text());

    // Lists are bounded.
    let ids: Vec<String> = (0..101).map(|_| slipway_core::new_id()).collect();
    let nets: Vec<String> = (0..51).map(|i| format!("10.0.{i}.0/24")).collect();
    let abilities: Vec<&str> = std::iter::repeat_n("server:read", 101).collect();
    for (field, value) in [
        ("server_ids", json!(ids)),
        ("site_ids", json!(ids)),
        ("allowed_ips", json!(nets)),
        ("abilities", json!(abilities)),
    ] {
        let reply = app.post_as("/api/v1/tokens", &owner.token, json!({"name": "big", field: value})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert!(
            reply.json()["errors"][field][0].as_str().unwrap().contains("may not have more than"),
            "{}",
            reply.text()
        );
        let patched = app
            .call(Method::PATCH, &format!("/api/v1/tokens/{id}"), Some(&owner.token), Some(json!({field: value})))
            .await;
        assert_eq!(patched.status, StatusCode::UNPROCESSABLE_ENTITY, "PATCH {field}");
    }
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_dashboard_sessions() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.auth_per_minute = 100).await;
        let user = app.user("change@example.com").await;
        let session = app.token(&user.id, &["*"], |t| t.created_via = "dashboard".into()).await;
        let ended = || async {
            let hash = PlainToken::parse(&session).unwrap().hash();
            app.state.store.token_by_hash(&hash).await.unwrap().unwrap().revoked_at.is_some()
        };
        // A dashboard session is no credential for the API itself (only the dashboard uses it).
        assert_eq!(app.get_as("/api/v1/user", &session).await.status, StatusCode::UNAUTHORIZED);
        let change = |current: &str, new: &str| {
            let body = json!({"current_password": current, "password": new});
            let (app, token) = (&app, user.token.clone());
            async move { app.call(Method::PUT, "/api/v1/user/password", Some(&token), Some(body)).await }
        };
        let wrong = change("not my password at all", "a brand new passphrase").await;
        assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(wrong.json()["errors"]["current_password"].is_array(), "{}", wrong.text());
        let weak = change(PASSWORD, "short").await;
        assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(weak.json()["errors"]["password"].is_array(), "{}", weak.text());
        assert!(!ended().await, "a refused change ends nothing");

        let done = change(PASSWORD, "a brand new passphrase").await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text());
        assert!(done.json()["message"].as_str().unwrap().contains("other dashboard session has ended"));
        assert!(ended().await, "the dashboard session ended");
        assert_eq!(app.get_as("/api/v1/user", &user.token).await.status, StatusCode::OK, "API tokens keep working");
        let login = |password: &str| json!({"email": "change@example.com", "password": password});
        assert_eq!(
            app.call(Method::POST, "/api/v1/login", None, Some(login(PASSWORD))).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            app.call(Method::POST, "/api/v1/login", None, Some(login("a brand new passphrase"))).await.status,
            StatusCode::CREATED
        );
    }
}
