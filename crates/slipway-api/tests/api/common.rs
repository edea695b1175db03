//! In-process test harness: the real router over a throwaway database, driven with `oneshot`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode};
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

/// A user with an organisation they own and a token with every ability.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub org_id: String,
    pub token: String,
}

pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub async fn on(db: TestDatabase) -> Self {
        Self::with(db, slipway_api::app).await
    }

    /// The app with a custom configuration.
    pub async fn configured(db: TestDatabase, tweak: impl FnOnce(&mut ApiConfig)) -> Self {
        let store = db.store().await;
        let mut config = ApiConfig::new(PUBLIC_URL);
        tweak(&mut config);
        let state = AppState::new(store, SecretsKey::generate(), config);
        let router = slipway_api::app(state.clone());
        Self { db, state, router }
    }

    /// Creates a user owning a new organisation, and a token for them with every ability.
    pub async fn user(&self, email: &str) -> TestUser {
        let new = slipway_store::testing::user(email, "Test User", PASSWORD);
        let (id, org_id) = (new.id.clone(), slipway_core::new_id());
        self.state
            .store
            .create_user_with_organization(&new, &org_id, &format!("{email}'s org"), "owner")
            .await
            .unwrap();
        let token = self.token(&id, &["*"], |_| {}).await;
        TestUser { id, email: email.into(), org_id, token }
    }

    /// Creates a user whose only membership is `role` in `organization_id`; returns their id.
    pub async fn member(&self, organization_id: &str, email: &str, role: slipway_core::Role) -> String {
        let new = slipway_store::testing::user(email, "Test Member", PASSWORD);
        let id = new.id.clone();
        self.state.store.create_user(&new).await.unwrap();
        self.state.store.add_member(organization_id, &id, role.as_str()).await.unwrap();
        id
    }

    /// Issues a personal token for `user_id` directly, with `abilities`; `tweak` edits the row.
    pub async fn token(
        &self,
        user_id: &str,
        abilities: &[&str],
        tweak: impl FnOnce(&mut slipway_store::AccessToken),
    ) -> String {
        let (mut row, plain) = slipway_store::testing::personal_token(user_id, abilities);
        tweak(&mut row);
        self.state.store.insert_token(&row).await.unwrap();
        plain.expose().to_string()
    }

    /// A JSON request, with a token when given.
    pub async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<serde_json::Value>) -> Reply {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => {
                builder.header("content-type", "application/json").body(Body::from(body.to_string())).unwrap()
            }
            None => builder.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    pub async fn get_as(&self, uri: &str, token: &str) -> Reply {
        self.call(Method::GET, uri, Some(token), None).await
    }

    pub async fn post_as(&self, uri: &str, token: &str, body: serde_json::Value) -> Reply {
        self.call(Method::POST, uri, Some(token), Some(body)).await
    }

    pub async fn sqlite() -> Self {
        Self::on(TestDatabase::sqlite().await).await
    }

    /// Builds the app with a custom router builder (for tests that mount extra routes).
    pub async fn with(db: TestDatabase, build: impl FnOnce(AppState) -> Router) -> Self {
        let store = db.store().await;
        let config = ApiConfig::new(PUBLIC_URL);
        let state = AppState::new(store, SecretsKey::generate(), config);
        let router = build(state.clone());
        Self { db, state, router }
    }

    /// Sends a request from 127.0.0.1 unless it already names a client address.
    pub async fn send(&self, mut request: Request<Body>) -> Reply {
        if request.extensions().get::<ConnectInfo<SocketAddr>>().is_none() {
            request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        }
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

/// Waits, when needed, so that the next few seconds fall in one rate-limit window: the limits
/// count per clock minute, and a test counting attempts must not straddle two.
pub async fn within_one_rate_window() {
    let second = slipway_core::time::now().timestamp().rem_euclid(60);
    if second > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
}

/// Sends `request()` until `done` holds for the reply (for 10 s at most), returning that reply.
pub async fn eventually_reply<F, Fut>(request: F, done: impl Fn(&Reply) -> bool) -> Reply
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let reply = request().await;
        if done(&reply) || std::time::Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
