//! Sites, deployments and environment variables through the API, without a server behind them
//! (jobs stay queued here; `crates/slipway/tests/e2e/deploy.rs` runs them for real): validation,
//! hostile values, masking and the rules about what can be deployed or rolled back.

use crate::common::{self, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use slipway_core::{InstallStatus, RunStatus};
use slipway_store::testing::TestDatabase;

async fn provisioned_server(app: &TestApp, token: &str) -> String {
    let server = app
        .post_as("/api/v1/servers", token, json!({"name": "web", "provider": "custom", "ip_address": "192.0.2.5"}))
        .await;
    let id = server.json()["data"]["id"].as_str().unwrap().to_string();
    app.state.store.mark_provisioned(&id, slipway_core::time::now()).await.unwrap();
    id
}

#[tokio::test]
async fn sites_are_validated_field_by_field_and_hostile_values_refused() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("sites@example.com").await;
    let unprovisioned = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "new", "provider": "custom", "ip_address": "192.0.2.6"}),
        )
        .await;
    let unprovisioned = unprovisioned.json()["data"]["id"].as_str().unwrap().to_string();
    let reply = app
        .post_as(
            &format!("/api/v1/servers/{unprovisioned}/sites"),
            &owner.token,
            json!({"domain": "a.example.com", "project_type": "static"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(reply.text().contains("not provisioned"), "{}", reply.text());

    let server = provisioned_server(&app, &owner.token).await;
    let sites = format!("/api/v1/servers/{server}/sites");
    let hostile = json!({
        "domain": "a.com; include /etc/passwd", "aliases": ["ok.example.com", "evil.com\n}"],
        "project_type": "cgi", "web_directory": "../../etc", "repository_url": "ext::sh -c touch% /tmp/pwned",
        "branch": "--upload-pack=touch", "health_check_path": "/$(id)", "health_check_status": 42,
        "health_check_timeout": 0, "keep_releases": 99, "shared_paths": [".env", "../up", "a b", ""]
    });
    let reply = app.post_as(&sites, &owner.token, hostile).await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reply.text());
    let errors = reply.json()["errors"].clone();
    for field in [
        "domain",
        "aliases",
        "project_type",
        "web_directory",
        "repository_url",
        "branch",
        "health_check_path",
        "health_check_status",
        "health_check_timeout",
        "keep_releases",
        "shared_paths",
    ] {
        assert!(errors[field].is_array(), "{field}: {errors}");
    }
    let generic =
        app.post_as(&sites, &owner.token, json!({"domain": "app.example.com", "project_type": "generic"})).await;
    assert!(generic.json()["errors"]["app_command"].is_array(), "{}", generic.text());
    let php = app.post_as(&sites, &owner.token, json!({"domain": "php.example.com", "project_type": "laravel"})).await;
    assert!(php.text().contains("no PHP"), "{}", php.text());
    assert_eq!(app.get_as(&sites, &owner.token).await.json()["meta"]["total"], 0, "nothing half-created");

    // A valid site; credentials in its URL are never shown.
    let created = app
        .post_as(
            &sites,
            &owner.token,
            json!({"domain": "Shop.Example.com", "project_type": "static", "repository_url": "https://deploy:tok3n-s3cret@git.example.com/shop.git"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let site = created.json()["data"].clone();
    assert_eq!(site["domain"], "shop.example.com");
    assert_eq!(site["repository"]["url"], "https://***@git.example.com/shop.git");
    assert!(!created.text().contains("tok3n-s3cret"));
    assert_eq!(site["status"], "installing");
    assert!(site["operation_id"].is_string());
    assert_eq!((site["zero_downtime"].clone(), site["shared_paths"].clone()), (json!(true), json!([])));
    assert_eq!(site["deployment_status"], json!(null));

    // An in-place site: no rollback; converting it before any deploy is immediate.
    let in_place = app
        .post_as(
            &sites,
            &owner.token,
            json!({"domain": "inplace.example.com", "project_type": "static", "zero_downtime": false,
                   "shared_paths": ["storage/", "public/uploads", "storage"]}),
        )
        .await;
    assert_eq!(in_place.status, StatusCode::CREATED, "{}", in_place.text());
    assert_eq!(in_place.json()["data"]["zero_downtime"], false);
    assert_eq!(in_place.json()["data"]["shared_paths"], json!(["storage", "public/uploads"]));
    let in_place_path = format!("{sites}/{}", in_place.json()["data"]["id"].as_str().unwrap());
    let rollback = app.post_as(&format!("{in_place_path}/rollback"), &owner.token, json!({})).await;
    assert_eq!(rollback.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rollback.text().contains("in place"), "{}", rollback.text());
    let convert = app.post_as(&format!("{in_place_path}/enable-zero-downtime"), &owner.token, json!({})).await;
    assert_eq!(convert.status, StatusCode::OK, "{}", convert.text());
    assert_eq!(convert.json()["data"]["zero_downtime"], true);
    let again = app.post_as(&format!("{in_place_path}/enable-zero-downtime"), &owner.token, json!({})).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", again.text());
    for bad in [json!([".git/hooks"]), json!(["storage", "storage/app/public"])] {
        let body = json!({"shared_paths": bad});
        let reply = app.call(Method::PUT, &in_place_path, Some(&owner.token), Some(body)).await;
        assert!(reply.json()["errors"]["shared_paths"].is_array(), "{}", reply.text());
    }
    let unchanged = app.get_as(&in_place_path, &owner.token).await;
    assert_eq!(unchanged.json()["data"]["shared_paths"], json!(["storage", "public/uploads"]));
    assert_eq!(app.call(Method::DELETE, &in_place_path, Some(&owner.token), None).await.status, StatusCode::ACCEPTED);
    let again =
        app.post_as(&sites, &owner.token, json!({"domain": "shop.example.com", "project_type": "static"})).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "one site per domain per server");
    let site_path = format!("{sites}/{}", site["id"].as_str().unwrap());
    assert!(!app.get_as(&site_path, &owner.token).await.text().contains("tok3n-s3cret"));

    // Nothing to roll back to yet; deploying queues one, a second waits behind it.
    let rollback = app.post_as(&format!("{site_path}/rollback"), &owner.token, json!({})).await;
    assert_eq!(rollback.status, StatusCode::UNPROCESSABLE_ENTITY);
    let first = app.post_as(&format!("{site_path}/deploy"), &owner.token, json!({})).await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text());
    assert_eq!(first.json()["data"]["status"], "queued");
    let second = app.post_as(&format!("{site_path}/deploy"), &owner.token, json!({"trigger": "cli"})).await;
    assert!(second.json()["message"].as_str().unwrap().contains("Queued behind"), "{}", second.text());
    assert_eq!(second.json()["data"]["trigger"], "cli");
    let id = second.json()["data"]["id"].as_str().unwrap().to_string();
    let cancelled = app.post_as(&format!("{site_path}/deployments/{id}/cancel"), &owner.token, json!({})).await;
    assert_eq!(cancelled.status, StatusCode::ACCEPTED, "{}", cancelled.text());
    assert_eq!(cancelled.json()["data"]["status"], "cancelled");
    let again = app.post_as(&format!("{site_path}/deployments/{id}/cancel"), &owner.token, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let list = app.get_as(&format!("{site_path}/deployments"), &owner.token).await;
    assert_eq!(list.json()["meta"]["total"], 2);
}

#[tokio::test]
async fn environment_values_are_encrypted_masked_and_revealed_only_to_editors() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("env@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let created = app
        .post_as(
            &format!("/api/v1/servers/{server}/sites"),
            &owner.token,
            json!({"domain": "env.example.com", "project_type": "static"}),
        )
        .await;
    let env = format!(
        "/api/v1/servers/{server}/sites/{}/environment-variables",
        created.json()["data"]["id"].as_str().unwrap()
    );
    let value = "p@ss \"w0rd\" $HOME\n# not a comment";
    let set =
        app.post_as(&env, &owner.token, json!({"variables": {"DB_PASSWORD": value, "APP_ENV": "production"}})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.text());
    let bad = app.post_as(&env, &owner.token, json!({"variables": {"1BAD": "x", "A-B": "y", "OK": "nul\u{0}"}})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["errors"]["variables"].as_array().unwrap().len(), 3, "{}", bad.text());

    // Stored sealed: the database never holds the value in clear.
    let site_id = created.json()["data"]["id"].as_str().unwrap().to_string();
    let stored = app.state.store.site_env(&site_id).await.unwrap();
    assert!(stored.iter().all(|v| !String::from_utf8_lossy(&v.value).contains("p@ss")));

    let listed = app.get_as(&env, &owner.token).await;
    assert!(listed.text().contains("DB_PASSWORD") && !listed.text().contains("p@ss"), "{}", listed.text());
    let revealed = app.get_as(&format!("{env}?reveal=true"), &owner.token).await;
    let data = revealed.json()["data"].clone();
    let db = data.as_array().unwrap().iter().find(|v| v["key"] == "DB_PASSWORD").unwrap().clone();
    assert_eq!(db["value"], value, "round-trips exactly");
    let reader = app.token(&owner.id, &["site:read"], |_| {}).await;
    assert_eq!(app.get_as(&env, &reader).await.status, StatusCode::OK);
    let denied = app.get_as(&format!("{env}?reveal=true"), &reader).await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN, "revealing needs site:update");

    // A list like any other: paged, in key order; the page's links keep `reveal`.
    let many: serde_json::Map<String, Value> = (0..30).map(|i| (format!("V{i:02}"), json!(format!("v{i}")))).collect();
    assert_eq!(app.post_as(&env, &owner.token, json!({"variables": many})).await.status, StatusCode::OK);
    let page = app.get_as(&format!("{env}?reveal=true&per_page=10&page=2"), &owner.token).await.json();
    assert_eq!(page["meta"]["total"], 32, "{page}");
    let keys: Vec<&str> = page["data"].as_array().unwrap().iter().map(|v| v["key"].as_str().unwrap()).collect();
    assert_eq!(keys, (8..18).map(|i| format!("V{i:02}")).collect::<Vec<_>>(), "{page}");
    assert_eq!(page["data"][0]["value"], "v8", "{page}");
    let next = page["links"]["next"].as_str().unwrap();
    assert!(next.contains("reveal=true") && next.contains("page=3"), "{next}");
    let last = app.get_as(&format!("{env}?per_page=10&page=4"), &owner.token).await.json();
    assert_eq!((last["data"].as_array().unwrap().len(), &last["links"]["next"]), (2, &Value::Null), "{last}");
    let beyond = app.get_as(&format!("{env}?per_page=10&page=9"), &owner.token).await.json();
    assert_eq!(beyond["data"], json!([]), "{beyond}");

    let deleted = app.call(Method::DELETE, &format!("{env}/APP_ENV"), Some(&owner.token), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let missing = app.call(Method::DELETE, &format!("{env}/APP_ENV"), Some(&owner.token), None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn scheduled_deploys_wait_and_can_be_cancelled_and_logs_stream_as_events() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("schedule@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let created = app
        .post_as(
            &format!("/api/v1/servers/{server}/sites"),
            &owner.token,
            json!({"domain": "later.example.com", "project_type": "static", "repository_url": "https://example.com/a.git"}),
        )
        .await;
    let site = format!("/api/v1/servers/{server}/sites/{}", created.json()["data"]["id"].as_str().unwrap());

    for bad in ["tomorrow", "2000-01-01T00:00:00Z"] {
        let reply = app.post_as(&format!("{site}/schedule-deploy"), &owner.token, json!({"at": bad})).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", reply.text());
    }
    let at = (slipway_core::time::now() + chrono::Duration::hours(2)).to_rfc3339();
    let scheduled = app.post_as(&format!("{site}/schedule-deploy"), &owner.token, json!({"at": at})).await;
    assert_eq!(scheduled.status, StatusCode::ACCEPTED, "{}", scheduled.text());
    assert!(scheduled.json()["message"].as_str().unwrap().contains("scheduled"));
    assert_eq!(scheduled.json()["data"]["trigger"], "schedule");
    let job_id = scheduled.json()["data"]["operation_id"].as_str().unwrap().to_string();
    let job = app.state.store.job(&job_id).await.unwrap().unwrap();
    assert!(job.run_at > slipway_core::time::now() + chrono::Duration::minutes(100), "it waits until then");
    let cancelled = app.post_as(&format!("{site}/cancel-scheduled-deploy"), &owner.token, json!({})).await;
    assert_eq!(cancelled.json()["data"]["cancelled"].as_array().unwrap().len(), 1, "{}", cancelled.text());
    let id = scheduled.json()["data"]["id"].as_str().unwrap().to_string();
    let d = app.get_as(&format!("{site}/deployments/{id}"), &owner.token).await;
    assert_eq!(d.json()["data"]["status"], "cancelled");
    let after = app.get_as(&site, &owner.token).await.json();
    assert_eq!(after["data"]["deployment_status"], "cancelled", "no longer queued: {after}");

    // The live log: lines as events, then the end with the deployment. (Written here by hand:
    // there is no worker in this test.)
    let deploy = app.post_as(&format!("{site}/deploy"), &owner.token, json!({})).await;
    let d = deploy.json()["data"].clone();
    let job = d["operation_id"].as_str().unwrap();
    let lines = [
        slipway_store::NewLogLine::now("stdout", "==> fetching main"),
        slipway_store::NewLogLine::now("stderr", "warning: x"),
    ];
    app.state.store.append_job_log(job, 1, &lines).await.unwrap();
    let end = slipway_store::DeploymentUpdate {
        status: Some(RunStatus::Succeeded),
        finished_at: Some(slipway_core::time::now()),
        ..Default::default()
    };
    app.state.store.update_deployment(d["id"].as_str().unwrap(), &end).await.unwrap();
    let stream =
        app.get_as(&format!("{site}/deployments/{}/log/stream", d["id"].as_str().unwrap()), &owner.token).await;
    assert_eq!(stream.status, StatusCode::OK);
    let text = stream.text();
    assert!(text.contains("event: line") && text.contains("id: 1") && text.contains("==> fetching main"), "{text}");
    assert!(text.contains("event: end") && text.contains("succeeded"), "{text}");
    let resumed = app
        .get_as(&format!("{site}/deployments/{}/log/stream?after=1", d["id"].as_str().unwrap()), &owner.token)
        .await
        .text();
    assert!(!resumed.contains("fetching main") && resumed.contains("warning: x"), "{resumed}");
}

/// A token restricted to some sites sees the operations of those sites only (an operation's log
/// says what a deploy did; another site's is none of its business), and can cancel them.
#[tokio::test]
async fn operations_of_other_sites_are_hidden_from_tokens_restricted_to_some_sites() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("ops@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let create = |domain: &'static str| {
        let (app, token, server) = (&app, owner.token.clone(), server.clone());
        async move {
            let body = json!({"domain": domain, "project_type": "static"});
            let site = app.post_as(&format!("/api/v1/servers/{server}/sites"), &token, body).await;
            assert_eq!(site.status, StatusCode::CREATED, "{}", site.text());
            let data = site.json()["data"].clone();
            (data["id"].as_str().unwrap().to_string(), data["operation_id"].as_str().unwrap().to_string())
        }
    };
    let (mine, my_operation) = create("mine.example.com").await;
    let (_, their_operation) = create("theirs.example.com").await;
    let narrow = app
        .token(&owner.id, &["site:*", "server:read", "server:update"], |t| {
            t.site_ids = Some(serde_json::to_string(&[&mine]).unwrap())
        })
        .await;
    for path in ["", "/log"] {
        let own = app.get_as(&format!("/api/v1/operations/{my_operation}{path}"), &narrow).await;
        assert_eq!(own.status, StatusCode::OK, "{path}: {}", own.text());
        let other = app.get_as(&format!("/api/v1/operations/{their_operation}{path}"), &narrow).await;
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{path}: {}", other.text());
        let unrestricted = app.get_as(&format!("/api/v1/operations/{their_operation}{path}"), &owner.token).await;
        assert_eq!(unrestricted.status, StatusCode::OK, "{path}");
    }
    let cancel = app.post_as(&format!("/api/v1/operations/{their_operation}/cancel"), &narrow, json!({})).await;
    assert_eq!(cancel.status, StatusCode::NOT_FOUND, "{}", cancel.text());

    // A setup cancelled before it started will never run: the site says so, instead of staying
    // `installing` for good (its handler is told, in a task of its own).
    let cancel = app.post_as(&format!("/api/v1/operations/{my_operation}/cancel"), &narrow, json!({})).await;
    assert_eq!(cancel.status, StatusCode::ACCEPTED, "{}", cancel.text());
    assert_eq!(cancel.json()["data"]["status"], "cancelled");
    let site = format!("/api/v1/servers/{server}/sites/{mine}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut every = tokio::time::interval(std::time::Duration::from_millis(20));
    let told = loop {
        every.tick().await;
        let data = app.get_as(&site, &owner.token).await.json()["data"].clone();
        if data["status"] != "installing" || std::time::Instant::now() > deadline {
            break data;
        }
    };
    assert_eq!(
        (told["status"].as_str(), told["status_reason"].as_str()),
        (Some("failed"), Some("cancelled by request"))
    );
}

/// A token restricted to some sites (one site's CI) reaches those sites and sees the server they
/// are on, but never acts on the server itself: its SSH keys, daemons and databases would reach
/// every other site on it. Other servers of the organisation do not exist for it.
#[tokio::test]
async fn a_token_restricted_to_some_sites_reaches_them_but_not_their_server() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("ci@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let elsewhere = provisioned_server(&app, &owner.token).await;
    let mine = site_on(&app, &owner.token, &server, "mine.example.com").await;
    let theirs = site_on(&app, &owner.token, &server, "theirs.example.com").await;
    let mine_id = mine.rsplit('/').next().unwrap().to_string();
    let ci = app.token(&owner.id, &["*"], |t| t.site_ids = Some(serde_json::to_string(&[&mine_id]).unwrap())).await;

    // What it reaches: its site, the list of its sites, and the server they are on.
    for path in [mine.clone(), format!("/api/v1/servers/{server}"), "/api/v1/servers".into()] {
        let reply = app.get_as(&path, &ci).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let servers = app.get_as("/api/v1/servers", &ci).await.json();
    let seen: Vec<&str> = servers["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(seen, [server.as_str()], "only the server its site is on");
    let sites = app.get_as(&format!("/api/v1/servers/{server}/sites"), &ci).await.json();
    assert_eq!(sites["meta"]["total"], 1, "{sites}");
    assert_eq!(servers["data"][0]["sites_count"], 1, "counts what it may see: {servers}");
    // The other server has the same name: by name it still means the one its site is on.
    let by_name = app.get_as("/api/v1/servers/web", &ci).await;
    assert_eq!((by_name.status, by_name.json()["data"]["id"].as_str()), (StatusCode::OK, Some(server.as_str())));
    let by_name = format!("/api/v1/servers/web/sites/{mine_id}");
    assert_eq!(app.get_as(&by_name, &ci).await.status, StatusCode::OK);
    // What its CI does: deploy, follow the deployment, pull the .env and follow that, list
    // releases and variables.
    let deploy = app.post_as(&format!("{mine}/deploy"), &ci, json!({})).await;
    assert_eq!(deploy.status, StatusCode::ACCEPTED, "{}", deploy.text());
    let deployment = format!("{mine}/deployments/{}", deploy.json()["data"]["id"].as_str().unwrap());
    let pull = app.post_as(&format!("{mine}/environment-variables/pull"), &ci, json!({})).await;
    assert_eq!(pull.status, StatusCode::ACCEPTED, "{}", pull.text());
    let pulled = format!("/api/v1/operations/{}", pull.json()["data"]["id"].as_str().unwrap());
    for path in [
        deployment.clone(),
        format!("{deployment}/log"),
        format!("{pulled}/log"),
        format!("{mine}/releases"),
        format!("{mine}/environment-variables"),
    ] {
        let reply = app.get_as(&path, &ci).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    let redirect = app.post_as(&format!("{mine}/redirects"), &ci, json!({"from": "/old", "to": "/new"})).await;
    assert_eq!(redirect.status, StatusCode::CREATED, "{}", redirect.text());
    // The redirect's sync is an operation of the server: followed, not cancelled.
    let operation = redirect.json()["data"]["operation_id"].as_str().unwrap().to_string();
    let followed = app.get_as(&format!("/api/v1/operations/{operation}"), &ci).await;
    assert_eq!(followed.status, StatusCode::OK, "{}", followed.text());
    let cancel = app.post_as(&format!("/api/v1/operations/{operation}/cancel"), &ci, json!({})).await;
    assert_eq!(cancel.status, StatusCode::FORBIDDEN, "{}", cancel.text());

    // What it does not: the server itself (403, saying why), other sites and servers (404).
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb";
    let server_level = [
        (Method::POST, "ssh-keys", json!({"name": "k", "public_key": key})),
        (Method::POST, "daemons", json!({"command": "sleep 1000", "user": "root"})),
        (Method::POST, "databases", json!({"name": "shop"})),
        (Method::POST, "network-rules", json!({"name": "r", "port": 8080})),
        (Method::GET, "ssh-keys", Value::Null),
        (Method::GET, "databases", Value::Null),
        (Method::GET, "logs", Value::Null),
        (Method::POST, "restart", json!({})),
        (Method::PUT, "", json!({"name": "renamed"})),
        (Method::DELETE, "", Value::Null),
    ];
    for (method, path, body) in server_level {
        let body = (!body.is_null()).then_some(body);
        let uri = format!("/api/v1/servers/{server}/{path}");
        let reply = app.call(method.clone(), uri.trim_end_matches('/'), Some(&ci), body.clone()).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.text());
        assert!(reply.text().contains("restricted to some sites"), "{method} {path}: {}", reply.text());
        let uri = format!("/api/v1/servers/{elsewhere}/{path}");
        let reply = app.call(method.clone(), uri.trim_end_matches('/'), Some(&ci), body).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path} on another server: {}", reply.text());
    }
    for path in [theirs.clone(), format!("/api/v1/servers/{elsewhere}"), format!("/api/v1/servers/{elsewhere}/sites")] {
        assert_eq!(app.get_as(&path, &ci).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let body = json!({"name": "more", "provider": "custom", "ip_address": "192.0.2.9"});
    let created = app.post_as("/api/v1/servers", &ci, body).await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{}", created.text());
    let body = json!({"domain": "new.example.com", "project_type": "static"});
    let created = app.post_as(&format!("/api/v1/servers/{server}/sites"), &ci, body).await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{}", created.text());
    // Nor can it make or turn itself into a token for the server: with server_ids beside its
    // site_ids a token acts on those servers themselves.
    let own = app.get_as("/api/v1/tokens/current", &ci).await.json()["data"]["id"].as_str().unwrap().to_string();
    let widened = app
        .call(Method::PATCH, &format!("/api/v1/tokens/{own}"), Some(&ci), Some(json!({"server_ids": [server]})))
        .await;
    assert_eq!(widened.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", widened.text());
    assert!(widened.json()["errors"]["server_ids"].is_array(), "{}", widened.text());
    let made = app.post_as("/api/v1/tokens", &ci, json!({"name": "wider", "server_ids": [server]})).await;
    assert_eq!(made.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", made.text());
    let both = app
        .token(&owner.id, &["*"], |t| {
            t.server_ids = Some(serde_json::to_string(&[&server]).unwrap());
            t.site_ids = Some(serde_json::to_string(&[&mine_id]).unwrap());
        })
        .await;
    let both = app.get_as("/api/v1/tokens/current", &both).await.json()["data"]["id"].as_str().unwrap().to_string();
    let rotate = app.post_as(&format!("/api/v1/tokens/{both}/rotate"), &ci, json!({})).await;
    assert_eq!(
        rotate.status,
        StatusCode::NOT_FOUND,
        "a token that acts on the server is not its to rotate: {}",
        rotate.text()
    );
    let narrower = app.post_as("/api/v1/tokens", &ci, json!({"name": "narrower", "abilities": ["site:deploy"]})).await;
    assert_eq!(narrower.status, StatusCode::CREATED, "{}", narrower.text());

    // A token restricted to the server acts on it, but cannot give a site the organization's
    // repository (and so its deploy key) either.
    let server_token =
        app.token(&owner.id, &["*"], |t| t.server_ids = Some(serde_json::to_string(&[&server]).unwrap())).await;
    let repository = app
        .post_as(
            "/api/v1/git-repositories",
            &owner.token,
            json!({"url": "https://git.example.com/x.git", "kind": "github"}),
        )
        .await;
    let repository = repository.json()["data"]["id"].as_str().unwrap().to_string();
    let body = json!({"domain": "repo.example.com", "project_type": "static", "git_repository_id": repository});
    let created = app.post_as(&format!("/api/v1/servers/{server}/sites"), &server_token, body).await;
    assert_eq!(created.status, StatusCode::FORBIDDEN, "{}", created.text());
    let changed =
        app.call(Method::PUT, &mine, Some(&server_token), Some(json!({"git_repository_id": repository}))).await;
    assert_eq!(changed.status, StatusCode::FORBIDDEN, "{}", changed.text());
    // It removes a site of its server, and follows the removal to its end (when the site is gone).
    let removal = app.call(Method::DELETE, &theirs, Some(&server_token), None).await;
    assert_eq!(removal.status, StatusCode::ACCEPTED, "{}", removal.text());
    let removal = format!("/api/v1/operations/{}", removal.json()["data"]["operation_id"].as_str().unwrap());
    app.state.store.delete_site(theirs.rsplit('/').next().unwrap()).await.unwrap();
    assert_eq!(app.get_as(&removal, &server_token).await.status, StatusCode::OK, "{removal}");

    // Operations of other servers (a database's backup) and of the organization are out of
    // reach of both restricted tokens, whatever their kind.
    let store = app.state.store.as_ref();
    let backup = slipway_jobs::JobSpec::new("database.backup", json!({}))
        .resource(format!("database-backup:{elsewhere}:db"))
        .on_server(&elsewhere)
        .organization(&owner.org_id);
    let backup = slipway_jobs::enqueue(store, backup).await.unwrap();
    let organization = slipway_jobs::JobSpec::new("notification.dispatch", json!({})).organization(&owner.org_id);
    let organization = slipway_jobs::enqueue(store, organization).await.unwrap();
    for id in [backup, organization] {
        let path = format!("/api/v1/operations/{id}/log");
        for token in [&ci, &server_token] {
            assert_eq!(app.get_as(&path, token).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        assert_eq!(app.get_as(&path, &owner.token).await.status, StatusCode::OK, "{path}");
    }
    // One queued before jobs recorded their server is found by its lock.
    let older = slipway_jobs::JobSpec::new("server.verify", json!({}))
        .resource(format!("server:{server}"))
        .organization(&owner.org_id);
    let older = format!("/api/v1/operations/{}", slipway_jobs::enqueue(store, older).await.unwrap());
    assert_eq!(app.get_as(&older, &server_token).await.status, StatusCode::OK, "{older}");

    // Nothing it was refused happened.
    let unrestricted = app.get_as(&format!("/api/v1/servers/{server}/ssh-keys"), &owner.token).await.json();
    assert_eq!(unrestricted["meta"]["total"], 0, "{unrestricted}");
    assert_eq!(app.get_as(&format!("/api/v1/servers/{server}"), &owner.token).await.json()["data"]["name"], "web");
}

/// One name serves one site on a server: a domain or alias that another site there answers to is
/// refused, at creation and on edit, so that no site can take another's requests or certificates.
#[tokio::test]
async fn a_name_of_one_site_cannot_be_taken_by_another_on_the_same_server() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("names@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let sites = format!("/api/v1/servers/{server}/sites");
    let body = json!({"domain": "shop.example.com", "aliases": ["www.shop.example.com"], "project_type": "static"});
    assert_eq!(app.post_as(&sites, &owner.token, body).await.status, StatusCode::CREATED);
    let other = site_on(&app, &owner.token, &server, "blog.example.com").await;

    let taken =
        app.post_as(&sites, &owner.token, json!({"domain": "www.shop.example.com", "project_type": "static"})).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", taken.text());
    assert!(taken.json()["errors"]["domain"][0].as_str().unwrap().contains("shop.example.com"), "{}", taken.text());
    for alias in ["shop.example.com", "www.shop.example.com"] {
        let body = json!({"domain": "new.example.com", "aliases": [alias], "project_type": "static"});
        let taken = app.post_as(&sites, &owner.token, body).await;
        assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "{alias}: {}", taken.text());
        let edit = app.call(Method::PUT, &other, Some(&owner.token), Some(json!({"aliases": [alias]}))).await;
        assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY, "{alias}: {}", edit.text());
        assert!(edit.json()["errors"]["aliases"].is_array(), "{}", edit.text());
    }
    // A wildcard covers the names under it, both ways.
    let body = json!({"domain": "wild.example.com", "aliases": ["*.wild.example.com"], "project_type": "static"});
    assert_eq!(app.post_as(&sites, &owner.token, body).await.status, StatusCode::CREATED);
    for alias in ["api.wild.example.com", "*.api.wild.example.com"] {
        let edit = app.call(Method::PUT, &other, Some(&owner.token), Some(json!({"aliases": [alias]}))).await;
        assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY, "{alias}: {}", edit.text());
    }
    let body = json!({"domain": "api.wild.example.com", "project_type": "static"});
    let taken = app.post_as(&sites, &owner.token, body).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", taken.text());
    let body = json!({"domain": "shop2.example.com", "aliases": ["*.example.com"], "project_type": "static"});
    let taken = app.post_as(&sites, &owner.token, body).await;
    assert_eq!(taken.status, StatusCode::UNPROCESSABLE_ENTITY, "a wildcard over others' names: {}", taken.text());
    // A token restricted to its site is refused without learning whose name it is.
    let other_id = other.rsplit('/').next().unwrap().to_string();
    let narrow =
        app.token(&owner.id, &["*"], |t| t.site_ids = Some(serde_json::to_string(&[&other_id]).unwrap())).await;
    let edit = app.call(Method::PUT, &other, Some(&narrow), Some(json!({"aliases": ["www.shop.example.com"]}))).await;
    assert_eq!(edit.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", edit.text());
    assert!(!edit.text().contains("(shop.example.com)"), "{}", edit.text());
    let edit =
        app.call(Method::PUT, &other, Some(&owner.token), Some(json!({"aliases": ["www.shop.example.com"]}))).await;
    assert!(edit.text().contains("(shop.example.com)"), "{}", edit.text());

    // Its own names, and names free on this server, are fine; another server is another matter.
    let edit =
        app.call(Method::PUT, &other, Some(&owner.token), Some(json!({"aliases": ["www.blog.example.com"]}))).await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.text());
    let again =
        app.call(Method::PUT, &other, Some(&owner.token), Some(json!({"aliases": ["www.blog.example.com"]}))).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let elsewhere = provisioned_server(&app, &owner.token).await;
    let body = json!({"domain": "new.example.com", "aliases": ["www.shop.example.com"], "project_type": "static"});
    let created = app.post_as(&format!("/api/v1/servers/{elsewhere}/sites"), &owner.token, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
}

/// An application backup holds the site's `.env`: downloading it needs `site:update`, as
/// revealing the values does, so a viewer (who may read backups) cannot read secrets through one.
/// A database backup needs `backup:read` only.
#[tokio::test]
async fn an_application_backups_download_needs_what_revealing_the_environment_needs() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("backups@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let site = site_on(&app, &owner.token, &server, "app.example.com").await;
    let site_id = site.rsplit('/').next().unwrap();
    let storage = app
        .post_as(
            "/api/v1/backup-storages",
            &owner.token,
            json!({"name": "offsite", "kind": "s3", "bucket": "acme-backups", "access_key_id": "AK",
                   "secret_access_key": "SK", "endpoint": "http://127.0.0.1:9"}),
        )
        .await;
    let storage = storage.json()["data"]["id"].as_str().unwrap().to_string();
    let record = |target| {
        let mut backup = slipway_engine::backups::new_backup(
            &owner.org_id,
            &server,
            target,
            &storage,
            None,
            slipway_core::BackupStatus::Completed,
        );
        (backup.object_key, backup.size_bytes, backup.sha256) = ("x/y.tar.gz".into(), Some(1), Some("00".repeat(32)));
        backup
    };
    let application = record(slipway_store::BackupTarget::Site(site_id));
    app.state.store.insert_backup(&application).await.unwrap();
    let database = record(slipway_store::BackupTarget::Database("01DATABASE0000000000000000"));
    app.state.store.insert_backup(&database).await.unwrap();

    let viewer = app.member(&owner.org_id, "viewer@example.com", slipway_core::Role::Viewer).await;
    let viewer = app.token(&viewer, &["*"], |_| {}).await;
    let reader = app.token(&owner.id, &["backup:read"], |_| {}).await;
    for token in [&viewer, &reader] {
        let refused = app.get_as(&format!("/api/v1/backups/{}/download", application.id), token).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
        assert!(refused.text().contains("site:update"), "{}", refused.text());
        // A database backup is what `backup:read` is for: past the check, to the (absent) storage.
        let allowed = app.get_as(&format!("/api/v1/backups/{}/download", database.id), token).await;
        assert_ne!(allowed.status, StatusCode::FORBIDDEN, "{}", allowed.text());
    }
    let owner_reply = app.get_as(&format!("/api/v1/backups/{}/download", application.id), &owner.token).await;
    assert_ne!(owner_reply.status, StatusCode::FORBIDDEN, "{}", owner_reply.text());
}

/// A site at `domain` on a provisioned server, with a repository; returns its path.
async fn site_on(app: &TestApp, token: &str, server: &str, domain: &str) -> String {
    let reply = app
        .post_as(
            &format!("/api/v1/servers/{server}/sites"),
            token,
            json!({"domain": domain, "project_type": "static", "repository_url": "https://example.com/a.git"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    format!("/api/v1/servers/{server}/sites/{}", reply.json()["data"]["id"].as_str().unwrap())
}

/// A site at `domain` on a new provisioned server of `token`'s and a deployment of it, which
/// stays queued (no worker runs here): the site's path and the deployment's id.
async fn queued_deployment(app: &TestApp, token: &str, domain: &str) -> (String, String) {
    let server = provisioned_server(app, token).await;
    let site = site_on(app, token, &server, domain).await;
    let reply = app.post_as(&format!("{site}/deploy"), token, json!({})).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    let id = reply.json()["data"]["id"].as_str().unwrap().to_string();
    (site, id)
}

/// Makes `n` static sites on `server` named `<prefix><i>.example.com`; their ids, in order.
async fn site_ids_on(app: &TestApp, token: &str, server: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let site = site_on(app, token, server, &format!("{prefix}{i}.example.com")).await;
        ids.push(site.rsplit('/').next().unwrap().to_string());
    }
    ids
}

/// A site going away, or whose installation failed, starts no deployment by any route, and a
/// refused `?deploy=true` leaves the variables as they were.
#[tokio::test]
async fn no_deployment_starts_on_a_site_being_removed_or_not_installed() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("gone@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    for (domain, status, expected) in [
        ("removing.example.com", InstallStatus::Removing, StatusCode::UNPROCESSABLE_ENTITY),
        ("failed.example.com", InstallStatus::Failed, StatusCode::CONFLICT),
    ] {
        let site = site_on(&app, &owner.token, &server, domain).await;
        let id = site.rsplit('/').next().unwrap();
        app.state.store.set_site_status(id, status, Some("nginx -t failed")).await.unwrap();
        for (action, body) in [
            ("deploy", json!({})),
            ("rollback", json!({})),
            ("enable-zero-downtime", json!({})),
            ("schedule-deploy", json!({"at": (slipway_core::time::now() + chrono::Duration::hours(1)).to_rfc3339()})),
            ("environment-variables?deploy=true", json!({"variables": {"A": "1"}})),
        ] {
            let reply = app.post_as(&format!("{site}/{action}"), &owner.token, body).await;
            assert_eq!(reply.status, expected, "{action} on a {status} site: {}", reply.text());
            if status == InstallStatus::Failed {
                assert!(reply.text().contains("nginx -t failed"), "{action}: the reason is given: {}", reply.text());
            }
        }
        let (deployments, _) =
            app.state.store.deployments_of_site(id, slipway_core::PageRequest::default()).await.unwrap();
        assert!(deployments.is_empty(), "{status}: {deployments:?}");
        assert!(app.state.store.site_env(id).await.unwrap().is_empty(), "{status}: a refused deploy wrote variables");
    }
}

/// A token restricted to some sites pages through exactly those: `meta.total` and every page
/// count only what it may see.
#[tokio::test]
async fn restricted_tokens_page_through_their_own_sites_only() {
    let app = TestApp::configured(TestDatabase::postgres().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("pages@example.com").await;
    let server = provisioned_server(&app, &owner.token).await;
    let ids = site_ids_on(&app, &owner.token, &server, "s", 5).await;
    let only = serde_json::to_string(&[&ids[1], &ids[3]]).unwrap();
    let token = app.token(&owner.id, &["*"], |t| t.site_ids = Some(only)).await;
    let page = app.get_as(&format!("/api/v1/servers/{server}/sites?per_page=1"), &token).await.json();
    assert_eq!((page["meta"]["total"].as_u64(), page["data"][0]["id"].as_str()), (Some(2), Some(ids[1].as_str())));
    let page = app.get_as(&format!("/api/v1/servers/{server}/sites?per_page=1&page=2"), &token).await.json();
    assert_eq!(page["data"][0]["id"].as_str(), Some(ids[3].as_str()), "{page}");
}

/// A walk along `links.next` seeks past the last item it read (the cursor) instead of counting
/// pages: a site removed behind the walk does not make it skip one ahead, and each page still
/// says where it is.
#[tokio::test]
async fn walking_a_list_along_next_is_not_shifted_by_removals_behind_it() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let owner = app.user("walker@example.com").await;
        let server = provisioned_server(&app, &owner.token).await;
        let ids = site_ids_on(&app, &owner.token, &server, "w", 7).await;
        // The page a page's `links.next` leads to.
        let (app, token) = (&app, owner.token.as_str());
        let follow = |page: &Value| {
            let next = page["links"]["next"].as_str().unwrap().strip_prefix(common::PUBLIC_URL).unwrap().to_string();
            async move { app.get_as(&next, token).await.json() }
        };
        for list in [format!("/api/v1/servers/{server}/sites?per_page=3"), "/api/v1/sites?per_page=3".to_string()] {
            let first = app.get_as(&list, &owner.token).await.json();
            let next = first["links"]["next"].as_str().unwrap().to_string();
            assert!(next.ends_with(&format!("&page=2&cursor={}", ids[2])), "{next}");
            let second = follow(&first).await;
            let on_page = |page: &Value| -> Vec<String> {
                page["data"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
            };
            assert_eq!(on_page(&second), ids[3..6], "{list}");
            assert_eq!((second["meta"]["from"].as_u64(), second["meta"]["total"].as_u64()), (Some(4), Some(7)));
        }
        // The first site goes while a walk is on page 1: page 2 by number would now start at
        // the fifth site; past the cursor it starts at the fourth.
        let first = app.get_as("/api/v1/sites?per_page=3", &owner.token).await.json();
        assert!(app.state.store.delete_site(&ids[0]).await.unwrap());
        let second = follow(&first).await;
        assert_eq!(second["data"][0]["id"].as_str(), Some(ids[3].as_str()), "{second}");
        let by_number = app.get_as("/api/v1/sites?per_page=3&page=2", &owner.token).await.json();
        assert_eq!(by_number["data"][0]["id"].as_str(), Some(ids[4].as_str()));
        // The last page leads nowhere; a cursor that is not an id is a 422 on it.
        let last = follow(&second).await;
        assert_eq!(
            (last["data"][0]["id"].as_str(), &last["links"]["next"]),
            (Some(ids[6].as_str()), &Value::Null),
            "{last}"
        );
        let bad = app.get_as("/api/v1/sites?cursor=w3.example.com", &owner.token).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(bad.json()["errors"]["cursor"][0], "The cursor must be an id, as links.next gives it.");
    }
}

#[tokio::test]
async fn all_sites_across_servers_are_listed_for_what_the_token_may_see_and_filtered_by_status() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let owner = app.user("everywhere@example.com").await;
        let stranger = app.user("stranger@example.com").await;
        let (one, two) = (provisioned_server(&app, &owner.token).await, provisioned_server(&app, &owner.token).await);
        let a = site_on(&app, &owner.token, &one, "a.example.com").await;
        let b = site_on(&app, &owner.token, &two, "b.example.com").await;
        let theirs = provisioned_server(&app, &stranger.token).await;
        site_on(&app, &stranger.token, &theirs, "theirs.example.com").await;
        let id = |path: &str| path.rsplit('/').next().unwrap().to_string();

        let all = app.get_as("/api/v1/sites?per_page=1", &owner.token).await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.text());
        let all = all.json();
        assert_eq!(all["meta"]["total"], 2, "another organization's site is not listed: {all}");
        assert_eq!(all["data"][0]["id"].as_str(), Some(id(&a).as_str()));
        // Restricted tokens see their servers or sites only, counted in the query.
        let only_two = serde_json::to_string(&[&two]).unwrap();
        let token = app.token(&owner.id, &["*"], |t| t.server_ids = Some(only_two)).await;
        let listed = app.get_as("/api/v1/sites", &token).await.json();
        assert_eq!(
            (listed["meta"]["total"].as_u64(), listed["data"][0]["id"].as_str()),
            (Some(1), Some(id(&b).as_str()))
        );
        let only_a = serde_json::to_string(&[id(&a)]).unwrap();
        let token = app.token(&owner.id, &["*"], |t| t.site_ids = Some(only_a)).await;
        assert_eq!(app.get_as("/api/v1/sites", &token).await.json()["meta"]["total"], 1);
        // Filters: the sites that need a look.
        app.state.store.set_site_status(&id(&b), InstallStatus::Failed, Some("nginx refused the block")).await.unwrap();
        let failed = app.get_as("/api/v1/sites?status=failed", &owner.token).await.json();
        assert_eq!(
            (failed["meta"]["total"].as_u64(), failed["data"][0]["id"].as_str()),
            (Some(1), Some(id(&b).as_str()))
        );
        let none = app.get_as("/api/v1/sites?deployment_status=failed", &owner.token).await.json();
        assert_eq!(none["meta"]["total"], 0);
        for (query, field) in [("status=broken", "status"), ("deployment_status=maybe", "deployment_status")] {
            let bad = app.get_as(&format!("/api/v1/sites?{query}"), &owner.token).await;
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
            assert!(bad.json()["errors"][field].is_array(), "{}", bad.text());
        }
        // Reading sites is the ability it takes.
        let servers_only = app.token(&owner.id, &["server:read"], |_| {}).await;
        assert_eq!(app.get_as("/api/v1/sites", &servers_only).await.status, StatusCode::FORBIDDEN);
    }
}

/// The stream gives every line once and in order, a log longer than one read included, then
/// one `end`, with lines written before it starts, as it runs, and just before the end.
#[tokio::test]
async fn the_log_stream_sends_every_line_once_then_the_end() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let owner = app.user("follow@example.com").await;
        let (site, id) = queued_deployment(&app, &owner.token, "follow.example.com").await;
        let store = app.state.store.clone();
        let job = store.deployment(&id).await.unwrap().unwrap().job_id;
        let lines = |from: i64, n: i64| -> Vec<slipway_store::NewLogLine> {
            (from..from + n).map(|i| slipway_store::NewLogLine::now("stdout", format!("line {i}"))).collect()
        };
        // More than one read's worth before the stream starts.
        store.append_job_log(&job, 1, &lines(1, 1_200)).await.unwrap();
        let writer = tokio::spawn({
            let (store, job, id) = (store.clone(), job.clone(), id.clone());
            async move {
                for batch in 0..5 {
                    let first = 1_201 + batch * 10;
                    store.append_job_log(&job, first, &lines(first, 10)).await.unwrap();
                    tokio::task::yield_now().await;
                }
                store.append_job_log(&job, 1_251, &lines(1_251, 1)).await.unwrap();
                let ended =
                    slipway_store::DeploymentUpdate { status: Some(RunStatus::Succeeded), ..Default::default() };
                store.update_deployment(&id, &ended).await.unwrap();
            }
        });
        let path = format!("{site}/deployments/{id}/log/stream");
        let stream = tokio::time::timeout(std::time::Duration::from_secs(60), app.get_as(&path, &owner.token));
        let text = stream.await.expect("the stream ends").text();
        writer.await.unwrap();
        let sent: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("id: ")).collect();
        let expected: Vec<String> = (1..=1_251).map(|i| i.to_string()).collect();
        assert_eq!(sent, expected, "every line once, in order");
        assert_eq!(text.matches("event: end").count(), 1);
        assert!(text.trim_end().ends_with('}') && text.contains(r#""status":"succeeded""#), "{text}");
    }
}

/// When the log cannot be read, the stream says so instead of claiming the deployment ended.
#[tokio::test]
async fn the_log_stream_reports_a_failed_read_instead_of_an_end() {
    let db = TestDatabase::sqlite().await;
    let url = db.url().to_string();
    let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("stream@example.com").await;
    let (site, deployment) = queued_deployment(&app, &owner.token, "stream.example.com").await;
    // The deployment is still queued; its log table disappears under the stream.
    use sqlx::Connection;
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("ALTER TABLE job_logs RENAME TO job_logs_elsewhere").execute(&mut raw).await.unwrap();
    let stream = app.get_as(&format!("{site}/deployments/{deployment}/log/stream"), &owner.token).await;
    let text = stream.text();
    assert!(text.contains("event: error") && text.contains("could not be read"), "{text}");
    assert!(!text.contains("event: end"), "{text}");
}

/// Whether the OpenAPI document declares `status` for the operation.
fn declares(method: &str, path: &str, status: u16) -> bool {
    let spec = serde_json::to_value(slipway_api::openapi()).unwrap();
    spec["paths"][path][method]["responses"].get(status.to_string()).is_some()
}

#[tokio::test]
async fn query_parameter_errors_are_422_naming_the_parameter_and_are_declared() {
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("query@example.com").await;
    let (site, deployment) = queued_deployment(&app, &owner.token, "query.example.com").await;
    let server = site.split('/').nth(4).unwrap().to_string();
    let operation =
        app.post_as(&format!("/api/v1/servers/{server}/verify"), &owner.token, json!({})).await.json()["data"]["id"]
            .as_str()
            .unwrap()
            .to_string();
    let field_error = |uri: String, field: &'static str| {
        let app = &app;
        let token = owner.token.clone();
        async move {
            let reply = app.get_as(&uri, &token).await;
            assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {}", reply.text());
            assert!(reply.json()["errors"][field].is_array(), "{uri}: {}", reply.text());
        }
    };
    field_error(format!("{site}/environment-variables?reveal=AAA"), "reveal").await;
    let log = format!("{site}/deployments/{deployment}/log");
    for after in ["-5", "-1", "9223372036854775808", "x"] {
        field_error(format!("{log}?after={after}"), "after").await;
        field_error(format!("{log}/stream?after={after}"), "after").await;
        field_error(format!("/api/v1/operations/{operation}/log?after={after}"), "after").await;
    }
    field_error(format!("/api/v1/operations/{operation}/log?limit=0"), "limit").await;
    field_error("/api/v1/audit-events?from=yesterday".into(), "from").await;
    assert_eq!(app.get_as(&format!("{log}?after=0"), &owner.token).await.status, StatusCode::OK);

    let sites = "/api/v1/servers/{server}/sites/{site}";
    for (method, path) in [
        ("get", format!("{sites}/environment-variables")),
        ("get", format!("{sites}/deployments/{{deployment}}/log")),
        ("get", format!("{sites}/deployments/{{deployment}}/log/stream")),
        ("get", "/api/v1/operations/{operation}/log".to_string()),
        ("delete", format!("{sites}/environment-variables/{{key}}")),
    ] {
        assert!(declares(method, &path, 422), "{method} {path} declares 422");
    }

    // Cancelling twice is a 409, and the document says so.
    let cancel = format!("{site}/deployments/{deployment}/cancel");
    assert_eq!(app.post_as(&cancel, &owner.token, json!({})).await.status, StatusCode::ACCEPTED);
    assert_eq!(app.post_as(&cancel, &owner.token, json!({})).await.status, StatusCode::CONFLICT);
    assert!(declares("post", &format!("{sites}/deployments/{{deployment}}/cancel"), 409));
    assert!(declares("delete", &format!("{sites}/environment-variables/{{key}}"), 409), "?deploy=true can conflict");
}
