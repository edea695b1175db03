//! Servers through the API: registering one (and the command that authorises Slipway's key,
//! run in a real shell), visibility by organization and token restriction, roles, edits.

use crate::common::TestApp;
use axum::http::{Method, StatusCode};
use serde_json::json;
use slipway_store::testing::TestDatabase;

async fn app() -> TestApp {
    TestApp::configured(TestDatabase::sqlite().await, |c| c.rate_limits.api_per_minute = 10_000).await
}

#[tokio::test]
async fn registering_a_server_returns_the_key_and_a_command_that_installs_it() {
    for db in TestDatabase::each().await {
        let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
        let owner = app.user("srv@example.com").await;
        let created = app
            .post_as("/api/v1/servers", &owner.token, json!({"name": "web-1", "provider": "custom", "ip_address": "203.0.113.10", "ssh_user": "deploy", "php_version": "8.3"}))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let data = created.json()["data"].clone();
        assert_eq!(
            (data["status"].as_str(), data["ssh_port"].as_i64(), data["ssh_user"].as_str()),
            (Some("pending"), Some(22), Some("deploy"))
        );
        assert_eq!(data["organization_id"], owner.org_id.as_str());
        let public_key = data["authorization"]["public_key"].as_str().unwrap().to_string();
        assert!(slipway_core::server_input::SshPublicKey::parse(&public_key).is_ok(), "{public_key}");

        // The command works in a real shell and installs exactly that key.
        let home = std::env::temp_dir().join(format!("slipway-home-{}", slipway_core::new_id()));
        std::fs::create_dir_all(&home).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(data["authorization"]["command"].as_str().unwrap())
            .env("HOME", &home)
            .status()
            .unwrap();
        assert!(status.success());
        let installed = std::fs::read_to_string(home.join(".ssh/authorized_keys")).unwrap();
        assert_eq!(
            installed,
            format!("\n{public_key} slipway\n"),
            "on a line of its own even after a file without a final newline"
        );
        let _ = std::fs::remove_dir_all(&home);

        // One key per organization, and its private half is stored sealed.
        let second = app
            .post_as(
                "/api/v1/servers",
                &owner.token,
                json!({"name": "web-2", "provider": "custom", "ip_address": "web-2.example.com"}),
            )
            .await
            .json();
        assert_eq!(second["data"]["authorization"]["public_key"], public_key.as_str());
    }
}

#[tokio::test]
async fn invalid_servers_are_refused_field_by_field() {
    let app = app().await;
    let owner = app.user("bad@example.com").await;
    let reply = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "", "provider": "digitalocean", "ip_address": "1.2.3.4; rm -rf /", "ssh_user": "Root$(id)", "php_version": "5.6", "database_type": "oracle", "ssh_port": 0}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let errors = reply.json()["errors"].clone();
    for field in ["name", "provider", "ip_address", "ssh_user", "php_version", "database_type", "ssh_port"] {
        assert!(errors[field].is_array(), "{field}: {errors}");
    }
    assert_eq!(app.get_as("/api/v1/servers", &owner.token).await.json()["meta"]["total"], 0, "nothing half-created");
}

#[tokio::test]
async fn servers_are_visible_only_within_organizations_and_token_restrictions() {
    let app = app().await;
    let a = app.user("a@example.com").await;
    let b = app.user("b@example.com").await;
    let create = |token: String, name: &'static str| {
        let app = &app;
        async move {
            app.post_as(
                "/api/v1/servers",
                &token,
                json!({"name": name, "provider": "custom", "ip_address": "127.0.0.1"}),
            )
            .await
        }
    };
    let a1 = create(a.token.clone(), "a1").await.json()["data"]["id"].as_str().unwrap().to_string();
    let a2 = create(a.token.clone(), "a2").await.json()["data"]["id"].as_str().unwrap().to_string();
    create(b.token.clone(), "b1").await;

    assert_eq!(app.get_as("/api/v1/servers", &a.token).await.json()["meta"]["total"], 2);
    assert_eq!(app.get_as(&format!("/api/v1/servers/{a1}"), &b.token).await.status, StatusCode::NOT_FOUND);

    let only_a2 =
        app.token(&a.id, &["server:*"], |t| t.server_ids = Some(serde_json::to_string(&[&a2]).unwrap())).await;
    let listed = app.get_as("/api/v1/servers", &only_a2).await.json();
    assert_eq!((listed["meta"]["total"].as_u64(), listed["data"][0]["id"].as_str()), (Some(1), Some(a2.as_str())));
    assert_eq!(app.get_as(&format!("/api/v1/servers/{a1}"), &only_a2).await.status, StatusCode::NOT_FOUND);
    let blocked = create(only_a2.clone(), "x").await;
    // Adding a server is an organization-level action: a restricted token may not widen its reach.
    assert_eq!(blocked.status, StatusCode::FORBIDDEN, "a server-restricted token cannot add servers");

    // A viewer reads but cannot change.
    app.post_as(
        &format!("/api/v1/organizations/{}/members", a.org_id),
        &a.token,
        json!({"email": "b@example.com", "role": "viewer"}),
    )
    .await;
    assert_eq!(app.get_as(&format!("/api/v1/servers/{a1}"), &b.token).await.status, StatusCode::OK);
    let put =
        app.call(Method::PUT, &format!("/api/v1/servers/{a1}"), Some(&b.token), Some(json!({"name": "mine"}))).await;
    assert_eq!(put.status, StatusCode::FORBIDDEN);
    assert!(put.json()["message"].as_str().unwrap().contains("viewer"));
    let needs_org = create(b.token.clone(), "ambiguous").await;
    assert!(needs_org.json()["errors"]["organization_id"].is_array(), "b belongs to two organizations now");

    let renamed = app
        .call(
            Method::PUT,
            &format!("/api/v1/servers/{a1}"),
            Some(&a.token),
            Some(json!({"name": "a-one", "ssh_port": 2222})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text());
    assert_eq!(
        (renamed.json()["data"]["name"].as_str(), renamed.json()["data"]["ssh_port"].as_i64()),
        (Some("a-one"), Some(2222))
    );
    let logs = app.get_as(&format!("/api/v1/servers/{a1}/logs"), &a.token).await;
    assert_eq!((logs.status, logs.json()["meta"]["total"].as_u64()), (StatusCode::OK, Some(0)));
    assert_eq!(
        app.call(Method::DELETE, &format!("/api/v1/servers/{a1}"), Some(&a.token), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get_as(&format!("/api/v1/servers/{a1}"), &a.token).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn keys_and_rules_wait_for_provisioning_and_are_validated() {
    let app = app().await;
    let owner = app.user("items@example.com").await;
    let server = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "web", "provider": "custom", "ip_address": "192.0.2.9"}),
        )
        .await;
    let id = server.json()["data"]["id"].as_str().unwrap().to_string();
    let other = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "db", "provider": "custom", "ip_address": "192.0.2.10"}),
        )
        .await;
    let other_id = other.json()["data"]["id"].as_str().unwrap().to_string();
    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGgjfV5Zf0tGxJ+R1zQvq3YpJkGk0r1k3D7mJ0m8n9Qb ana@laptop";

    let created = app
        .post_as(&format!("/api/v1/servers/{id}/ssh-keys"), &owner.token, json!({"name": "ana", "public_key": key}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let data = created.json()["data"].clone();
    assert_eq!(data["status"], "installing");
    assert!(data["operation_id"].is_null(), "provisioning will apply it");
    assert!(data["fingerprint"].as_str().unwrap().starts_with("SHA256:"));
    assert!(!data["public_key"].as_str().unwrap().contains("ana@laptop"), "the comment is not kept");
    let again = app
        .post_as(&format!("/api/v1/servers/{id}/ssh-keys"), &owner.token, json!({"name": "dup", "public_key": key}))
        .await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY, "the same key twice");
    let key_id = data["id"].as_str().unwrap();
    let elsewhere = app.get_as(&format!("/api/v1/servers/{other_id}/ssh-keys/{key_id}"), &owner.token).await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND, "a key is found only under its own server");

    let rule = app
        .post_as(
            &format!("/api/v1/servers/{id}/network-rules"),
            &owner.token,
            json!({"name": "office", "port": "8000-8100", "protocol": "udp", "from": "203.0.113.0/24", "action": "deny"}),
        )
        .await;
    assert_eq!(rule.status, StatusCode::CREATED, "{}", rule.text());
    let rule = rule.json()["data"].clone();
    assert_eq!(
        (rule["port"].as_str(), rule["protocol"].as_str(), rule["from"].as_str()),
        (Some("8000-8100"), Some("udp"), Some("203.0.113.0/24"))
    );
    for (body, field) in [
        (json!({"name": "ssh", "port": "1-1024", "action": "deny"}), "port"),
        (json!({"name": "x", "port": 80, "protocol": "icmp"}), "body"),
        (json!({"name": "x", "port": "443", "from": "everywhere"}), "from"),
    ] {
        let reply = app.post_as(&format!("/api/v1/servers/{id}/network-rules"), &owner.token, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text());
        if field != "body" {
            assert!(reply.json()["errors"][field].is_array(), "{}", reply.text());
        }
    }

    // Not provisioned: deleting takes effect at once, and there is nothing to restart.
    let deleted = app
        .call(axum::http::Method::DELETE, &format!("/api/v1/servers/{id}/ssh-keys/{key_id}"), Some(&owner.token), None)
        .await;
    assert_eq!(deleted.status, StatusCode::ACCEPTED, "{}", deleted.text());
    assert_eq!(deleted.json()["data"]["status"], "removed");
    assert_eq!(app.get_as(&format!("/api/v1/servers/{id}/ssh-keys"), &owner.token).await.json()["meta"]["total"], 0);
    let restart =
        app.post_as(&format!("/api/v1/servers/{id}/restart"), &owner.token, json!({"services": ["nginx"]})).await;
    assert_eq!(restart.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", restart.text());
    let nothing = app.post_as(&format!("/api/v1/servers/{id}/restart"), &owner.token, json!({})).await;
    assert_eq!(nothing.status, StatusCode::UNPROCESSABLE_ENTITY);
    let accept = app
        .post_as(&format!("/api/v1/servers/{id}/accept-host-key"), &owner.token, json!({"fingerprint": "SHA256:x"}))
        .await;
    assert_eq!(accept.status, StatusCode::UNPROCESSABLE_ENTITY, "no key was offered");

    let provision = app.post_as(&format!("/api/v1/servers/{id}/provision"), &owner.token, json!({})).await;
    assert_eq!(provision.status, StatusCode::ACCEPTED, "{}", provision.text());
    assert_eq!(provision.json()["data"]["kind"], "server.provision");
    assert_eq!(provision.json()["data"]["status"], "queued");
}

/// Paths take a server's name for its id and a site's domain for its id; what was not found
/// is named in the 404, and an ambiguous name is a 409 listing the ids. A CI token holding only
/// `site:deploy` deploys by domain and follows the deployment it started.
#[tokio::test]
async fn servers_by_name_and_sites_by_domain_with_a_deploy_only_token() {
    let app = TestApp::configured(TestDatabase::postgres().await, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user("names@example.com").await;
    let other = app.user("other-names@example.com").await;
    let create = |token: String, name: &'static str| {
        let app = &app;
        async move {
            let body = json!({"name": name, "provider": "custom", "ip_address": "192.0.2.9"});
            let reply = app.post_as("/api/v1/servers", &token, body).await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
            reply.json()["data"]["id"].as_str().unwrap().to_string()
        }
    };
    let web = create(owner.token.clone(), "web-1").await;
    create(other.token.clone(), "web-1").await;
    app.state.store.mark_provisioned(&web, slipway_core::time::now()).await.unwrap();
    let site = app
        .post_as(
            "/api/v1/servers/web-1/sites",
            &owner.token,
            json!({"domain": "shop.example.com", "project_type": "static", "repository_url": "https://example.com/a.git"}),
        )
        .await;
    assert_eq!(site.status, StatusCode::CREATED, "{}", site.text());

    // Another organization's server of the same name is neither found nor a reason for 409.
    let shown = app.get_as("/api/v1/servers/web-1", &owner.token).await.json();
    assert_eq!((shown["data"]["id"].as_str(), shown["data"]["sites_count"].as_u64()), (Some(web.as_str()), Some(1)));
    let listed = app.get_as("/api/v1/servers", &owner.token).await.json();
    assert_eq!(listed["data"][0]["sites_count"], 1, "{listed}");
    let missing = app.get_as("/api/v1/servers/web-9", &owner.token).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["message"].as_str().unwrap().contains("\"web-9\""), "{}", missing.text());
    // By id, another organization's server is missing in the same words.
    let theirs = app.get_as(&format!("/api/v1/servers/{web}"), &other.token).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    assert!(theirs.json()["message"].as_str().unwrap().contains("No server"), "{}", theirs.text());

    let ci = app.token(&owner.id, &["site:deploy"], |_| {}).await;
    let deployed = app.post_as("/api/v1/servers/web-1/sites/SHOP.example.com/deploy", &ci, json!({})).await;
    assert_eq!(deployed.status, StatusCode::ACCEPTED, "{}", deployed.text());
    let deployment = deployed.json()["data"]["id"].as_str().unwrap().to_string();
    let base = "/api/v1/servers/web-1/sites/shop.example.com/deployments";
    assert_eq!(app.get_as(&format!("{base}/{deployment}"), &ci).await.status, StatusCode::OK);
    assert_eq!(app.get_as(&format!("{base}/{deployment}/log"), &ci).await.status, StatusCode::OK);
    let no_site = app.post_as("/api/v1/servers/web-1/sites/nope.example.com/deploy", &ci, json!({})).await;
    assert_eq!(no_site.status, StatusCode::NOT_FOUND);
    assert!(no_site.text().contains("nope.example.com"), "{}", no_site.text());

    // Two servers of one's own with the same name: the name is ambiguous, and said so.
    let twin = create(owner.token.clone(), "web-1").await;
    let ambiguous = app.get_as("/api/v1/servers/web-1", &owner.token).await;
    assert_eq!(ambiguous.status, StatusCode::CONFLICT);
    assert!(ambiguous.text().contains(&twin) && ambiguous.text().contains(&web), "{}", ambiguous.text());
}

/// Cron jobs: every field checked with a 422 naming it before anything is stored; a site's job
/// takes the site's user and current release; runs are read from the server (503 when it cannot
/// be read).
#[tokio::test]
async fn cron_jobs_are_validated_field_by_field_and_take_their_sites_user() {
    let app = app().await;
    let owner = app.user("cron@example.com").await;
    let mut ids = Vec::new();
    for (name, ip) in [("web", "192.0.2.11"), ("db", "192.0.2.12")] {
        let server = app
            .post_as("/api/v1/servers", &owner.token, json!({"name": name, "provider": "custom", "ip_address": ip}))
            .await;
        let id = server.json()["data"]["id"].as_str().unwrap().to_string();
        app.state.store.mark_provisioned(&id, slipway_core::time::now()).await.unwrap();
        ids.push(id);
    }
    let (id, other_id) = (&ids[0], &ids[1]);
    let site_on = |server: &str, domain: &str| {
        let path = format!("/api/v1/servers/{server}/sites");
        let body = json!({"domain": domain, "project_type": "static", "repository_url": "https://example.com/a.git"});
        let token = owner.token.clone();
        let app = &app;
        async move {
            let site = app.post_as(&path, &token, body).await;
            assert_eq!(site.status, StatusCode::CREATED, "{}", site.text());
            site.json()["data"]["id"].as_str().unwrap().to_string()
        }
    };
    let site = site_on(id, "shop.example.com").await;
    let elsewhere = site_on(other_id, "db.example.com").await;
    let crontabs = format!("/api/v1/servers/{id}/crontabs");

    for (body, field) in [
        (json!({"command": "true", "frequency": "every day"}), "frequency"),
        (json!({"command": "true", "frequency": "61 * * * *"}), "frequency"),
        (json!({"command": "true", "frequency": "* * * * * root /tmp/evil"}), "frequency"),
        (json!({"command": "true", "frequency": "0 0 * * MON"}), "frequency"),
        (json!({"command": "true", "frequency": "@reboot"}), "frequency"),
        (json!({"command": "true\n* * * * * root /tmp/evil", "frequency": "hourly"}), "command"),
        (json!({"command": "echo 100%\n", "frequency": "hourly"}), "command"),
        (json!({"command": "a\u{0}b", "frequency": "hourly"}), "command"),
        (json!({"command": "x".repeat(64 * 1024), "frequency": "hourly"}), "command"),
        (json!({"command": "true", "frequency": "hourly", "user": "root root"}), "user"),
        (json!({"command": "true", "frequency": "hourly", "user": "slipway", "site_id": site}), "user"),
        (json!({"command": "true", "frequency": "hourly", "site_id": "01NOSUCHSITE"}), "site_id"),
        (json!({"command": "true", "frequency": "hourly", "site_id": elsewhere}), "site_id"),
    ] {
        let reply = app.post_as(&crontabs, &owner.token, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text());
        assert!(reply.json()["errors"][field].is_array(), "{field}: {}", reply.text());
    }
    let missing = app.post_as(&crontabs, &owner.token, json!({"command": "true"})).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", missing.text());
    assert_eq!(app.get_as(&crontabs, &owner.token).await.json()["meta"]["total"], 0, "nothing was stored");

    let plain = app
        .post_as(
            &crontabs,
            &owner.token,
            json!({"command": "echo '50%' \"$(date)\"", "frequency": " */5  *  * * 1-5 "}),
        )
        .await;
    assert_eq!(plain.status, StatusCode::CREATED, "{}", plain.text());
    let data = plain.json()["data"].clone();
    assert_eq!(
        (data["command"].as_str(), data["user"].as_str(), data["frequency"].as_str(), data["schedule"].as_str()),
        (Some("echo '50%' \"$(date)\""), Some("slipway"), Some("*/5 * * * 1-5"), Some("*/5 * * * 1-5"))
    );
    assert_eq!((data["status"].as_str(), data["site_id"].as_str()), (Some("installing"), None));

    let for_site = app
        .post_as(
            &crontabs,
            &owner.token,
            json!({"command": "php artisan schedule:run", "frequency": "minutely", "site_id": site}),
        )
        .await;
    assert_eq!(for_site.status, StatusCode::CREATED, "{}", for_site.text());
    let data = for_site.json()["data"].clone();
    assert_eq!(data["user"], format!("s{}", site.to_ascii_lowercase()));
    assert_eq!(data["directory"], "/home/slipway/shop.example.com/current");
    assert_eq!((data["frequency"].as_str(), data["schedule"].as_str()), (Some("minutely"), Some("* * * * *")));

    // Nothing answers at that address: the runs cannot be read, and say so.
    let runs = app.get_as(&format!("{crontabs}/{}/runs", data["id"].as_str().unwrap()), &owner.token).await;
    assert_eq!(runs.status, StatusCode::SERVICE_UNAVAILABLE, "{}", runs.text());
    assert!(runs.text().contains("Could not read the runs"), "{}", runs.text());
    let listed = app.get_as(&format!("/api/v1/servers/{other_id}/crontabs"), &owner.token).await;
    assert_eq!(listed.json()["meta"]["total"], 0, "jobs are listed under their own server only");
}
