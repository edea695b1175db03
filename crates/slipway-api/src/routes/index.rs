//! `GET /api/v1`: where everything is. The collection list is derived from the OpenAPI
//! document, so it grows by itself as resources are added.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::OpenApi;

use crate::envelope::Data;
use crate::state::AppState;

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
#[derive(Debug, Clone, Default)]
pub struct Collections(pub Vec<String>);

impl Collections {
    pub fn from_spec(api: &OpenApi) -> Self {
        let names = api
            .paths
            .paths
            .iter()
            .filter(|(_, item)| item.get.is_some())
            .filter_map(|(path, _)| path.strip_prefix(API_PREFIX)?.strip_prefix('/').map(str::to_string))
            .filter(|rest| !rest.is_empty() && !rest.contains('/') && !rest.contains('{') && rest != "openapi.json")
            .collect();
        Collections(names)
    }
}

/// The API's entry point: its version, where its description lives, and its collections.
#[utoipa::path(get, path = "/api/v1", tag = "meta", responses((status = 200, body = Data<ApiIndex>)))]
pub async fn index(
    State(state): State<AppState>,
    Extension(collections): Extension<Arc<Collections>>,
) -> Data<ApiIndex> {
    let base = &state.config.public_url;
    Data {
        data: ApiIndex {
            version: "v1".into(),
            openapi: format!("{base}{API_PREFIX}/openapi.json"),
            documentation: format!("{base}/docs/"),
            collections: collections
                .0
                .iter()
                .map(|name| (name.clone(), format!("{base}{API_PREFIX}/{name}")))
                .collect(),
        },
    }
}
