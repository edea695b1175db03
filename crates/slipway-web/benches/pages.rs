//! Dashboard page render times with 1,000 sites (10 servers of 100), in process: the time from
//! request to the last byte of the page, through every layer (session, CSRF guard, the API
//! calls the page makes, the template). Also the bytes a page and its assets weigh. Targets
//! (PRODUCT.md): servers and sites pages p99 ≤ 20 ms; a page with its assets ≤ 150 KB.
//! Run with `bench/dashboard`; `BENCH_BACKEND=postgres` measures on PostgreSQL.

#![allow(clippy::print_stdout)] // a benchmark prints its figures

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use slipway_api::{ApiConfig, AppState};
use slipway_core::SecretsKey;
use slipway_store::testing::TestDatabase;
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery staple";
const SERVERS: usize = 10;
const SITES_PER_SERVER: usize = 100;
const RUNS: usize = 400;

async fn send(
    router: &Router,
    method: Method,
    path: &str,
    cookie: &str,
    body: Option<String>,
) -> (u16, Vec<String>, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path).header(header::HOST, "slipway.test");
    if !cookie.is_empty() {
        request = request.header(header::COOKIE, cookie);
    }
    let body = match body {
        Some(form) => {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(form)
        }
        None => Body::empty(),
    };
    let mut request = request.body(body).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let cookies = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    (status, cookies, bytes)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let backend = std::env::var("BENCH_BACKEND").unwrap_or_else(|_| "sqlite".into());
    let db = if backend == "postgres" { TestDatabase::postgres().await } else { TestDatabase::sqlite().await };
    let store = db.store().await;
    let mut config = ApiConfig::new("http://slipway.test");
    config.rate_limits.api_per_minute = u32::MAX;
    let state = AppState::new(store.clone(), SecretsKey::generate(), config);
    let router =
        slipway_api::app_with(state.clone(), slipway_web::router(slipway_api::app(state), "http://slipway.test"));

    let user = slipway_store::testing::user("owner@example.com", "Owner", PASSWORD);
    let org = slipway_core::new_id();
    store.create_user_with_organization(&user, &org, "Agency", "owner").await.unwrap();
    let mut first_server = String::new();
    for s in 0..SERVERS {
        let server = slipway_store::testing::server(&org, &format!("web-{s}"));
        store.insert_server(&server).await.unwrap();
        for n in 0..SITES_PER_SERVER {
            store
                .insert_site(&slipway_store::testing::site(&server, &format!("site-{n}.web-{s}.example.com")))
                .await
                .unwrap();
        }
        if s == 0 {
            first_server = server.id;
        }
    }

    // Log in as a browser does.
    let (_, cookies, html) = send(&router, Method::GET, "/login", "", None).await;
    let html = String::from_utf8(html).unwrap();
    let at = html.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = html[at..].split('"').next().unwrap().to_string();
    let form =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("email", "owner@example.com"), ("password", PASSWORD)])
            .unwrap();
    let (status, cookies, _) = send(&router, Method::POST, "/login", &cookies.join("; "), Some(form)).await;
    assert_eq!(status, 303, "login");
    let cookie = cookies.into_iter().find(|c| c.starts_with("slipway_session=")).unwrap();

    let assets: usize = {
        let mut total = 0;
        for asset in ["/assets/app.css", "/assets/app.js", "/assets/icon.svg"] {
            total += send(&router, Method::GET, asset, "", None).await.2.len();
        }
        total
    };
    println!(
        "Dashboard pages with {} sites on {SERVERS} servers ({backend}), {RUNS} requests each, in process",
        SERVERS * SITES_PER_SERVER
    );
    println!("{:<28} {:>8} {:>8} {:>8} {:>10} {:>12}", "page", "p50 ms", "p99 ms", "max ms", "page KB", "+assets KB");
    let pages = [
        ("/servers".to_string(), "servers (50 a page)"),
        ("/sites".to_string(), "sites (50 a page)"),
        (format!("/servers/{first_server}"), "a server (100 sites)"),
        ("/".to_string(), "needs attention"),
    ];
    for (path, name) in pages {
        for _ in 0..20 {
            assert_eq!(send(&router, Method::GET, &path, &cookie, None).await.0, 200, "{path}");
        }
        let mut times = Vec::with_capacity(RUNS);
        let mut bytes = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let (status, _, body) = send(&router, Method::GET, &path, &cookie, None).await;
            times.push(started.elapsed());
            assert_eq!(status, 200);
            bytes = body.len();
        }
        times.sort();
        println!(
            "{name:<28} {:>8.2} {:>8.2} {:>8.2} {:>10.1} {:>12.1}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times.last().unwrap().as_secs_f64() * 1000.0,
            bytes as f64 / 1024.0,
            (bytes + assets) as f64 / 1024.0
        );
    }
    println!("targets: p99 ≤ 20 ms for the servers and sites pages; a page with its assets ≤ 150 KB");
}
