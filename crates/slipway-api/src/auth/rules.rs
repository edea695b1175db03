//! The access rule of every route, read from the OpenAPI document, so the spec and the
//! enforcement cannot disagree. An operation's `security` is a list of alternatives, each a set of
//! scopes that must all be held: `[{"token": ["site:update", "site:deploy"]}]` needs both
//! abilities; `[{"token": ["site:read"]}, {"token": ["site:deploy"]}]` needs either;
//! `[{"token": []}]` needs any valid token; no `security` at all means public.
//!
//! The same rule is checked twice on every request, against two things: the token's abilities
//! (in the guard, before the handler runs) and the caller's role in the organisation that owns
//! the resource (in the resource extractor, once that organisation is known). Handlers never
//! name an ability themselves.

use std::collections::HashMap;
use std::sync::Arc;

use slipway_core::{Ability, AbilitySet, Role};

use crate::error::ApiError;

pub const SCHEME: &str = "token";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub operation_id: String,
    pub authenticated: bool,
    /// Alternatives; each is a set of abilities that must all be held. Empty when any valid
    /// token will do (or the route is public).
    pub requirements: Vec<Vec<Ability>>,
}

impl Rule {
    /// Whether the token's abilities satisfy one of the alternatives. Otherwise the 403 names
    /// the first ability missing from the first alternative, so the message says what to add.
    pub fn check_token(&self, abilities: &AbilitySet) -> Result<(), ApiError> {
        self.check(|a| abilities.allows(a)).map_err(ApiError::missing_ability)
    }

    /// Whether the token's abilities and the role together satisfy one alternative.
    pub fn check_role(&self, abilities: &AbilitySet, role: Role) -> Result<(), ApiError> {
        self.check(|a| abilities.allows(a) && role.allows(a)).map_err(|ability| {
            ApiError::Forbidden(format!("Your role in this organization ({role}) does not allow {ability}."))
        })
    }

    fn check(&self, holds: impl Fn(Ability) -> bool) -> Result<(), Ability> {
        if self.requirements.is_empty() || self.requirements.iter().any(|all| all.iter().all(|&a| holds(a))) {
            return Ok(());
        }
        let first = &self.requirements[0];
        Err(first.iter().copied().find(|&a| !holds(a)).unwrap_or(first[0]))
    }

    /// Every ability named by any alternative.
    pub fn abilities(&self) -> impl Iterator<Item = Ability> + '_ {
        self.requirements.iter().flatten().copied()
    }
}

/// Rules by path template, then by method; looked up on every request without allocating.
#[derive(Debug, Default)]
pub struct RouteRules(HashMap<String, Vec<(String, Arc<Rule>)>>);

impl RouteRules {
    /// Builds the table; panics on an ability the closed set does not know, so a typo in a
    /// route annotation stops the server (and every test) at start-up rather than opening a hole.
    pub fn from_spec(api: &utoipa::openapi::OpenApi) -> Self {
        let doc = serde_json::to_value(api).expect("the OpenAPI document serialises");
        let mut rules = HashMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let alternatives = op.get("security").and_then(|s| s.as_array());
                let mut requirements = Vec::new();
                for alternative in alternatives.into_iter().flatten() {
                    let scopes = alternative.get(SCHEME).and_then(|s| s.as_array());
                    let abilities: Vec<Ability> = scopes
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str())
                        .map(|text| {
                            Ability::parse(text).unwrap_or_else(|| panic!("{method} {path}: unknown ability {text:?}"))
                        })
                        .collect();
                    if !abilities.is_empty() {
                        requirements.push(abilities);
                    }
                }
                let rule = Rule {
                    operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
                    authenticated: alternatives.is_some(),
                    requirements,
                };
                rules.entry(path.clone()).or_insert_with(Vec::new).push((method.to_uppercase(), Arc::new(rule)));
            }
        }
        RouteRules(rules)
    }

    pub fn get(&self, method: &str, path_template: &str) -> Option<&Arc<Rule>> {
        self.0.get(path_template)?.iter().find(|(m, _)| m == method).map(|(_, rule)| rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ability(text: &str) -> Ability {
        Ability::parse(text).unwrap()
    }

    fn rule(alternatives: &[&[&str]]) -> Rule {
        Rule {
            operation_id: "op".into(),
            authenticated: true,
            requirements: alternatives.iter().map(|all| all.iter().map(|a| ability(a)).collect()).collect(),
        }
    }

    fn set(items: &[&str]) -> AbilitySet {
        AbilitySet::parse("abilities", items).unwrap()
    }

    #[test]
    fn every_scope_of_an_alternative_is_needed() {
        let both = rule(&[&["site:update", "site:deploy"]]);
        assert!(both.check_token(&set(&["site:update", "site:deploy"])).is_ok());
        let e = both.check_token(&set(&["site:update"])).unwrap_err();
        assert!(format!("{e:?}").contains("site:deploy"), "{e:?}");
        assert!(both.check_token(&set(&["site:deploy"])).is_err());
    }

    #[test]
    fn any_alternative_will_do() {
        let either = rule(&[&["site:read"], &["site:deploy"]]);
        assert!(either.check_token(&set(&["site:deploy"])).is_ok());
        assert!(either.check_token(&set(&["site:read"])).is_ok());
        let e = either.check_token(&set(&["server:read"])).unwrap_err();
        assert!(format!("{e:?}").contains("site:read"), "names the first alternative: {e:?}");
    }

    #[test]
    fn the_role_and_the_token_must_hold_the_same_alternative() {
        let either = rule(&[&["site:update"], &["site:deploy"]]);
        // A viewer's role allows neither; a member's allows both.
        assert!(either.check_role(&AbilitySet::everything(), Role::Viewer).is_err());
        assert!(either.check_role(&AbilitySet::everything(), Role::Member).is_ok());
        let both = rule(&[&["server:read", "server:update"]]);
        let e = both.check_role(&AbilitySet::everything(), Role::Member).unwrap_err();
        assert!(format!("{e:?}").contains("(member) does not allow server:update"), "{e:?}");
        assert!(rule(&[]).check_role(&set(&["site:read"]), Role::Viewer).is_ok(), "any token");
    }
}
