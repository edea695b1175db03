//! Every list endpoint reads a page in a bounded number of database queries, whatever the page
//! size: a list that made one query per row would be fast with ten rows and slow with 100k.
//!
//! Queries are counted from sqlx's own statement events (`sqlx::query`, one per statement),
//! only those made inside the measured request's span (sqlx runs SQLite statements on a worker
//! thread, but under the caller's span): the job runner's queries, or another test's in the same
//! process under `cargo test`, are not counted. Each figure is still the least of three reads, so
//! a read cache warmed by the first counts as it does for every later request.

use slipway_core::InstallStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::common::TestApp;
use axum::http::StatusCode;
use serde_json::json;
use slipway_store::testing::TestDatabase;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;

static QUERIES: AtomicUsize = AtomicUsize::new(0);
/// The statements' texts, in order (to find one a request made twice).
static STATEMENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The span a measured request runs in.
const MEASURED: &str = "measured_request";

/// Counts sqlx's statement events made within a [`MEASURED`] span.
struct CountQueries;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for CountQueries {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let measured = || ctx.event_scope(event).is_some_and(|mut scope| scope.any(|span| span.name() == MEASURED));
        if event.metadata().target() == "sqlx::query" && measured() {
            QUERIES.fetch_add(1, Ordering::SeqCst);
            let mut statement = Statement(String::new());
            event.record(&mut statement);
            STATEMENTS.lock().unwrap().push(statement.0);
        }
    }
}

struct Statement(String);

impl tracing::field::Visit for Statement {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "db.statement" {
            self.0 = format!("{value:?}");
        }
    }
}

fn count_queries() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::filter::Targets::new()
                    .with_target("sqlx::query", tracing::Level::TRACE)
                    .with_target(module_path!(), tracing::Level::TRACE),
            )
            .with(CountQueries);
        tracing::subscriber::set_global_default(subscriber).expect("no other subscriber in this test binary");
    });
}

/// The fewest queries one GET of `uri` made in three tries, and the statements of that try.
async fn queries_of(app: &TestApp, uri: &str, token: &str) -> (usize, Vec<String>) {
    let mut fewest = (usize::MAX, Vec::new());
    for _ in 0..3 {
        let before = QUERIES.load(Ordering::SeqCst);
        let first = STATEMENTS.lock().unwrap().len();
        let reply = app.get_as(uri, token).instrument(tracing::info_span!(MEASURED)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
        let made = QUERIES.load(Ordering::SeqCst) - before;
        if made < fewest.0 {
            fewest = (made, STATEMENTS.lock().unwrap()[first..].to_vec());
        }
    }
    fewest
}

#[tokio::test]
async fn list_endpoints_make_the_same_few_queries_for_any_page_size() {
    count_queries();
    for db in TestDatabase::each().await {
        lists_on(db).await;
    }
}

async fn lists_on(db: TestDatabase) {
    let backend = if db.url().starts_with("sqlite") { "SQLite" } else { "PostgreSQL" };
    let app = TestApp::configured(db, |c| c.rate_limits.api_per_minute = 100_000).await;
    let owner = app.user("lists@example.com").await;
    let mut servers = Vec::new();
    for n in 0..12 {
        let body = json!({"name": format!("web-{n}"), "provider": "custom", "ip_address": format!("192.0.2.{n}")});
        let reply = app.post_as("/api/v1/servers", &owner.token, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        servers.push(reply.json()["data"]["id"].as_str().unwrap().to_string());
    }
    let server = &servers[0];
    app.state.store.mark_provisioned(server, slipway_core::time::now()).await.unwrap();
    let mut site = String::new();
    for n in 0..12 {
        let body = json!({"domain": format!("s{n}.example.com"), "project_type": "static",
                          "repository_url": "https://git.example.com/site.git"});
        let reply = app.post_as(&format!("/api/v1/servers/{server}/sites"), &owner.token, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
        site = reply.json()["data"]["id"].as_str().unwrap().to_string();
    }
    app.state.store.set_site_status(&site, InstallStatus::Installed, None).await.unwrap();
    let site_path = format!("/api/v1/servers/{server}/sites/{site}");
    for _ in 0..12 {
        let reply = app.post_as(&format!("{site_path}/deploy"), &owner.token, json!({})).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{}", reply.text());
    }

    // Whether the list's first page carries its count in its own statement (`list_page!`).
    for (list, counted_with_page) in [
        ("/api/v1/servers".to_string(), true),
        (format!("/api/v1/servers/{server}/sites"), true),
        (format!("{site_path}/deployments"), true),
        ("/api/v1/audit-events".to_string(), false),
        ("/api/v1/events".to_string(), false),
        ("/api/v1/tokens".to_string(), false),
    ] {
        // Page 1 and page 2 by number (its ids found first) at three page sizes and two.
        let mut by_size = Vec::new();
        for page in ["per_page=1", "per_page=5", "per_page=12", "per_page=1&page=2", "per_page=5&page=2"] {
            let (made, statements) = queries_of(&app, &format!("{list}?{page}"), &owner.token).await;
            if counted_with_page && !page.contains("page=2") {
                assert!(
                    statements.iter().any(|s| s.contains("AS page_total")),
                    "{backend} {list}?{page}: the page is not counted in its own statement: {statements:?}"
                );
            }
            // The caller's roles are read once a request, however many checks use them.
            let mut seen = std::collections::HashSet::new();
            let repeated: Vec<&String> = statements.iter().filter(|s| !seen.insert(*s)).collect();
            assert!(repeated.is_empty(), "{backend} {list}: the same query twice in one request: {repeated:?}");
            by_size.push(made);
        }
        let (first, deep) = by_size.split_at(3);
        assert!(
            first.iter().all(|n| *n == first[0]) && deep.iter().all(|n| *n == deep[0]),
            "{backend} {list}: by page size 1, 5, 12, then page 2 at 1, 5: {by_size:?}"
        );
        // A first page counted in its own statement saves one that a deep page by number,
        // which counts after it reads (from its first row), still makes.
        let extra = usize::from(counted_with_page);
        assert_eq!(deep[0], first[0] + extra, "{backend} {list}: page 1 {}, page 2 {}", first[0], deep[0]);
        // At least the page: none would mean the counter lost the request's span.
        assert!(first[0] >= 1, "{backend} {list}: no query counted");
        // PostgreSQL has no read cache (replicas must see a revocation at once): it also reads
        // the token, user and memberships.
        assert!(first[0] <= 9 && deep[0] <= 9, "{backend} {list}: {by_size:?} queries for a page");
        eprintln!("{backend} {list}: {} queries for page 1, {} for page 2", first[0], deep[0]);
    }
}
