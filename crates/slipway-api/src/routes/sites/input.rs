//! What a request may say about a site, and its validated form. `CreateSite` and `UpdateSite`
//! are the wire shapes (plain strings, as JSON gives them); `NewSite` and `SiteEdit` are what
//! they become through `TryFrom` once every field has been checked, holding validated types
//! (`Domain`, `ProjectType`, …) so nothing unchecked reaches the store or a script. The numeric
//! limits below are the only copy: the schema attributes are checked against them by a test.

use std::ops::RangeInclusive;

use serde::Deserialize;
use slipway_core::FieldErrors;
use slipway_core::site_input::{self, Domain, ProjectType};
use utoipa::ToSchema;

pub const HEALTH_CHECK_STATUS: RangeInclusive<u16> = 100..=599;
pub const HEALTH_CHECK_TIMEOUT: RangeInclusive<u32> = 1..=600;
pub const KEEP_RELEASES: RangeInclusive<u32> = 1..=50;
pub const MAX_ALIASES: usize = 20;
/// Deploy scripts and app commands.
pub const MAX_SCRIPT_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSite {
    #[schema(example = "shop.example.com")]
    pub domain: String,
    /// Other names nginx answers to (`www.shop.example.com`, `*.shop.example.com`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `static`, `php`, `laravel`, `node` or `generic` (any command that listens on `$PORT`).
    #[schema(example = "static")]
    pub project_type: String,
    /// Served directory inside a release (`public`, `dist`); default the release itself
    /// (`public` for laravel).
    pub web_directory: Option<String>,
    /// Git URL the server fetches: `https://…`, `ssh://…`, `git@host:path`, `git://…` or an
    /// absolute path on the server. Credentials in it are stored encrypted.
    pub repository_url: Option<String>,
    /// A repository from `/git-repositories` (with its deploy key and push webhook) instead of
    /// `repository_url`.
    pub git_repository_id: Option<String>,
    /// Default `main` (or the git repository's branch).
    pub branch: Option<String>,
    /// Runs in each new release as the deploy user before it goes live; a default per type.
    pub deploy_script: Option<String>,
    /// Required for `generic` (default `npm start` for `node`); must listen on `$PORT`.
    pub app_command: Option<String>,
    /// Default `/`.
    pub health_check_path: Option<String>,
    /// Default 200.
    #[schema(minimum = 100, maximum = 599)]
    pub health_check_status: Option<u16>,
    /// Seconds, default 30.
    #[schema(minimum = 1, maximum = 600)]
    pub health_check_timeout: Option<u32>,
    /// Default `true`: each deploy builds a new release, health-checks it and switches to it
    /// atomically. `false` deploys in place into one working tree (no releases, no rollback, and
    /// an app restarts); convert later with `enable-zero-downtime`.
    pub zero_downtime: Option<bool>,
    /// Paths kept across releases (`storage`, `public/uploads`), linked into each release from
    /// `shared/`; the first release that has one seeds it. Default `["storage"]` for laravel.
    pub shared_paths: Option<Vec<String>>,
    /// Releases kept for rollback, 1 to 50; default 5.
    #[schema(minimum = 1, maximum = 50)]
    pub keep_releases: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSite {
    pub aliases: Option<Vec<String>>,
    pub web_directory: Option<String>,
    /// A new URL; `null` keeps the current one. A site that deploys a git repository deploys
    /// this URL instead from then on.
    pub repository_url: Option<String>,
    /// Deploy this git repository of the organization (its URL and deploy key) from then on,
    /// instead of `repository_url`; the branch becomes the repository's unless `branch` is given.
    pub git_repository_id: Option<String>,
    pub branch: Option<String>,
    pub deploy_script: Option<String>,
    pub app_command: Option<String>,
    pub health_check_path: Option<String>,
    #[schema(minimum = 100, maximum = 599)]
    pub health_check_status: Option<u16>,
    #[schema(minimum = 1, maximum = 600)]
    pub health_check_timeout: Option<u32>,
    #[schema(minimum = 1, maximum = 50)]
    pub keep_releases: Option<u32>,
    pub shared_paths: Option<Vec<String>>,
}

/// How a deploy decides a release is healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub status: u16,
    pub timeout: u32,
}

/// A site to create, every field checked, defaults of its type filled in.
#[derive(Debug, Clone)]
pub struct NewSite {
    pub domain: Domain,
    pub aliases: Vec<String>,
    pub project_type: ProjectType,
    pub web_directory: String,
    pub repository_url: Option<String>,
    pub git_repository_id: Option<String>,
    /// `None`: the git repository's branch, else `main`.
    pub branch: Option<String>,
    pub deploy_script: String,
    pub app_command: Option<String>,
    pub health: HealthCheck,
    pub zero_downtime: bool,
    pub shared_paths: Vec<String>,
    pub keep_releases: u32,
}

impl TryFrom<CreateSite> for NewSite {
    type Error = FieldErrors;

    fn try_from(body: CreateSite) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let domain = Domain::parse(&body.domain).map_err(|m| errors.add("domain", format!("The domain {m}."))).ok();
        let aliases = check_aliases(&mut errors, &body.aliases);
        let project_type = ProjectType::parse(&body.project_type)
            .map_err(|m| errors.add("project_type", format!("The project_type {m}.")))
            .ok();
        let kind = project_type.unwrap_or(ProjectType::Static);
        let web_directory = checked(
            &mut errors,
            "web_directory",
            Some(body.web_directory.as_deref().unwrap_or(kind.default_web_directory())),
            site_input::relative_path,
        );
        let repository_url =
            checked(&mut errors, "repository_url", body.repository_url.as_deref(), site_input::git_url);
        if repository_url.is_some() && body.git_repository_id.is_some() {
            errors.add("repository_url", "Give repository_url or git_repository_id, not both.");
        }
        let branch = checked(&mut errors, "branch", body.branch.as_deref(), site_input::git_branch);
        let deploy_script = body.deploy_script.unwrap_or_else(|| kind.default_deploy_script().to_string());
        check_script(&mut errors, "deploy_script", &deploy_script);
        let app_command = match body.app_command.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            Some(command) if kind.is_app() => {
                check_script(&mut errors, "app_command", command);
                Some(command.to_string())
            }
            Some(_) => {
                errors.add("app_command", "Only node and generic sites run an app command.");
                None
            }
            None if kind == ProjectType::Generic => {
                errors.add(
                    "app_command",
                    "The app_command is required for a generic site: the command that listens on $PORT.",
                );
                None
            }
            None => kind.default_app_command().map(str::to_string),
        };
        let health_path = checked(
            &mut errors,
            "health_check_path",
            Some(body.health_check_path.as_deref().unwrap_or("/")),
            site_input::http_path,
        );
        let health = HealthCheck {
            path: health_path.unwrap_or_default(),
            status: body.health_check_status.unwrap_or(200),
            timeout: body.health_check_timeout.unwrap_or(30),
        };
        let keep_releases = body.keep_releases.unwrap_or(5);
        check_numbers(&mut errors, Some(health.status), Some(health.timeout), Some(keep_releases));
        let shared_paths = match &body.shared_paths {
            Some(paths) => check_shared(&mut errors, paths),
            None => kind.default_shared_paths().iter().map(|p| p.to_string()).collect(),
        };
        errors.into_result()?;
        Ok(NewSite {
            domain: domain.expect("checked"),
            aliases,
            project_type: project_type.expect("checked"),
            web_directory: web_directory.expect("checked"),
            repository_url,
            git_repository_id: body.git_repository_id,
            branch,
            deploy_script,
            app_command,
            health,
            zero_downtime: body.zero_downtime.unwrap_or(true),
            shared_paths,
            keep_releases,
        })
    }
}

/// Changes to a site, every given field checked; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct SiteEdit {
    pub aliases: Option<Vec<String>>,
    pub web_directory: Option<String>,
    pub repository_url: Option<String>,
    pub git_repository_id: Option<String>,
    pub branch: Option<String>,
    pub deploy_script: Option<String>,
    pub app_command: Option<String>,
    pub health_check_path: Option<String>,
    pub health_check_status: Option<u16>,
    pub health_check_timeout: Option<u32>,
    pub keep_releases: Option<u32>,
    pub shared_paths: Option<Vec<String>>,
}

impl TryFrom<UpdateSite> for SiteEdit {
    type Error = FieldErrors;

    fn try_from(body: UpdateSite) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let aliases = body.aliases.as_ref().map(|a| check_aliases(&mut errors, a));
        let web_directory =
            checked(&mut errors, "web_directory", body.web_directory.as_deref(), site_input::relative_path);
        let repository_url =
            checked(&mut errors, "repository_url", body.repository_url.as_deref(), site_input::git_url);
        if body.repository_url.is_some() && body.git_repository_id.is_some() {
            errors.add("repository_url", "Give repository_url or git_repository_id, not both.");
        }
        let branch = checked(&mut errors, "branch", body.branch.as_deref(), site_input::git_branch);
        if let Some(script) = &body.deploy_script {
            check_script(&mut errors, "deploy_script", script);
        }
        let app_command = body.app_command.as_deref().map(str::trim).map(str::to_string);
        if let Some(command) = &app_command {
            check_script(&mut errors, "app_command", command);
            if command.is_empty() {
                errors.add("app_command", "The app_command may not be empty.");
            }
        }
        let health_check_path =
            checked(&mut errors, "health_check_path", body.health_check_path.as_deref(), site_input::http_path);
        check_numbers(&mut errors, body.health_check_status, body.health_check_timeout, body.keep_releases);
        let shared_paths = body.shared_paths.as_ref().map(|p| check_shared(&mut errors, p));
        errors.into_result()?;
        Ok(SiteEdit {
            aliases,
            web_directory,
            repository_url,
            git_repository_id: body.git_repository_id,
            branch,
            deploy_script: body.deploy_script,
            app_command,
            health_check_path,
            health_check_status: body.health_check_status,
            health_check_timeout: body.health_check_timeout,
            keep_releases: body.keep_releases,
            shared_paths,
        })
    }
}

fn check_aliases(errors: &mut FieldErrors, aliases: &[String]) -> Vec<String> {
    if aliases.len() > MAX_ALIASES {
        errors.add("aliases", format!("A site may have at most {MAX_ALIASES} aliases."));
    }
    aliases
        .iter()
        .filter_map(|a| match Domain::parse_alias(a) {
            Ok(d) => Some(d.as_str().to_string()),
            Err(m) => {
                errors.add("aliases", format!("The alias {a:?} {m}."));
                None
            }
        })
        .collect()
}

/// Applies a parse rule to an optional value, recording a field error when it fails.
fn checked(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    rule: fn(&str) -> Result<String, String>,
) -> Option<String> {
    let value = value?;
    match rule(value) {
        Ok(v) => Some(v),
        Err(m) => {
            errors.add(field, format!("The {field} {m}."));
            None
        }
    }
}

/// The numeric settings shared by create and update: health check status and timeout, releases kept.
fn check_numbers(errors: &mut FieldErrors, status: Option<u16>, timeout: Option<u32>, keep: Option<u32>) {
    if status.is_some_and(|s| !HEALTH_CHECK_STATUS.contains(&s)) {
        errors.add("health_check_status", "The health_check_status must be an HTTP status (100-599).");
    }
    if timeout.is_some_and(|t| !HEALTH_CHECK_TIMEOUT.contains(&t)) {
        let (low, high) = HEALTH_CHECK_TIMEOUT.into_inner();
        errors
            .add("health_check_timeout", format!("The health_check_timeout must be between {low} and {high} seconds."));
    }
    if keep.is_some_and(|k| !KEEP_RELEASES.contains(&k)) {
        let (low, high) = KEEP_RELEASES.into_inner();
        errors.add("keep_releases", format!("The keep_releases must be between {low} and {high}."));
    }
}

/// Shared paths, validated and without duplicates.
fn check_shared(errors: &mut FieldErrors, paths: &[String]) -> Vec<String> {
    site_input::shared_paths(paths).unwrap_or_else(|m| {
        errors.add("shared_paths", format!("The shared_paths {m}."));
        Vec::new()
    })
}

fn check_script(errors: &mut FieldErrors, field: &str, text: &str) {
    if text.contains('\0') {
        errors.add(field, format!("The {field} may not contain NUL bytes."));
    }
    if text.len() > MAX_SCRIPT_BYTES {
        errors.add(field, format!("The {field} may not be longer than {} KiB.", MAX_SCRIPT_BYTES / 1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(json: serde_json::Value) -> Result<NewSite, FieldErrors> {
        NewSite::try_from(serde_json::from_value::<CreateSite>(json).unwrap())
    }

    #[test]
    fn a_new_site_gets_the_defaults_of_its_type() {
        let laravel = create(serde_json::json!({"domain": "Shop.Example.com", "project_type": "laravel"})).unwrap();
        assert_eq!(laravel.domain.as_str(), "shop.example.com");
        assert_eq!((laravel.web_directory.as_str(), laravel.shared_paths.clone()), ("public", vec!["storage".into()]));
        assert!(laravel.deploy_script.contains("php artisan migrate --force"));
        let node = create(serde_json::json!({"domain": "app.example.com", "project_type": "node"})).unwrap();
        assert_eq!(node.app_command.as_deref(), Some("npm start"));
        assert_eq!(node.health, HealthCheck { path: "/".into(), status: 200, timeout: 30 });
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let errors = create(serde_json::json!({
            "domain": "bad domain", "project_type": "rails", "health_check_timeout": 0, "keep_releases": 51,
            "web_directory": "../etc"
        }))
        .unwrap_err();
        let json = serde_json::to_value(&errors).unwrap();
        for field in ["domain", "project_type", "health_check_timeout", "keep_releases", "web_directory"] {
            assert!(json.get(field).is_some(), "{field} missing from {json}");
        }
        let generic = create(serde_json::json!({"domain": "a.example.com", "project_type": "generic"})).unwrap_err();
        assert!(serde_json::to_value(&generic).unwrap().get("app_command").is_some());
    }

    /// The schema states the same limits the validation applies.
    #[test]
    fn the_schema_says_the_limits_the_validation_applies() {
        let spec = serde_json::to_value(crate::openapi()).unwrap();
        for name in ["CreateSite", "UpdateSite"] {
            let props = &spec["components"]["schemas"][name]["properties"];
            let range = |field: &str| (props[field]["minimum"].as_f64(), props[field]["maximum"].as_f64());
            let (low, high) = HEALTH_CHECK_STATUS.into_inner();
            assert_eq!(range("health_check_status"), (Some(f64::from(low)), Some(f64::from(high))), "{name}");
            let (low, high) = HEALTH_CHECK_TIMEOUT.into_inner();
            assert_eq!(range("health_check_timeout"), (Some(f64::from(low)), Some(f64::from(high))), "{name}");
            let (low, high) = KEEP_RELEASES.into_inner();
            assert_eq!(range("keep_releases"), (Some(f64::from(low)), Some(f64::from(high))), "{name}");
        }
    }
}
