//! `GET /api/v1`: where everything is. The collection list is derived from the OpenAPI
//! document, so it grows by itself as resources are added.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

use crate::envelope::Data;

pub const API_PREFIX: &str = "/api/v1";

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiIndex {
    #[schema(example = "v1")]
    pub version: String,
    /// The OpenAPI 3.1 document.
    pub openapi: String,
    /// The interactive API reference.
    pub documentation: String,
    /// Every top-level collection, by name, with its absolute URL.
    pub collections: BTreeMap<String, String>,
}

/// Top-level collections: `GET /api/v1/<name>` paths without parameters, in path form.
pub fn collections(api: &OpenApi) -> Vec<String> {
    api.paths
        .paths
        .iter()
        .filter(|(_, item)| item.get.is_some())
        .filter_map(|(path, _)| path.strip_prefix(API_PREFIX)?.strip_prefix('/').map(str::to_string))
        .filter(|rest| !rest.is_empty() && !rest.contains('/') && !rest.contains('{') && rest != "openapi.json")
        .collect()
}

/// The index's JSON, made once: nothing in it changes while the process runs (the base URL
/// comes from configuration), and building its thirty-odd URLs cost more than the rest of the
/// request.
#[derive(Debug, Clone)]
pub struct IndexBody(Bytes);

impl IndexBody {
    pub fn new(api: &OpenApi, public_url: &str) -> Self {
        let base = public_url;
        let index = Data {
            data: ApiIndex {
                version: "v1".into(),
                openapi: format!("{base}{API_PREFIX}/openapi.json"),
                documentation: format!("{base}/docs/"),
                collections: collections(api)
                    .into_iter()
                    .map(|name| {
                        let url = format!("{base}{API_PREFIX}/{name}");
                        (name, url)
                    })
                    .collect(),
            },
        };
        IndexBody(serde_json::to_vec(&index).expect("the index serialises").into())
    }
}

/// The API's entry point: its version, where its description lives, and its collections.
#[utoipa::path(get, path = "/api/v1", tag = "meta", responses((status = 200, body = Data<ApiIndex>)))]
pub async fn index(Extension(body): Extension<Arc<IndexBody>>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body.0.clone()).into_response()
}
