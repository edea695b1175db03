//! Git repositories and incoming push webhooks: every provider's signature format, valid,
//! invalid and missing, pushes to other branches, replayed delivery ids, and the site's delivery
//! history. Deployments
//! stay queued here (no worker); `crates/slipway/tests/e2e/deploy.rs` deploys a pushed commit for real.

use crate::common::TestApp;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use slipway_core::webhook::sign;
use slipway_store::testing::TestDatabase;

struct Hook {
    app: TestApp,
    token: String,
    url: String,
    secret: String,
    site_path: String,
}

async fn setup(kind: &str) -> Hook {
    setup_on(kind, TestDatabase::sqlite().await).await
}

async fn setup_on(kind: &str, db: TestDatabase) -> Hook {
    let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 10_000).await;
    let owner = app.user(&format!("{kind}@example.com")).await;
    let repo = app
        .post_as(
            "/api/v1/git-repositories",
            &owner.token,
            json!({"url": "https://ci:hunter2-token@git.example.com/shop.git", "branch": "main", "kind": kind}),
        )
        .await;
    assert_eq!(repo.status, StatusCode::CREATED, "{}", repo.text());
    assert!(!repo.text().contains("hunter2-token"), "credentials are never shown");
    let repo_id = repo.json()["data"]["id"].as_str().unwrap().to_string();
    let enabled =
        app.post_as(&format!("/api/v1/git-repositories/{repo_id}/enable-auto-deploy"), &owner.token, json!({})).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.text());
    let data = enabled.json()["data"].clone();
    let webhook_url = data["webhook_url"].as_str().unwrap().to_string();
    let path = webhook_url.split_once("/webhooks/").map(|(_, p)| format!("/webhooks/{p}")).unwrap();
    let server = app
        .post_as(
            "/api/v1/servers",
            &owner.token,
            json!({"name": "web", "provider": "custom", "ip_address": "192.0.2.5"}),
        )
        .await;
    let server_id = server.json()["data"]["id"].as_str().unwrap().to_string();
    app.state.store.mark_provisioned(&server_id, slipway_core::time::now()).await.unwrap();
    let site = app
        .post_as(
            &format!("/api/v1/servers/{server_id}/sites"),
            &owner.token,
            json!({"domain": "shop.example.com", "project_type": "static", "git_repository_id": repo_id}),
        )
        .await;
    assert_eq!(site.status, StatusCode::CREATED, "{}", site.text());
    assert_eq!(site.json()["data"]["repository"]["git_repository_id"], repo_id.as_str());
    let site_path = format!("/api/v1/servers/{server_id}/sites/{}", site.json()["data"]["id"].as_str().unwrap());
    Hook { app, token: owner.token, url: path, secret: data["webhook_secret"].as_str().unwrap().to_string(), site_path }
}

const COMMIT: &str = "5bdadde5389c5d1c97ed42c345ab6c84b84cf112";

fn payload(kind: &str, branch: &str) -> Value {
    match kind {
        "bitbucket" => {
            json!({"push": {"changes": [{"new": {"type": "branch", "name": branch, "target": {"hash": COMMIT}}}]}})
        }
        "generic" => json!({"branch": branch, "commit": COMMIT}),
        _ => json!({"ref": format!("refs/heads/{branch}"), "after": COMMIT}),
    }
}

impl Hook {
    /// Delivers a push the way the provider would, with the signature computed from `secret`.
    async fn deliver(&self, kind: &str, body: &Value, secret: Option<&str>) -> (StatusCode, Value) {
        self.deliver_with(kind, body, secret, &[]).await
    }

    /// [`Hook::deliver`] with extra headers (a delivery id).
    async fn deliver_with(
        &self,
        kind: &str,
        body: &Value,
        secret: Option<&str>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut request = axum::http::Request::builder()
            .method(Method::POST)
            .uri(&self.url)
            .header("content-type", "application/json");
        let (event_header, event) = match kind {
            "github" => ("x-github-event", "push"),
            "gitlab" => ("x-gitlab-event", "Push Hook"),
            "bitbucket" => ("x-event-key", "repo:push"),
            _ => ("x-generic-event", "push"),
        };
        request = request.header(event_header, event);
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        if let Some(secret) = secret {
            request = match kind {
                "gitlab" => request.header("x-gitlab-token", secret),
                "github" => request.header("x-hub-signature-256", sign(secret.as_bytes(), &bytes)),
                "bitbucket" => request.header("x-hub-signature", sign(secret.as_bytes(), &bytes)),
                _ => request.header("x-slipway-signature", sign(secret.as_bytes(), &bytes)),
            };
        }
        let reply = self.app.send(request.body(axum::body::Body::from(bytes)).unwrap()).await;
        (reply.status, reply.json())
    }

    async fn deployments(&self) -> u64 {
        let list = self.app.get_as(&format!("{}/deployments", self.site_path), &self.token).await;
        list.json()["meta"]["total"].as_u64().unwrap()
    }

    async fn history(&self) -> Vec<Value> {
        let reply = self.app.get_as(&format!("{}/webhooks", self.site_path), &self.token).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        reply.json()["data"].as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn every_provider_format_is_verified_and_recorded() {
    for kind in ["github", "gitlab", "bitbucket", "generic"] {
        let hook = setup(kind).await;
        let push = payload(kind, "main");

        // Valid: the pushed commit is deployed.
        let (status, reply) = hook.deliver(kind, &push, Some(&hook.secret)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{kind}: {reply}");
        let deployments = reply["data"]["deployments"].as_array().unwrap().clone();
        assert_eq!(deployments.len(), 1, "{kind}: {reply}");
        assert_eq!(deployments[0]["trigger"], "webhook");
        let stored = hook.app.state.store.deployment(deployments[0]["id"].as_str().unwrap()).await.unwrap().unwrap();
        assert_eq!(stored.requested_commit.as_deref(), Some(COMMIT), "{kind}: the pushed commit is the one deployed");

        // Invalid signature and missing signature: 401, nothing deployed.
        let (status, reply) = hook.deliver(kind, &push, Some("not-the-secret")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}: {reply}");
        let (status, reply) = hook.deliver(kind, &push, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kind}: {reply}");
        assert!(reply["message"].as_str().unwrap().contains("header"), "{kind}: {reply}");
        assert!(reply.get("data").is_none());

        // A push to another branch: recorded, ignored.
        let (status, reply) = hook.deliver(kind, &payload(kind, "feature/x"), Some(&hook.secret)).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {reply}");
        assert!(reply["data"]["deployments"].as_array().unwrap().is_empty());

        let history = hook.history().await;
        let outcomes: Vec<&str> = history.iter().map(|d| d["outcome"].as_str().unwrap()).collect();
        assert_eq!(outcomes, ["ignored", "rejected", "rejected", "accepted"], "{kind}: newest first: {history:?}");
        assert_eq!(history[3]["deployment_id"], deployments[0]["id"]);
        assert_eq!(history[3]["commit_sha"], COMMIT);
        assert!(history[0]["reason"].as_str().unwrap().contains("feature/x"));
        assert!(history[1]["reason"].as_str().unwrap().contains("no "), "{kind}: {:?}", history[1]);
        let list = hook.app.get_as(&format!("{}/deployments", hook.site_path), &hook.token).await;
        assert_eq!(list.json()["meta"]["total"], 1, "{kind}: only the valid push deployed");
    }
}

#[tokio::test]
async fn unknown_hooks_and_disabled_auto_deploy_are_refused() {
    let hook = setup("github").await;
    let push = payload("github", "main");
    let unknown = Hook { url: "/webhooks/git-repository/nosuchrepository".into(), ..setup("github").await };
    let (status, _) = unknown.deliver("github", &push, Some(&hook.secret)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let repos = hook.app.get_as("/api/v1/git-repositories", &hook.token).await;
    let repo_id = repos.json()["data"][0]["id"].as_str().unwrap().to_string();
    let off = hook
        .app
        .post_as(&format!("/api/v1/git-repositories/{repo_id}/disable-auto-deploy"), &hook.token, json!({}))
        .await;
    assert_eq!(off.json()["data"]["auto_deploy"], false);
    let (status, reply) = hook.deliver("github", &push, Some(&hook.secret)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("Auto-deploy is off"));

    // A deploy key: the public half is shown, the private half never.
    let key =
        hook.app.post_as(&format!("/api/v1/git-repositories/{repo_id}/setup-deploy-key"), &hook.token, json!({})).await;
    assert_eq!(key.status, StatusCode::OK, "{}", key.text());
    let public = key.json()["data"]["deploy_key_public"].as_str().unwrap().to_string();
    assert!(public.starts_with("ssh-ed25519 "), "{public}");
    assert!(!key.text().contains("PRIVATE KEY"));
}

#[tokio::test]
async fn tokens_restricted_to_some_sites_cannot_touch_shared_repositories() {
    let hook = setup("github").await;
    let repos = hook.app.get_as("/api/v1/git-repositories", &hook.token).await;
    let repo_id = repos.json()["data"][0]["id"].as_str().unwrap().to_string();
    let site_id = hook.site_path.rsplit('/').next().unwrap().to_string();
    let user = hook.app.get_as("/api/v1/user", &hook.token).await.json()["data"]["id"].as_str().unwrap().to_string();
    let narrow =
        hook.app.token(&user, &["*"], |t| t.site_ids = Some(serde_json::to_string(&[&site_id]).unwrap())).await;
    for action in ["enable-auto-deploy", "setup-deploy-key", "disable-auto-deploy"] {
        let reply = hook.app.post_as(&format!("/api/v1/git-repositories/{repo_id}/{action}"), &narrow, json!({})).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{action}: {}", reply.text());
    }
    let delete =
        hook.app.call(Method::DELETE, &format!("/api/v1/git-repositories/{repo_id}"), Some(&narrow), None).await;
    assert_eq!(delete.status, StatusCode::FORBIDDEN);
    // Repositories are shared across the organization: organization-level, so not even read.
    assert_eq!(
        hook.app.get_as(&format!("/api/v1/git-repositories/{repo_id}"), &narrow).await.status,
        StatusCode::FORBIDDEN
    );
}

/// A site moves between its own URL and a git repository of the organization by `PUT`: the
/// source given last is the one it deploys, so a repository recreated (or a site made before it
/// was) can be attached without deleting the site. A token restricted to sites cannot attach one.
#[tokio::test]
async fn a_site_switches_between_a_url_and_a_git_repository() {
    let hook = setup("github").await;
    let (app, token, site) = (&hook.app, &hook.token, &hook.site_path);
    let put = |body: Value, token: String| async move { app.call(Method::PUT, site, Some(&token), Some(body)).await };
    let second = app
        .post_as(
            "/api/v1/git-repositories",
            token,
            json!({"url": "git@git.example.com:acme/shop-v2.git", "branch": "production", "kind": "github"}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let second = second.json()["data"]["id"].as_str().unwrap().to_string();

    // To its own URL: the repository is let go, and the URL is what GET shows and deploys.
    let reply = put(json!({"repository_url": "https://git.example.com/fork.git"}), token.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let repository = &reply.json()["data"]["repository"];
    assert_eq!(repository["git_repository_id"], Value::Null, "{repository}");
    assert_eq!(repository["url"], "https://git.example.com/fork.git", "{repository}");

    // To a repository: its branch unless one is given; the URL is dropped.
    let reply = put(json!({"git_repository_id": second}), token.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let repository = &reply.json()["data"]["repository"];
    assert_eq!(repository["git_repository_id"], second.as_str(), "{repository}");
    assert_eq!((&repository["url"], &repository["branch"]), (&Value::Null, &json!("production")), "{repository}");
    let reply = put(json!({"git_repository_id": second, "branch": "main"}), token.clone()).await;
    assert_eq!(reply.json()["data"]["repository"]["branch"], "main");
    // The repository goes: the site keeps its settings and is given another source.
    let gone = app.call(Method::DELETE, &format!("/api/v1/git-repositories/{second}"), Some(token), None).await;
    assert!(gone.status.is_success(), "{}", gone.text());
    let left = app.get_as(site, token).await.json()["data"]["repository"].clone();
    assert_eq!(left["git_repository_id"], Value::Null, "{left}");
    let refused = app.post_as(&format!("{site}/deploy"), token, json!({})).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text());
    assert!(refused.text().contains("git_repository_id"), "says what to set: {}", refused.text());

    // Refused: both at once, a repository that is not there or is another organization's, and
    // a token restricted to the site (repositories and their deploy keys are the organization's).
    let other = app.user("other@example.com").await;
    let theirs = app
        .post_as(
            "/api/v1/git-repositories",
            &other.token,
            json!({"url": "https://git.example.com/x.git", "kind": "github"}),
        )
        .await;
    let theirs = theirs.json()["data"]["id"].as_str().unwrap().to_string();
    for (body, field) in [
        (json!({"git_repository_id": theirs, "repository_url": "https://git.example.com/a.git"}), "repository_url"),
        (json!({"git_repository_id": "01NOSUCHREPOSITORY00000000"}), "git_repository_id"),
        (json!({"git_repository_id": theirs}), "git_repository_id"),
    ] {
        let reply = put(body.clone(), token.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", reply.text());
        assert!(reply.json()["errors"][field].is_array(), "{body}: {}", reply.text());
    }
    let repos = app.get_as("/api/v1/git-repositories", token).await.json();
    let first = repos["data"][0]["id"].as_str().unwrap().to_string();
    let site_id = site.rsplit('/').next().unwrap().to_string();
    let user = app.get_as("/api/v1/user", token).await.json()["data"]["id"].as_str().unwrap().to_string();
    let narrow = app.token(&user, &["*"], |t| t.site_ids = Some(serde_json::to_string(&[&site_id]).unwrap())).await;
    let reply = put(json!({"git_repository_id": first}), narrow.clone()).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert_eq!(app.get_as(site, token).await.json()["data"]["repository"]["git_repository_id"], Value::Null);
    let reply = put(json!({"git_repository_id": first}), token.clone()).await;
    assert_eq!(reply.json()["data"]["repository"]["git_repository_id"], first.as_str());
}

/// A site of the repository that cannot deploy (its installation failed) is recorded as refused,
/// and the push still deploys the others. When none can, the push is a 409 and its delivery id
/// is forgotten, so the host's redelivery deploys once the sites are mended.
#[tokio::test]
async fn a_site_that_cannot_deploy_does_not_hold_back_the_others() {
    let hook = setup("github").await;
    let app = &hook.app;
    let repo = app.get_as("/api/v1/git-repositories", &hook.token).await.json()["data"][0]["id"].clone();
    let sites = hook.site_path.rsplit_once('/').unwrap().0.to_string();
    let second = app
        .post_as(
            &sites,
            &hook.token,
            json!({"domain": "second.example.com", "project_type": "static", "git_repository_id": repo}),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text());
    let second = format!("{sites}/{}", second.json()["data"]["id"].as_str().unwrap());
    // The first site (the older, read first) failed to install.
    let first_id = hook.site_path.rsplit('/').next().unwrap();
    app.state
        .store
        .set_site_status(first_id, slipway_core::InstallStatus::Failed, Some("nginx -t failed"))
        .await
        .unwrap();

    let (status, reply) = hook
        .deliver_with("github", &payload("github", "main"), Some(&hook.secret), &[("x-github-delivery", "d-1")])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    assert_eq!(reply["data"]["deployments"].as_array().unwrap().len(), 1, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("nginx -t failed"), "{reply}");
    let deployed = app.get_as(&format!("{second}/deployments"), &hook.token).await.json();
    assert_eq!(deployed["meta"]["total"], 1, "{deployed}");
    let history = hook.history().await;
    assert_eq!((history[0]["outcome"].as_str(), hook.deployments().await), (Some("rejected"), 0), "{history:?}");
    assert!(history[0]["reason"].as_str().unwrap().contains("nginx -t failed"), "{history:?}");

    // No site can deploy: a 409 saying why, and the same delivery may come again.
    let second_id = second.rsplit('/').next().unwrap();
    app.state.store.set_site_status(second_id, slipway_core::InstallStatus::Failed, Some("no PHP")).await.unwrap();
    let again = [("x-github-delivery", "d-2")];
    let (status, reply) = hook.deliver_with("github", &payload("github", "main"), Some(&hook.secret), &again).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(reply["message"].as_str().unwrap().contains("no PHP"), "{reply}");
    app.state.store.set_site_status(first_id, slipway_core::InstallStatus::Installed, None).await.unwrap();
    let (status, reply) = hook.deliver_with("github", &payload("github", "main"), Some(&hook.secret), &again).await;
    assert_eq!(status, StatusCode::ACCEPTED, "the redelivery is not a duplicate: {reply}");
    assert_eq!(hook.deployments().await, 1);
}

/// The header each provider sends its delivery id in.
fn delivery_header(kind: &str) -> &'static str {
    match kind {
        "github" => "x-github-delivery",
        "gitlab" => "x-gitlab-event-uuid",
        "bitbucket" => "x-request-uuid",
        _ => "x-slipway-delivery",
    }
}

#[tokio::test]
async fn a_replayed_delivery_deploys_once_for_every_provider() {
    for kind in ["github", "gitlab", "bitbucket", "generic"] {
        let hook = setup(kind).await;
        let push = payload(kind, "main");
        let id = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
        let with_id = [(delivery_header(kind), id)];

        let (status, reply) = hook.deliver_with(kind, &push, Some(&hook.secret), &with_id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{kind}: {reply}");
        let deployed = reply["data"]["deployments"][0]["id"].clone();

        // The same delivery again (a redelivery, or a captured one replayed): not an error, the
        // sender is told it was a duplicate, and nothing deploys.
        let (status, reply) = hook.deliver_with(kind, &push, Some(&hook.secret), &with_id).await;
        assert_eq!(status, StatusCode::OK, "{kind}: {reply}");
        assert_eq!(reply["message"], format!("Duplicate delivery {id}: already received; nothing to do."));
        assert_eq!(reply["data"]["deployments"], json!([]), "{kind}");
        assert_eq!(hook.deployments().await, 1, "{kind}: one deployment for one delivery");

        // Another delivery of the same push deploys: the id is outside the signature, so it
        // tells deliveries apart, not pushes.
        let fresh = [(delivery_header(kind), "another-delivery")];
        let (status, reply) = hook.deliver_with(kind, &push, Some(&hook.secret), &fresh).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{kind}: {reply}");

        let history = hook.history().await;
        let rows: Vec<(&str, &str)> =
            history.iter().map(|d| (d["outcome"].as_str().unwrap(), d["delivery_id"].as_str().unwrap())).collect();
        assert_eq!(rows, [("accepted", "another-delivery"), ("ignored", id), ("accepted", id)], "{kind}: {history:?}");
        assert_eq!(history[1]["reason"], format!("duplicate delivery {id}"), "{kind}");
        assert_eq!(history[1]["deployment_id"], Value::Null);
        assert_eq!(history[1]["commit_sha"], COMMIT, "{kind}: the duplicate's push is shown");
        assert_eq!(history[2]["deployment_id"], deployed);
        assert_eq!(hook.deployments().await, 2, "{kind}");
    }
}

#[tokio::test]
async fn the_other_delivery_headers_are_read_and_bitbuckets_hook_id_is_not() {
    // GitLab's per-request id, when its per-event one is missing.
    let hook = setup("gitlab").await;
    let push = payload("gitlab", "main");
    let with_id = [("x-gitlab-webhook-uuid", "gitlab-request-1")];
    for expected in [StatusCode::ACCEPTED, StatusCode::OK] {
        let (status, reply) = hook.deliver_with("gitlab", &push, Some(&hook.secret), &with_id).await;
        assert_eq!(status, expected, "{reply}");
    }
    assert_eq!(hook.deployments().await, 1);

    // X-Hook-UUID names the Bitbucket webhook, the same on every delivery: two pushes that carry
    // only it both deploy.
    let hook = setup("bitbucket").await;
    let push = payload("bitbucket", "main");
    let hook_id = [("x-hook-uuid", "{cb6b7ba9-6c34-4d43-9e5c-1e1b5cbbd2a1}")];
    for _ in 0..2 {
        let (status, reply) = hook.deliver_with("bitbucket", &push, Some(&hook.secret), &hook_id).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    }
    assert_eq!(hook.deployments().await, 2);
    assert_eq!(hook.history().await[0]["delivery_id"], Value::Null);
}

#[tokio::test]
async fn concurrent_identical_deliveries_deploy_once() {
    for db in TestDatabase::each().await {
        let hook = setup_on("github", db).await;
        let push = payload("github", "main");
        let with_id = [("x-github-delivery", "raced-delivery")];
        let (first, second) = tokio::join!(
            hook.deliver_with("github", &push, Some(&hook.secret), &with_id),
            hook.deliver_with("github", &push, Some(&hook.secret), &with_id),
        );
        let mut statuses = [first.0, second.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::ACCEPTED], "{} / {}", first.1, second.1);
        assert_eq!(hook.deployments().await, 1, "one of the two deployed");
        let mut outcomes: Vec<String> =
            hook.history().await.iter().map(|d| d["outcome"].as_str().unwrap().to_string()).collect();
        outcomes.sort();
        assert_eq!(outcomes, ["accepted", "ignored"]);
    }
}

#[tokio::test]
async fn malformed_delivery_ids_are_refused_once_the_signature_holds() {
    let hook = setup("generic").await;
    let push = payload("generic", "main");
    let too_long = "d".repeat(129);
    for bad in ["has a space", "", too_long.as_str()] {
        let with_id = [("x-slipway-delivery", bad)];
        let (status, reply) = hook.deliver_with("generic", &push, Some(&hook.secret), &with_id).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}: {reply}");
        assert!(reply["message"].as_str().unwrap().contains("x-slipway-delivery"), "{reply}");
    }
    // Unsigned: the signature is what is wrong, whatever the id.
    let (status, _) = hook.deliver_with("generic", &push, None, &[("x-slipway-delivery", "has a space")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(hook.deployments().await, 0);
    let history = hook.history().await;
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|d| d["outcome"] == "rejected" && d["delivery_id"].is_null()), "{history:?}");
    assert!(history[1]["reason"].as_str().unwrap().contains("1 to 128 visible ASCII"), "{history:?}");

    // A well-formed id afterwards is a first delivery.
    let (status, reply) =
        hook.deliver_with("generic", &push, Some(&hook.secret), &[("x-slipway-delivery", "d-1")]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
}
