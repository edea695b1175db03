//! In-process test harness: the real router over a throwaway database, driven with `oneshot`.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use slipway_api::{ApiConfig, AppState};
use slipway_core::SecretsKey;
use slipway_store::testing::TestDatabase;
use tower::ServiceExt;

pub const PUBLIC_URL: &str = "http://slipway.test";

pub struct TestApp {
    pub db: TestDatabase,
    pub state: AppState,
    pub router: Router,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestApp {
    pub async fn on(db: TestDatabase) -> Self {
        Self::with(db, slipway_api::app).await
    }

    pub async fn sqlite() -> Self {
        Self::on(TestDatabase::sqlite().await).await
    }

    /// Builds the app with a custom router builder (for tests that mount extra routes).
    pub async fn with(db: TestDatabase, build: impl FnOnce(AppState) -> Router) -> Self {
        let store = db.store().await;
        let config = ApiConfig { public_url: PUBLIC_URL.into(), max_body_bytes: 1024 * 1024 };
        let state = AppState::new(store, SecretsKey::generate(), config);
        let router = build(state.clone());
        Self { db, state, router }
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.expect("router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.expect("body reads").to_bytes().to_vec();
        Reply { status, headers, body }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.send(Request::get(uri).body(Body::empty()).unwrap()).await
    }
}
