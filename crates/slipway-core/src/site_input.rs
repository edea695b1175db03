//! Validated values of a site that reach scripts, nginx files and paths on servers: the domain
//! (which names the site's directory), a path inside a release, an environment key, a git
//! repository URL and branch. Each parse refuses anything a shell, nginx or a path could read as
//! more than a value.

crate::status::word_enum! {
    /// What a site is, and everything that follows from it: whether nginx serves its files (with
    /// PHP) or proxies to an app, and the defaults a new site of the type starts with. Stored as
    /// its word on both backends.
    ProjectType, "project type" {
        Static = "static",
        Php = "php",
        Laravel = "laravel",
        Node = "node",
        Generic = "generic",
    }
}

impl ProjectType {
    /// Reads a type a user gave, with the message a field error shows.
    pub fn parse(text: &str) -> Result<ProjectType, String> {
        text.parse().map_err(|e: crate::status::UnknownWord| format!("must be one of {}", e.expected))
    }

    /// An app behind nginx's proxy (started by supervisor), rather than files nginx serves.
    pub fn is_app(self) -> bool {
        matches!(self, ProjectType::Node | ProjectType::Generic)
    }

    /// Served through PHP-FPM (the server needs a PHP version).
    pub fn uses_php(self) -> bool {
        matches!(self, ProjectType::Php | ProjectType::Laravel)
    }

    /// The deploy script a new site starts with.
    pub fn default_deploy_script(self) -> &'static str {
        match self {
            ProjectType::Php => {
                "# Runs in the new release, as the deploy user, before it goes live.\n\
                 if [ -f composer.json ]; then composer install --no-dev --no-interaction --prefer-dist; fi\n"
            }
            ProjectType::Laravel => {
                "# Runs in the new release, as the deploy user, before it goes live.\n\
                 composer install --no-dev --no-interaction --prefer-dist --optimize-autoloader\n\
                 php artisan migrate --force\nphp artisan config:cache\nphp artisan route:cache\n"
            }
            ProjectType::Node => {
                "# Runs in the new release, as the deploy user, before it goes live.\n\
                 npm ci\nnpm run build --if-present\n"
            }
            ProjectType::Static | ProjectType::Generic => {
                "# Runs in the new release, as the deploy user, before it goes live.\ntrue\n"
            }
        }
    }

    /// The served directory inside a release (`""` is the release itself).
    pub fn default_web_directory(self) -> &'static str {
        if self == ProjectType::Laravel { "public" } else { "" }
    }

    /// The command a new app site starts with, when the type has one.
    pub fn default_app_command(self) -> Option<&'static str> {
        (self == ProjectType::Node).then_some("npm start")
    }

    /// Paths kept across releases by default.
    pub fn default_shared_paths(self) -> &'static [&'static str] {
        if self == ProjectType::Laravel { &["storage"] } else { &[] }
    }
}

/// A lowercase DNS name (optionally with one leading `*.` label for an alias), at most 253 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(String);

impl Domain {
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_inner(text, false)
    }

    /// Also accepts a wildcard (`*.example.com`), which nginx can match but which cannot name a
    /// directory.
    pub fn parse_alias(text: &str) -> Result<Self, String> {
        Self::parse_inner(text, true)
    }

    fn parse_inner(text: &str, wildcard: bool) -> Result<Self, String> {
        let lower = text.trim().trim_end_matches('.').to_ascii_lowercase();
        let rest = match lower.strip_prefix("*.") {
            Some(rest) if wildcard => rest,
            Some(_) => return Err("may not be a wildcard".into()),
            None => lower.as_str(),
        };
        let labels: Vec<&str> = rest.split('.').collect();
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if lower.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| valid_label(l)) {
            return Err("must be a domain name such as example.com".into());
        }
        Ok(Domain(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A relative path inside a release (`public`, `dist/site`), or empty for the release itself.
/// No `..`, no leading `/`, only `[A-Za-z0-9._-]` in each part.
pub fn relative_path(text: &str) -> Result<String, String> {
    let trimmed = text.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for part in trimmed.split('/') {
        if part.is_empty()
            || part == "."
            || part == ".."
            || !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("must be a relative path of letters, digits, '.', '_' and '-' (no '..')".into());
        }
    }
    if trimmed.len() > 255 {
        return Err("may not be longer than 255 characters".into());
    }
    Ok(trimmed.to_string())
}

/// A path kept across releases (`storage`, `public/uploads`): a non-empty relative path that is
/// not one Slipway manages per release (`.env`) or a repository's own (`.git`).
pub fn shared_path(text: &str) -> Result<String, String> {
    let path = relative_path(text)?;
    let first = path.split('/').next().unwrap_or("");
    if path.is_empty() {
        return Err("may not be empty".into());
    }
    if first == ".env" || first == ".git" {
        return Err("is managed per release and cannot be shared".into());
    }
    Ok(path)
}

/// Whether one path lies inside the other (or they are the same), by whole components.
fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
    inside(a, b) || inside(b, a)
}

/// A site's shared paths: each valid, without repeats, and none inside another (linking the
/// outer one first would make the inner one's link point into shared/ itself, destroying it).
pub fn shared_paths(paths: &[String]) -> Result<Vec<String>, String> {
    if paths.len() > 20 {
        return Err("may hold at most 20 paths".into());
    }
    let mut valid: Vec<String> = Vec::new();
    for path in paths {
        let path = shared_path(path).map_err(|m| format!("entry {path:?} {m}"))?;
        if valid.contains(&path) {
            continue;
        }
        if let Some(other) = valid.iter().find(|v| nested(v, &path)) {
            return Err(format!("entries {other:?} and {path:?} overlap: share the outer one only"));
        }
        valid.push(path);
    }
    Ok(valid)
}

/// An HTTP path for a health check: starts with `/`, printable ASCII without spaces, quotes or
/// backslashes, at most 255 bytes.
pub fn http_path(text: &str) -> Result<String, String> {
    let ok = text.starts_with('/')
        && text.len() <= 255
        && text.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\' | b'`' | b'$' | b';'));
    if ok { Ok(text.to_string()) } else { Err("must be a path such as /health".into()) }
}

/// An environment variable name: `[A-Za-z_][A-Za-z0-9_]*`, at most 255 bytes.
pub fn env_key(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 255
        && !text.as_bytes()[0].is_ascii_digit()
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok { Ok(text.to_string()) } else { Err("must match [A-Za-z_][A-Za-z0-9_]*".into()) }
}

/// A git branch name, per the rules of `git check-ref-format` that matter here, and no leading
/// `-` (it would read as an option).
pub fn git_branch(text: &str) -> Result<String, String> {
    let bad = text.is_empty()
        || text.len() > 255
        || text.starts_with(['-', '/', '.'])
        || text.ends_with(['/', '.'])
        || text.ends_with(".lock")
        || text.contains("..")
        || text.contains("//")
        || text.contains("@{")
        || text.bytes().any(|b| b.is_ascii_control() || b" ~^:?*[\\\"'`$;&|<>(){}".contains(&b) || b >= 0x80);
    if bad { Err("must be a branch name such as main".into()) } else { Ok(text.to_string()) }
}

/// A repository URL git can fetch: `https://…`, `ssh://…`, `git@host:path` (scp form), or an
/// absolute path on the server (`/srv/git/app.git`). Never an option (`-…`) or a `ext::` transport.
pub fn git_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let printable = !text.is_empty()
        && text.len() <= 1024
        && text.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'\'' | b'"' | b'`' | b'\\' | b';' | b'$'));
    let scheme_ok = text.starts_with("https://")
        || text.starts_with("http://")
        || text.starts_with("ssh://")
        || text.starts_with("git://")
        || text.starts_with('/')
        || (!text.contains("://") && scp_like(text));
    if printable && scheme_ok && !text.contains("::") {
        Ok(text.to_string())
    } else {
        Err("must be an https://, ssh:// or git@host:path URL, or an absolute path on the server".into())
    }
}

fn scp_like(text: &str) -> bool {
    match text.split_once(':') {
        Some((user_host, path)) => {
            !user_host.is_empty()
                && !user_host.starts_with('-')
                && user_host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'.' | b'-' | b'_'))
                && !path.is_empty()
        }
        None => false,
    }
}

/// The URL with any password or token in its user part replaced, for logs and responses.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && !userinfo.contains('/')
    {
        let user = userinfo.split(':').next().unwrap_or("");
        return if userinfo.contains(':') || !user.is_empty() && scheme.starts_with("http") {
            format!("{scheme}://***@{host}")
        } else {
            url.to_string()
        };
    }
    url.to_string()
}

/// Credentials taken out of an `http(s)://user:password@host/…` URL, so that git gets them from
/// a credential helper instead of its command line (where every user on a server can read them).
#[derive(Debug, PartialEq, Eq)]
pub struct UrlCredentials {
    pub url: String,
    pub username: String,
    pub password: String,
}

/// Splits the userinfo (percent-decoded) off an HTTP(S) URL; `None` for any other URL or one
/// without credentials (an `ssh://user@host` user name is not a secret).
pub fn url_credentials(url: &str) -> Option<UrlCredentials> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let decode = |text: &str| -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'%', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    let slash = if rest.contains('/') { "/" } else { "" };
    Some(UrlCredentials {
        url: format!("{scheme}://{host}{slash}{path}"),
        username: decode(user),
        password: decode(password),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_out_of_http_urls_only() {
        let c = url_credentials("https://ci:p%40ss%3Aw0rd@git.example.com/acme/shop.git").unwrap();
        assert_eq!(
            (c.url.as_str(), c.username.as_str(), c.password.as_str()),
            ("https://git.example.com/acme/shop.git", "ci", "p@ss:w0rd")
        );
        let token = url_credentials("https://ghp_token@github.com/acme/shop.git").unwrap();
        assert_eq!((token.username.as_str(), token.password.as_str()), ("ghp_token", ""));
        assert_eq!(url_credentials("https://github.com/acme/shop.git"), None);
        assert_eq!(url_credentials("ssh://git@github.com/acme/shop.git"), None);
        assert_eq!(url_credentials("git@github.com:acme/shop.git"), None);
    }

    #[test]
    fn domains() {
        assert_eq!(Domain::parse("Example.COM.").unwrap().as_str(), "example.com");
        assert_eq!(Domain::parse_alias("*.example.com").unwrap().as_str(), "*.example.com");
        for bad in ["", "localhost", "a..b", "-a.com", "a_b.com", "*.a.com", "a.com;rm", "a.com/x", "ü.com", "a .com"]
        {
            assert!(Domain::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_keys_branches_urls() {
        assert_eq!(relative_path("/public/").unwrap(), "public");
        assert_eq!(relative_path("").unwrap(), "");
        assert_eq!(shared_path("storage/").unwrap(), "storage");
        assert_eq!(shared_path("public/uploads").unwrap(), "public/uploads");
        for bad in ["", "/", ".env", ".git/hooks", "../x", "a b", "$(x)"] {
            assert!(shared_path(bad).is_err(), "{bad:?}");
        }
        let list = |l: &[&str]| shared_paths(&l.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(list(&["storage", "storage/", "public/uploads"]).unwrap(), ["storage", "public/uploads"]);
        assert_eq!(list(&["storage", "storage2"]).unwrap(), ["storage", "storage2"]);
        assert!(list(&["storage", "storage/app/public"]).unwrap_err().contains("overlap"));
        assert!(list(&["public/uploads", "public"]).unwrap_err().contains("overlap"));
        for bad in ["../etc", "a/../b", "a b", "a;b", "$(x)", "a//b"] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
        assert!(http_path("/health?full=1").is_ok());
        for bad in ["health", "/a b", "/a\"b", "/$(x)", "/a;b"] {
            assert!(http_path(bad).is_err(), "{bad:?}");
        }
        assert!(env_key("APP_KEY").is_ok() && env_key("_x1").is_ok());
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä"] {
            assert!(env_key(bad).is_err(), "{bad:?}");
        }
        assert!(git_branch("feature/x-1").is_ok());
        for bad in ["", "-f", "a..b", "a b", "a;b", "a.lock", "$(x)", "a\nb", "/a"] {
            assert!(git_branch(bad).is_err(), "{bad:?}");
        }
        for ok in ["https://github.com/a/b.git", "git@github.com:a/b.git", "/srv/git/app.git", "ssh://git@h:22/a"] {
            assert!(git_url(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-uhttp://x", "ext::sh -c touch", "file:///x", "a b", "https://x/$(id)", "git@h:a;b", "x"] {
            assert!(git_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(redact_url("https://user:s3cret@github.com/a/b.git"), "https://***@github.com/a/b.git");
        assert_eq!(redact_url("https://ghp_token@github.com/a/b.git"), "https://***@github.com/a/b.git");
        assert_eq!(redact_url("git@github.com:a/b.git"), "git@github.com:a/b.git");
        assert_eq!(redact_url("ssh://git@host/a"), "ssh://git@host/a");
    }
}
