//! The API conventions every endpoint follows: error envelopes, body handling, pagination,
//! request ids, health, metrics, the index and the API reference.

use crate::common::{PUBLIC_URL, TestApp};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use slipway_api::envelope::{Data, Paginated};
use slipway_api::extract::{Json, Page};
use slipway_api::{ApiError, AppState};
use slipway_store::testing::TestDatabase;

#[derive(Debug, Deserialize)]
struct NewThing {
    name: String,
    size: u32,
}

async fn create_thing(Json(body): Json<NewThing>) -> Data<Value> {
    Data { data: json!({ "name": body.name, "size": body.size }) }
}

async fn list_numbers(Page(cursor): Page) -> Paginated<u64> {
    // A list of 42 numbers, paged like any real collection.
    let total = 42u64;
    let start = cursor.request.offset() as u64;
    let items: Vec<u64> = (start..total).take(cursor.request.per_page as usize).map(|n| n + 1).collect();
    cursor.page(items, total)
}

async fn explode(State(_): State<AppState>) -> Result<Data<()>, ApiError> {
    panic!("secret detail that must not reach the client")
}

/// The real app plus three routes that exercise the extractors under the same conventions.
async fn app_with_test_routes() -> TestApp {
    TestApp::with(TestDatabase::sqlite().await, |state| {
        let extra = axum::Router::new()
            .route("/test/things", post(create_thing))
            .route("/test/numbers", get(list_numbers))
            .route("/test/explode", get(explode));
        slipway_api::app_with(state, extra)
    })
    .await
}

fn post_json(uri: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(uri).header("content-type", content_type).body(body.into()).unwrap()
}

#[tokio::test]
async fn unknown_routes_answer_404_in_the_json_envelope() {
    let app = TestApp::sqlite().await;
    let reply = app.get("/api/v1/no-such-thing").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json(), json!({"message": "Not found."}));
    assert!(reply.header("content-type").unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn wrong_methods_answer_405_in_the_json_envelope_with_allow() {
    let app = TestApp::sqlite().await;
    let reply = app.send(Request::delete("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.json()["message"], "The DELETE method is not supported for this route.");
    let allow = reply.header("allow").expect("Allow header");
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn json_bodies_parse_and_bad_ones_get_the_envelope() {
    let app = app_with_test_routes().await;

    let ok = app.send(post_json("/test/things", "application/json", r#"{"name":"a","size":3}"#)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(ok.json(), json!({"data": {"name": "a", "size": 3}}));

    let malformed = app.send(post_json("/test/things", "application/json", r#"{"name": "#)).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.json()["message"].as_str().unwrap().starts_with("The request body is not valid JSON"));

    let wrong_type = app.send(post_json("/test/things", "text/plain", r#"{"name":"a","size":3}"#)).await;
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        wrong_type.json()["message"],
        "The request body must be JSON, sent with Content-Type: application/json."
    );

    let bad_field = app.send(post_json("/test/things", "application/json", r#"{"name":"a","size":"big"}"#)).await;
    assert_eq!(bad_field.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body = bad_field.json();
    assert_eq!(body["message"], "The given data was invalid.");
    assert!(body["errors"]["size"][0].as_str().unwrap().contains("invalid type: string"), "{body}");

    let missing = app.send(post_json("/test/things", "application/json", r#"{"size":1}"#)).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(missing.json()["errors"], json!({"name": ["The name field is required."]}));
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_in_the_envelope() {
    let app = app_with_test_routes().await;
    let big = format!(r#"{{"name":"{}","size":1}}"#, "x".repeat(1024 * 1024 + 1));
    let reply = app.send(post_json("/test/things", "application/json", big)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.json()["message"], "The request body is larger than the limit of 1048576 bytes.");
}

#[tokio::test]
async fn pagination_meta_links_and_422_for_out_of_range() {
    let app = app_with_test_routes().await;
    let page = app.get("/test/numbers?page=2&status=active").await;
    assert_eq!(page.status, StatusCode::OK);
    let body = page.json();
    assert_eq!(
        body["meta"],
        json!({"current_page": 2, "from": 16, "last_page": 3, "per_page": 15, "to": 30, "total": 42})
    );
    assert_eq!(body["data"].as_array().unwrap().len(), 15);
    assert_eq!(body["data"][0], 16);
    assert_eq!(
        body["links"],
        json!({
            "first": format!("{PUBLIC_URL}/test/numbers?status=active&page=1"),
            "last": format!("{PUBLIC_URL}/test/numbers?status=active&page=3"),
            "next": format!("{PUBLIC_URL}/test/numbers?status=active&page=3"),
            "prev": format!("{PUBLIC_URL}/test/numbers?status=active&page=1"),
        })
    );

    let custom = app.get("/test/numbers?per_page=100").await.json();
    assert_eq!(custom["meta"]["last_page"], 1);
    assert_eq!(custom["links"]["first"], format!("{PUBLIC_URL}/test/numbers?per_page=100&page=1"));
    assert_eq!(custom["links"]["next"], Value::Null);

    for (query, field, message) in [
        ("per_page=101", "per_page", "The per_page may not be greater than 100."),
        ("per_page=0", "per_page", "The per_page must be at least 1."),
        ("page=0", "page", "The page must be at least 1."),
        ("page=two", "page", "The page must be an integer."),
    ] {
        let reply = app.get(&format!("/test/numbers?{query}")).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert_eq!(
            reply.json(),
            json!({"message": "The given data was invalid.", "errors": {field: [message]}}),
            "{query}"
        );
    }
}

#[tokio::test]
async fn panics_become_opaque_500s() {
    let app = app_with_test_routes().await;
    let reply = app.get("/test/explode").await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(reply.json(), json!({"message": "Server error."}));
    assert!(reply.header("x-request-id").is_some());
}

#[tokio::test]
async fn request_ids_are_echoed_when_sane_and_generated_otherwise() {
    let app = TestApp::sqlite().await;
    let echoed = app
        .send(Request::get("/healthz").header("x-request-id", "ci-run-42.step_3").body(Body::empty()).unwrap())
        .await;
    assert_eq!(echoed.header("x-request-id"), Some("ci-run-42.step_3"));
    let replaced =
        app.send(Request::get("/healthz").header("x-request-id", "bad id; rm -rf").body(Body::empty()).unwrap()).await;
    let generated = replaced.header("x-request-id").unwrap();
    assert!(slipway_core::id::looks_like_id(generated), "{generated}");
    let missing = app.get("/api/v1/nope").await;
    assert!(slipway_core::id::looks_like_id(missing.header("x-request-id").unwrap()));
}

#[tokio::test]
async fn health_readiness_and_metrics_on_both_backends() {
    for db in TestDatabase::each().await {
        let app = TestApp::on(db).await;
        let health = app.get("/healthz").await;
        assert_eq!((health.status, health.json()), (StatusCode::OK, json!({"status": "ok"})));
        let ready = app.get("/readyz").await;
        assert_eq!((ready.status, ready.json()), (StatusCode::OK, json!({"status": "ready"})));
        app.get("/api/v1/unknown").await;

        let metrics = app.get("/metrics").await;
        assert_eq!(metrics.status, StatusCode::OK);
        assert!(metrics.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
        let text = metrics.text();
        let backend = app.state.store.backend().as_str();
        assert!(text.contains(&format!("backend=\"{backend}\"}} 1")), "{text}");
        assert!(
            text.contains("slipway_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("slipway_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("route=\"unmatched\",status=\"404\"} 1"), "{text}");
        assert!(text.contains("slipway_http_request_duration_seconds_count{route=\"/healthz\"} 1"), "{text}");

        // A database that goes away makes the instance unready, in the same envelope.
        app.state.store.close().await;
        let unready = app.get("/readyz").await;
        assert_eq!(unready.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unready.json(), json!({"message": "The database is not reachable."}));
        assert_eq!(app.get("/healthz").await.status, StatusCode::OK, "liveness does not depend on the database");
    }
}

#[tokio::test]
async fn the_index_lists_where_things_are() {
    let app = TestApp::sqlite().await;
    let reply = app.get("/api/v1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let data = &reply.json()["data"];
    assert_eq!(data["version"], "v1");
    assert_eq!(data["openapi"], format!("{PUBLIC_URL}/api/v1/openapi.json"));
    assert_eq!(data["documentation"], format!("{PUBLIC_URL}/docs/"));
    let collections = data["collections"].as_object().unwrap();
    for (name, url) in collections {
        assert_eq!(url, &json!(format!("{PUBLIC_URL}/api/v1/{name}")));
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_as_3_1() {
    let app = TestApp::sqlite().await;
    let reply = app.get("/api/v1/openapi.json").await;
    assert_eq!(reply.status, StatusCode::OK);
    let spec = reply.json();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/healthz"]["get"].is_object());
    assert_eq!(spec["paths"]["/readyz"]["get"]["responses"]["500"]["$ref"], "#/components/responses/ServerError");
    assert_eq!(spec, serde_json::to_value(slipway_api::openapi()).unwrap(), "served and generated documents agree");
}

#[tokio::test]
async fn the_api_reference_is_served_with_no_external_assets() {
    let app = TestApp::sqlite().await;
    let redirect = app.get("/docs").await;
    assert!(redirect.status.is_redirection(), "{}", redirect.status);
    let page = app.get("/docs/").await;
    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(!url.contains("://") && !url.starts_with("//"), "external asset in /docs/: {url}");
            assets.push(url.trim_start_matches("./").to_string());
        }
    }
    assert!(!assets.is_empty());
    for asset in assets {
        let reply = app.get(&format!("/docs/{asset}")).await;
        assert_eq!(reply.status, StatusCode::OK, "asset {asset}");
    }
    let init = app.get("/docs/swagger-initializer.js").await.text();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\"") || init.contains("\"validatorUrl\":\"none\""), "{init}");
}

/// The response to one request on a raw connection: its head (lower-cased) and whether the
/// server then closed the connection.
async fn exchange_on(stream: &mut tokio::net::TcpStream, head: &str, body_later: &[u8]) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(head.as_bytes()).await?;
    // The body arrives in a later packet, after the server may already have answered.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    stream.write_all(body_later).await?;
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&response).to_lowercase();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if rest.len() >= length {
                return Ok(head.to_string());
            }
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed before a whole response"))
}

#[tokio::test]
async fn an_early_refusal_never_drops_the_connection_without_saying_so() {
    use tokio::io::AsyncReadExt;
    let app = TestApp::configured(TestDatabase::sqlite().await, |c| {
        c.max_body_bytes = 100_000;
        c.rate_limits.api_per_minute = 10_000;
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let service = app.router.clone().into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    let body = br#"{"name": "ci", "abilities": ["server:read"]}"#;
    // Within the body limit an unread body is read and dropped, so the connection carries on;
    // over it the answer says `Connection: close`.
    let (big, too_big) = (vec![b' '; 90_000], vec![b' '; 150_000]);
    let cases = [("", &body[..]), ("Authorization: Bearer slp_nonsense\r\n", &body[..]), ("", &big), ("", &too_big)];
    for (token, body) in cases {
        for trial in 0..20 {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let head = format!(
                "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let first = exchange_on(&mut stream, &head, body).await.unwrap_or_else(|e| {
                panic!("trial {trial}: no whole response ({e}): the client sees a dropped connection")
            });
            assert!(first.starts_with("http/1.1 401"), "{first}");
            if first.lines().any(|l| l == "connection: close") {
                // Closed after the response: nothing more may come.
                let mut rest = Vec::new();
                let _ = stream.read_to_end(&mut rest).await;
                continue;
            }
            // Otherwise the connection must still be usable.
            let again = exchange_on(&mut stream, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"")
                .await
                .unwrap_or_else(|e| panic!("trial {trial}: kept alive but unusable ({e})"));
            assert!(again.starts_with("http/1.1 200"), "{again}");
        }
    }
}

#[test]
fn schemas_state_the_rules_the_handlers_check() {
    let spec = serde_json::to_value(slipway_api::openapi()).unwrap();
    let schemas = &spec["components"]["schemas"];
    let property = |schema: &str, field: &str| schemas[schema]["properties"][field].clone();
    let values = |schema: &str| schemas[schema]["enum"].clone();
    assert_eq!(property("CreateGitProvider", "kind")["$ref"], "#/components/schemas/GitKind");
    assert_eq!(values("GitKind"), json!(["github", "gitlab", "bitbucket", "generic"]));
    assert_eq!(values("ServerProvider"), json!(["custom"]));
    assert_eq!(values("PhpVersion"), json!(["8.1", "8.2", "8.3", "8.4"]));
    assert_eq!(values("DatabaseType"), json!(["mysql", "mariadb", "postgres", "none"]));
    assert_eq!(values("RestartableService"), json!(slipway_engine_services()));
    assert_eq!(property("RestartServer", "services")["items"]["$ref"], "#/components/schemas/RestartableService");
    assert_eq!(schemas["RestartServer"]["minProperties"], 1, "{{}} is refused");
    for schema in ["RegisterRequest", "SetupRequest", "AddMember", "LoginRequest"] {
        assert_eq!(property(schema, "email")["format"], "email", "{schema}");
    }
    for schema in ["RegisterRequest", "SetupRequest"] {
        assert_eq!(property(schema, "password")["minLength"], slipway_core::password::MIN_PASSWORD_CHARS, "{schema}");
    }
    for (schema, field) in [
        ("CreateToken", "name"),
        ("CreateServer", "name"),
        ("CreateGitProvider", "name"),
        ("CreateSshKey", "name"),
        ("CreateNetworkRule", "name"),
        ("RegisterRequest", "name"),
    ] {
        assert_eq!(property(schema, field)["minLength"], 1, "{schema}.{field}");
        assert_eq!(property(schema, field)["maxLength"], 255, "{schema}.{field}");
    }
    assert_eq!(property("CreateToken", "expires_at")["format"], "date-time");
    assert_eq!(property("UpdateOrganization", "max_token_lifetime_seconds")["maximum"], 10 * 365 * 24 * 3600);
}

fn slipway_engine_services() -> Vec<&'static str> {
    vec!["nginx", "php-fpm", "supervisor", "cron", "database"]
}
