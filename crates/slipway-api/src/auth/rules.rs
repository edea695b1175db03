//! The access rule of every route, read from the OpenAPI document: an operation with a
//! `security: [{"token": ["server:read"]}]` entry needs a token holding `server:read`; one with
//! `security: [{"token": []}]` needs any valid token; one without `security` is public.

use std::collections::HashMap;

use slipway_core::Ability;

pub const SCHEME: &str = "token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operation_id: String,
    pub authenticated: bool,
    pub ability: Option<Ability>,
}

/// Rules by path template, then by method; looked up on every request without allocating.
#[derive(Debug, Default)]
pub struct RouteRules(HashMap<String, Vec<(String, Rule)>>);

impl RouteRules {
    /// Builds the table; panics on an ability the closed set does not know, so a typo in a
    /// route annotation stops the server (and every test) at start-up rather than opening a hole.
    pub fn from_spec(api: &utoipa::openapi::OpenApi) -> Self {
        let doc = serde_json::to_value(api).expect("the OpenAPI document serialises");
        let mut rules = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let requirements = op.get("security").and_then(|s| s.as_array());
                let scopes: Option<Vec<String>> = requirements.and_then(|reqs| reqs.first()).map(|req| {
                    req.get(SCHEME)
                        .and_then(|s| s.as_array())
                        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                        .unwrap_or_default()
                });
                let ability = scopes.as_ref().and_then(|s| s.first()).map(|text| {
                    Ability::parse(text).unwrap_or_else(|| panic!("{method} {path}: unknown ability {text:?}"))
                });
                let rule = Rule {
                    operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
                    authenticated: scopes.is_some(),
                    ability,
                };
                rules.entry(path.clone()).or_insert_with(Vec::new).push((method.to_uppercase(), rule));
            }
        }
        RouteRules(rules)
    }

    pub fn get(&self, method: &str, path_template: &str) -> Option<&Rule> {
        self.0.get(path_template)?.iter().find(|(m, _)| m == method).map(|(_, rule)| rule)
    }
}
