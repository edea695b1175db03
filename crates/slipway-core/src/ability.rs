//! Abilities (`resource:action`), the patterns tokens carry (`*`, `*:read`, `server:*`), and the
//! roles members hold in an organisation. A closed set: anything else is rejected at the edge.
//!
//! Effective permission for a request = the token's patterns ∩ the member's role in the
//! organisation that owns the resource ∩ the token's resource restrictions.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! resources {
    ($($variant:ident => $text:literal : [$($action:ident),+]),+ $(,)?) => {
        /// What an ability is about.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Resource { $($variant),+ }

        impl Resource {
            pub const ALL: &'static [Resource] = &[$(Resource::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Resource::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Resource> {
                match text { $($text => Some(Resource::$variant),)+ _ => None }
            }

            /// The actions that exist for this resource.
            pub fn actions(self) -> &'static [Action] {
                match self { $(Resource::$variant => &[$(Action::$action),+]),+ }
            }
        }
    };
}

resources! {
    Server => "server": [Read, Create, Update, Delete],
    Site => "site": [Read, Create, Update, Delete, Deploy],
    Database => "database": [Read, Create, Update, Delete],
    Crontab => "crontab": [Read, Create, Update, Delete],
    Daemon => "daemon": [Read, Create, Update, Delete],
    QueueWorker => "queue-worker": [Read, Create, Update, Delete],
    Redirect => "redirect": [Read, Create, Update, Delete],
    NetworkRule => "network-rule": [Read, Create, Update, Delete],
    SshKey => "ssh-key": [Read, Create, Update, Delete],
    Certificate => "certificate": [Read, Create, Update, Delete],
    Provider => "provider": [Read, Create, Update, Delete],
    Backup => "backup": [Read, Create, Update, Delete],
    Notification => "notification": [Read, Create, Update, Delete],
    Event => "event": [Read],
    Token => "token": [Read, Create, Update, Delete],
    Organization => "organization": [Read, Update],
    Audit => "audit": [Read],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    Read,
    Create,
    Update,
    Delete,
    Deploy,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Deploy => "deploy",
        }
    }

    pub fn parse(text: &str) -> Option<Action> {
        match text {
            "read" => Some(Action::Read),
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            "deploy" => Some(Action::Deploy),
            _ => None,
        }
    }
}

/// One concrete ability, e.g. `site:deploy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ability {
    pub resource: Resource,
    pub action: Action,
}

impl Ability {
    pub const fn new(resource: Resource, action: Action) -> Self {
        Self { resource, action }
    }

    /// Parses a concrete ability; wildcards are not abilities (see [`AbilityPattern`]).
    pub fn parse(text: &str) -> Option<Ability> {
        let (r, a) = text.split_once(':')?;
        let resource = Resource::parse(r)?;
        let action = Action::parse(a)?;
        resource.actions().contains(&action).then_some(Ability { resource, action })
    }

    /// Every ability that exists.
    pub fn all() -> impl Iterator<Item = Ability> {
        Resource::ALL.iter().flat_map(|&r| r.actions().iter().map(move |&a| Ability::new(r, a)))
    }
}

impl fmt::Display for Ability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource.as_str(), self.action.as_str())
    }
}

/// What a token carries: a concrete ability or a wildcard over resources and/or actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbilityPattern {
    resource: Option<Resource>,
    action: Option<Action>,
}

impl AbilityPattern {
    pub const ALL: AbilityPattern = AbilityPattern { resource: None, action: None };

    /// `*`, `*:ACTION`, `RESOURCE:*` or `RESOURCE:ACTION`, from the closed set.
    pub fn parse(text: &str) -> Option<AbilityPattern> {
        if text == "*" {
            return Some(Self::ALL);
        }
        let (r, a) = text.split_once(':')?;
        let resource = if r == "*" { None } else { Some(Resource::parse(r)?) };
        let action = if a == "*" { None } else { Some(Action::parse(a)?) };
        let pattern = AbilityPattern { resource, action };
        // A pattern that matches nothing (`audit:delete`, `*:*` aside) is a mistake, not a no-op.
        (pattern.expand().next().is_some()).then_some(pattern)
    }

    pub fn matches(&self, ability: Ability) -> bool {
        self.resource.is_none_or(|r| r == ability.resource) && self.action.is_none_or(|a| a == ability.action)
    }

    pub fn expand(&self) -> impl Iterator<Item = Ability> + '_ {
        Ability::all().filter(move |a| self.matches(*a))
    }
}

impl fmt::Display for AbilityPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.resource, self.action) {
            (None, None) => f.write_str("*"),
            (r, a) => write!(f, "{}:{}", r.map_or("*", Resource::as_str), a.map_or("*", Action::as_str)),
        }
    }
}

/// The patterns a token holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AbilitySet(Vec<AbilityPattern>);

impl AbilitySet {
    pub fn everything() -> Self {
        AbilitySet(vec![AbilityPattern::ALL])
    }

    /// Parses a list of patterns; every unknown one is reported, by index, as a field error.
    pub fn parse<S: AsRef<str>>(field: &str, items: &[S]) -> Result<Self, crate::FieldErrors> {
        let mut errors = crate::FieldErrors::new();
        let mut patterns = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match AbilityPattern::parse(item.as_ref()) {
                Some(p) => patterns.push(p),
                None => errors.add(
                    format!("{field}.{i}"),
                    format!("The ability {:?} is not one of the known abilities (see docs/api.md).", item.as_ref()),
                ),
            }
        }
        errors.into_result()?;
        patterns.sort();
        patterns.dedup();
        Ok(AbilitySet(patterns))
    }

    pub fn allows(&self, ability: Ability) -> bool {
        self.0.iter().any(|p| p.matches(ability))
    }

    /// Whether every ability `other` grants is granted here too (a token may only hand out
    /// what it holds).
    pub fn covers(&self, other: &AbilitySet) -> bool {
        other.0.iter().flat_map(|p| p.expand()).all(|a| self.allows(a))
    }

    /// The patterns of `other` that this set does not fully cover, for error messages.
    pub fn uncovered<'a>(&self, other: &'a AbilitySet) -> Vec<&'a AbilityPattern> {
        other.0.iter().filter(|p| !p.expand().all(|a| self.allows(a))).collect()
    }

    pub fn patterns(&self) -> &[AbilityPattern] {
        &self.0
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }
}

impl Serialize for AbilitySet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_strings().serialize(s)
    }
}

impl<'de> Deserialize<'de> for AbilitySet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        AbilitySet::parse("abilities", &items).map_err(|_| serde::de::Error::custom("unknown ability"))
    }
}

/// A member's role in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Whether this role may exercise `ability` in its organisation. The table in
    /// docs/api.md is generated from this function's behaviour by a test.
    pub fn allows(self, ability: Ability) -> bool {
        use Resource::*;
        match self {
            Role::Owner | Role::Admin => true,
            Role::Member => match ability.action {
                Action::Read => true,
                _ => matches!(
                    ability.resource,
                    Site | Database | Crontab | Daemon | QueueWorker | Redirect | Certificate | Backup | Token
                ),
            },
            Role::Viewer => ability.action == Action::Read || ability.resource == Token,
        }
    }

    /// Owners and admins manage members, organisation tokens and settings.
    pub fn manages_organization(self) -> bool {
        matches!(self, Role::Owner | Role::Admin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> AbilitySet {
        AbilitySet::parse("abilities", items).unwrap()
    }

    #[test]
    fn parses_the_closed_set_and_rejects_the_rest() {
        assert_eq!(Ability::parse("site:deploy").unwrap().to_string(), "site:deploy");
        assert_eq!(Ability::parse("queue-worker:create").unwrap().to_string(), "queue-worker:create");
        for bad in ["server:deploy", "site", "site:", ":read", "servers:read", "audit:delete", "SITE:READ", "*"] {
            assert!(Ability::parse(bad).is_none(), "{bad}");
        }
        for ok in ["*", "*:read", "server:*", "site:deploy", "*:deploy"] {
            assert_eq!(AbilityPattern::parse(ok).unwrap().to_string(), ok);
        }
        for bad in ["*:*:*", "**", "server:launch", "audit:delete", "", "*:"] {
            assert!(AbilityPattern::parse(bad).is_none(), "{bad}");
        }
        let e = AbilitySet::parse("abilities", &["server:read", "server:launch", "nope"]).unwrap_err();
        assert!(e.get("abilities.1").is_some() && e.get("abilities.2").is_some() && e.get("abilities.0").is_none());
    }

    #[test]
    fn wildcards_match_what_they_say() {
        let read_only = set(&["*:read"]);
        assert!(read_only.allows(Ability::parse("server:read").unwrap()));
        assert!(!read_only.allows(Ability::parse("server:delete").unwrap()));
        let servers = set(&["server:*"]);
        assert!(servers.allows(Ability::parse("server:delete").unwrap()));
        assert!(!servers.allows(Ability::parse("site:read").unwrap()));
        assert!(AbilitySet::everything().allows(Ability::parse("audit:read").unwrap()));
        assert_eq!(set(&["site:read", "site:read", "*:read"]).patterns().len(), 2, "deduplicated");
    }

    #[test]
    fn a_set_covers_only_what_it_fully_grants() {
        assert!(set(&["*"]).covers(&set(&["server:*", "site:deploy"])));
        assert!(set(&["server:*"]).covers(&set(&["server:read", "server:delete"])));
        assert!(!set(&["server:read"]).covers(&set(&["server:*"])));
        assert!(!set(&["*:read"]).covers(&set(&["*"])));
        assert!(set(&["*:read", "site:*"]).covers(&set(&["site:deploy", "server:read"])));
        let wide = set(&["*"]);
        assert_eq!(set(&["site:*"]).uncovered(&wide).len(), 1);
    }

    #[test]
    fn roles_form_a_hierarchy() {
        for ability in Ability::all() {
            let allowed: Vec<bool> = Role::ALL.iter().map(|r| r.allows(ability)).collect();
            // owner ⊇ admin ⊇ member ⊇ viewer
            for pair in allowed.windows(2) {
                assert!(pair[0] || !pair[1], "{ability}: a lower role may not exceed a higher one");
            }
        }
        let deploy = Ability::parse("site:deploy").unwrap();
        assert!(Role::Member.allows(deploy) && !Role::Viewer.allows(deploy));
        assert!(!Role::Member.allows(Ability::parse("server:delete").unwrap()));
        assert!(Role::Viewer.allows(Ability::parse("server:read").unwrap()));
    }
}
