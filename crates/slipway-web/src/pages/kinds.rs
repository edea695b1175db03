//! Every kind of item the dashboard lists and manages, declared once: where the API keeps it,
//! how a row reads, the fields of its form, and what can be done to one. The pages and handlers
//! in `items.rs` are the same for every kind; adding a kind here gives it its table, its add and
//! edit forms, its delete button and its actions, all through the API and its rules.

use serde_json::Value;

/// How a form field is entered, and how its text becomes the API's JSON.
#[derive(Debug)]
pub enum Input {
    Text,
    /// A whole number.
    Number,
    /// Several lines (PEM blocks).
    Multiline,
    /// Values separated by commas or new lines: a JSON array.
    List,
    /// A checkbox, its default on a new form: sent when checked, or unchecked where the
    /// default is `true` (a flag that does not apply to an item is refused even when false).
    Flag(bool),
    Choice(Choices),
}

/// Where a choice's options come from.
#[derive(Debug)]
pub enum Choices {
    /// (value, label) pairs.
    Fixed(&'static [(&'static str, &'static str)]),
    /// The items of an API list (`{server}` is the page's server): their `id`, labelled by the
    /// named field.
    Api(&'static str, &'static str),
    /// The organizations in which the user may create one.
    Organizations,
}

/// A form field of an item kind, named as the API names it.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub input: Input,
    pub required: bool,
    pub hint: &'static str,
    /// Never shown back (a password, a private key): a refused form asks for it again, and an
    /// edit form leaves it empty to keep what is stored.
    pub secret: bool,
    /// Fixed once created: only on the add form.
    pub create_only: bool,
}

impl Field {
    pub fn input_number(&self) -> bool {
        matches!(self.input, Input::Number)
    }
}

const FIELD: Field =
    Field { name: "", label: "", input: Input::Text, required: false, hint: "", secret: false, create_only: false };

const fn text(name: &'static str, label: &'static str, required: bool, hint: &'static str) -> Field {
    Field { name, label, required, hint, ..FIELD }
}

const fn number(name: &'static str, label: &'static str, hint: &'static str) -> Field {
    Field { name, label, input: Input::Number, hint, ..FIELD }
}

const fn list(name: &'static str, label: &'static str, hint: &'static str) -> Field {
    Field { name, label, input: Input::List, hint, ..FIELD }
}

const fn secret(name: &'static str, label: &'static str, hint: &'static str) -> Field {
    Field { name, label, secret: true, hint, ..FIELD }
}

const fn flag(name: &'static str, label: &'static str, default: bool) -> Field {
    Field { name, label, input: Input::Flag(default), ..FIELD }
}

const fn choice(name: &'static str, label: &'static str, choices: Choices, required: bool) -> Field {
    Field { name, label, input: Input::Choice(choices), required, ..FIELD }
}

/// Fixed once created.
const fn once(field: Field) -> Field {
    Field { create_only: true, ..field }
}

const ORGANIZATION: Field = once(choice("organization_id", "Organization", Choices::Organizations, false));

/// Something done to one item: `POST {item}/{path}`.
pub struct Action {
    pub path: &'static str,
    pub label: &'static str,
    /// The ability the API asks for (which decides whether the button shows).
    pub ability: &'static str,
    /// Whether it applies to this item.
    pub applies: fn(&Value) -> bool,
    /// Its body, from the item as it is.
    pub body: fn(&Value) -> Value,
}

const ACTION: Action =
    Action { path: "", label: "", ability: "", applies: |_| true, body: |_| Value::Object(Default::default()) };

const fn action(path: &'static str, label: &'static str, ability: &'static str) -> Action {
    Action { path, label, ability, ..ACTION }
}

/// How an item is deleted.
#[derive(Debug, PartialEq)]
pub enum Removal {
    Not,
    Plain,
    /// The API wants the item's name again (`{"confirm": name}`), typed by the user.
    Confirmed,
}

/// One kind of item.
pub struct Kind {
    pub title: &'static str,
    /// Its path under the place's API path (`daemons`), and in the dashboard's URLs.
    pub path: &'static str,
    /// Where single items are in the API when not under the list's path
    /// (`/api/v1/backup-schedules`).
    pub item_api: Option<&'static str>,
    pub label: fn(&Value) -> String,
    pub detail: fn(&Value) -> String,
    /// The ability resource (`daemon`) whose `create`, `update` and `delete` the buttons need.
    pub resource: &'static str,
    /// What one is called in a sentence ("a daemon").
    pub one: &'static str,
    /// The fields of its form; none: it is added with the API or the CLI only.
    pub fields: &'static [Field],
    /// Whether the API changes one with `PUT` (the edit form).
    pub editable: bool,
    pub removal: Removal,
    pub actions: &'static [Action],
    /// Fields of the item the form does not show, carried as they are when it is changed (the
    /// API's `PUT` replaces the whole item, so a field left out would go back to its default).
    pub kept: &'static [&'static str],
    /// Adjusts an item's values before they fill its edit form.
    pub tidy: fn(&mut Value),
    /// Whether an item has a page of its own (a database, with its users and backups).
    pub opens: bool,
    /// A secret the API answers once when one is made or an action runs (`password`), and what
    /// to call it.
    pub shown_once: Option<(&'static str, &'static str)>,
}

const KIND: Kind = Kind {
    title: "",
    path: "",
    item_api: None,
    label: name,
    detail: |_| String::new(),
    resource: "",
    one: "",
    fields: &[],
    editable: false,
    removal: Removal::Plain,
    actions: &[],
    kept: &[],
    tidy: |_| {},
    opens: false,
    shown_once: None,
};

/// A field of an item as text: strings as they are, lists joined, nothing as empty.
pub fn field(v: &Value, name: &str) -> String {
    match v.get(name) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

fn name(v: &Value) -> String {
    field(v, "name")
}

const FREQUENCY_HINT: &str = "minutely, hourly, nightly, weekly, monthly, or a cron expression (UTC)";
const STORAGES: Choices = Choices::Api("/api/v1/backup-storages", "name");

const SCHEDULE_FIELDS: &[Field] = &[
    choice("storage_id", "Storage", STORAGES, true),
    text("frequency", "Frequency", true, FREQUENCY_HINT),
    number("keep_last", "Keep the newest", "good backups; default 7"),
    number("keep_daily", "And one a day for", "days; default 0"),
    number("keep_weekly", "And one a week for", "weeks; default 0"),
    number("keep_monthly", "And one a month for", "months; default 0"),
    flag("verify", "Verify each backup once stored (databases)", false),
];

const BACKUP_SCHEDULES: Kind = Kind {
    title: "Backup schedules",
    path: "backup-schedules",
    item_api: Some("/api/v1/backup-schedules"),
    label: |v| format!("{} {}", field(v, "frequency"), field(v, "type")),
    detail: |v| {
        let stale = if v.get("stale").and_then(Value::as_bool) == Some(true) { "stale; " } else { "" };
        let last = Some(field(v, "last_good_backup_at")).filter(|s| !s.is_empty()).unwrap_or_else(|| "none".into());
        format!("{stale}last good backup {last}; keeps {}", field(v, "keep_last"))
    },
    resource: "backup",
    one: "a backup schedule",
    fields: SCHEDULE_FIELDS,
    editable: true,
    actions: &[action("run", "Back up now", "backup:create")],
    ..KIND
};

pub const SERVER_KINDS: &[Kind] = &[
    Kind {
        title: "SSH keys",
        path: "ssh-keys",
        detail: |v| field(v, "fingerprint"),
        resource: "ssh-key",
        one: "an SSH key",
        fields: &[
            text("name", "Name", true, "whose key it is"),
            text("public_key", "Public key", true, "one line: ssh-ed25519 AAAA… or ssh-rsa AAAA…"),
        ],
        editable: true,
        ..KIND
    },
    Kind {
        title: "Network rules",
        path: "network-rules",
        detail: |v| {
            format!("{} {}/{} from {}", field(v, "action"), field(v, "port"), field(v, "protocol"), field(v, "from"))
        },
        resource: "network-rule",
        one: "a network rule",
        fields: &[
            text("name", "Name", true, ""),
            text("port", "Port", true, "1 to 65535, or a range: 8000-8100"),
            choice("action", "Action", Choices::Fixed(&[("allow", "Allow"), ("deny", "Deny")]), true),
            choice("protocol", "Protocol", Choices::Fixed(&[("tcp", "TCP"), ("udp", "UDP")]), true),
            text("from", "From", false, "an address or CIDR range; empty for anywhere"),
        ],
        editable: true,
        ..KIND
    },
    Kind {
        title: "Daemons",
        path: "daemons",
        detail: |v| field(v, "command"),
        resource: "daemon",
        one: "a daemon",
        fields: &[
            text("name", "Name", false, "default: from the command"),
            text("command", "Command", true, "runs under supervisor and is restarted when it stops"),
            text("directory", "Directory", false, "absolute path; default the user's home"),
            text("user", "User", false, "default the deploy user"),
            number("processes", "Processes", "default 1"),
        ],
        editable: true,
        actions: &[action("restart", "Restart", "daemon:update")],
        kept: &["start_seconds", "stop_wait_seconds", "stop_signal"],
        ..KIND
    },
    Kind {
        title: "Cron jobs",
        path: "crontabs",
        detail: |v| format!("{} · {}", field(v, "schedule"), field(v, "command")),
        resource: "crontab",
        one: "a cron job",
        fields: &[
            text("name", "Name", false, ""),
            text("command", "Command", true, ""),
            text("frequency", "Frequency", true, "minutely, hourly, nightly, weekly, monthly, or a cron expression"),
            text("user", "User", false, "default the deploy user"),
        ],
        editable: true,
        kept: &["site_id"],
        ..KIND
    },
    Kind {
        title: "Databases",
        path: "databases",
        detail: |v| format!("{}, {}", field(v, "engine"), field(v, "charset")),
        resource: "database",
        one: "a database",
        fields: &[
            text("name", "Name", true, "lowercase letters, digits and _, starting with a letter"),
            text("charset", "Character set", false, "default utf8mb4 (MySQL) or UTF8 (PostgreSQL)"),
            text("collation", "Collation", false, "MySQL only; default the character set's"),
        ],
        removal: Removal::Confirmed,
        opens: true,
        ..KIND
    },
];

pub const SITE_KINDS: &[Kind] = &[
    Kind {
        title: "Queue workers",
        path: "queues",
        label: |v| format!("{} ({})", field(v, "queue"), field(v, "connection")),
        detail: |v| format!("{} processes", field(v, "processes")),
        resource: "queue-worker",
        one: "a queue worker",
        fields: &[
            text("connection", "Connection", false, "default the app's"),
            text("queue", "Queues", false, "comma-separated, in priority order: high,default"),
            number("processes", "Processes", "default 1"),
            text("command", "Command", false, "for non-Laravel sites: what runs the worker"),
        ],
        editable: true,
        actions: &[action("restart", "Restart", "queue-worker:update")],
        kept: &["timeout", "sleep", "tries", "max_jobs", "max_time", "memory"],
        // A Laravel worker's command is made from its queue settings, which the API refuses
        // alongside a command of the user's.
        tidy: |v| {
            if !field(v, "queue").is_empty()
                && let Some(o) = v.as_object_mut()
            {
                o.remove("command");
            }
        },
        ..KIND
    },
    Kind {
        title: "Redirects",
        path: "redirects",
        label: |v| format!("{} → {}", field(v, "from"), field(v, "to")),
        detail: |v| field(v, "type"),
        resource: "redirect",
        one: "a redirect",
        fields: &[
            text("from", "From", true, "a path on this site: /old or /blog/*"),
            text("to", "To", true, "a path or a URL: /new or https://blog.example.com/*"),
            number("type", "Status", "301 (default), 302, 307 or 308"),
            flag("preserve_query", "Keep the query string", true),
        ],
        editable: true,
        ..KIND
    },
    Kind {
        title: "Certificates",
        path: "certificates",
        label: |v| field(v, "domains"),
        detail: |v| {
            let active = if v.get("active").and_then(Value::as_bool) == Some(true) { "served; " } else { "" };
            let until =
                Some(field(v, "not_after")).filter(|s| !s.is_empty()).unwrap_or_else(|| "not issued yet".into());
            format!("{active}{}, valid until {until}", field(v, "type"))
        },
        resource: "certificate",
        one: "a certificate",
        fields: &[
            choice(
                "type",
                "Type",
                Choices::Fixed(&[("acme", "Issued by Let's Encrypt (ACME)"), ("custom", "Uploaded (below)")]),
                true,
            ),
            list("domains", "Names", "default the site's domain and aliases"),
            Field { input: Input::Multiline, ..text("certificate", "Certificate (PEM)", false, "uploads only") },
            Field {
                input: Input::Multiline,
                ..secret("private_key", "Private key (PEM)", "uploads only; stored encrypted")
            },
            Field { input: Input::Multiline, ..text("chain", "Chain (PEM)", false, "the intermediates, issuer first") },
            flag("https_redirect", "Redirect HTTP to HTTPS", true),
            flag("hsts", "Send Strict-Transport-Security", false),
        ],
        // Served again as it was set: its redirect to HTTPS and HSTS as they are.
        actions: &[Action {
            body: |v| serde_json::json!({"https_redirect": v.get("https_redirect"), "hsts": v.get("hsts")}),
            ..action("activate", "Serve", "certificate:update")
        }],
        ..KIND
    },
    BACKUP_SCHEDULES,
    Kind {
        title: "Webhook deliveries",
        path: "webhooks",
        label: |v| format!("{} {}", field(v, "event"), field(v, "branch")),
        detail: |v| format!("{} {}", field(v, "received_at"), field(v, "reason")),
        resource: "site",
        one: "a webhook delivery",
        removal: Removal::Not,
        ..KIND
    },
];

/// What belongs to one database: its users, backup schedules and backups.
pub const DATABASE_KINDS: &[Kind] = &[
    Kind {
        title: "Users",
        path: "users",
        detail: |v| format!("from {}", field(v, "hosts")),
        resource: "database",
        one: "a user",
        fields: &[
            text("name", "Name", true, "lowercase letters, digits and _; at most 32 characters"),
            choice(
                "access",
                "Access",
                Choices::Fixed(&[("read_write", "Read and write"), ("read_only", "Read only")]),
                false,
            ),
            list("hosts", "Hosts", "MySQL: where it may connect from; default this server only"),
            choice("site_id", "Site", Choices::Api("/api/v1/servers/{server}/sites", "domain"), false),
        ],
        actions: &[action("rotate-password", "New password", "database:update")],
        shown_once: Some(("password", "the password")),
        ..KIND
    },
    BACKUP_SCHEDULES,
    Kind {
        title: "Backups",
        path: "backups",
        label: |v| Some(field(v, "started_at")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(v, "created_at")),
        detail: |v| {
            let size = v.get("size_bytes").and_then(Value::as_u64).map(|b| format!("{} KiB", b.div_ceil(1024)));
            size.unwrap_or_else(|| field(v, "error"))
        },
        resource: "backup",
        one: "a backup",
        fields: &[choice("storage_id", "Storage", STORAGES, true)],
        removal: Removal::Not,
        ..KIND
    },
];

/// What an organization connects Slipway to: where events go, where backups are kept, and its
/// git hosts.
pub const INTEGRATION_KINDS: &[Kind] = &[
    Kind {
        title: "Notification channels",
        path: "notification-channels",
        detail: |v| {
            let to = Some(field(v, "url_host")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(v, "email_to"));
            format!("{} to {to}; {}", field(v, "kind"), field(v, "events"))
        },
        resource: "notification",
        one: "a notification channel",
        fields: &[
            text("name", "Name", true, ""),
            once(choice(
                "kind",
                "Kind",
                Choices::Fixed(&[
                    ("webhook", "Webhook (signed JSON)"),
                    ("slack", "Slack"),
                    ("discord", "Discord"),
                    ("email", "Email"),
                ]),
                true,
            )),
            secret("url", "URL", "webhook, Slack and Discord; leave empty on edit to keep it"),
            list("events", "Events", "event types, failures (the default) or *"),
            list("email_to", "Send to", "email: the recipients"),
            text("email_from", "Sender", false, "email"),
            text("smtp_host", "SMTP host", false, "email"),
            number("smtp_port", "SMTP port", "email"),
            choice(
                "smtp_security",
                "SMTP security",
                Choices::Fixed(&[("starttls", "STARTTLS"), ("tls", "TLS"), ("none", "None")]),
                false,
            ),
            text("smtp_username", "SMTP user", false, "email"),
            secret("smtp_password", "SMTP password", "stored encrypted; leave empty on edit to keep it"),
            number("repeat_window_seconds", "Fold repeats within", "seconds; default 900"),
            ORGANIZATION,
        ],
        editable: true,
        actions: &[
            action("test", "Send a test", "notification:update"),
            // Only webhooks are signed.
            Action {
                applies: |v| field(v, "kind") == "webhook",
                ..action("rotate-secret", "New signing secret", "notification:update")
            },
        ],
        kept: &["server_ids", "site_ids"],
        shown_once: Some(("signing_secret", "the signing secret")),
        ..KIND
    },
    Kind {
        title: "Backup storages",
        path: "backup-storages",
        detail: |v| {
            let at = Some(field(v, "bucket")).filter(|s| !s.is_empty()).unwrap_or_else(|| field(v, "path"));
            format!("{} {at}", field(v, "kind"))
        },
        resource: "backup",
        one: "a backup storage",
        fields: &[
            text("name", "Name", true, ""),
            once(choice(
                "kind",
                "Kind",
                Choices::Fixed(&[("s3", "S3-compatible"), ("local", "A directory on a server")]),
                true,
            )),
            text("bucket", "Bucket", false, "S3"),
            text("region", "Region", false, "S3; default us-east-1"),
            text("endpoint", "Endpoint", false, "S3 stores other than AWS: https://host[:port]"),
            text("prefix", "Prefix", false, "S3"),
            flag("path_style", "Path-style requests", false),
            text("access_key_id", "Access key id", false, "S3"),
            secret("secret_access_key", "Secret access key", "S3; stored encrypted; leave empty on edit to keep it"),
            choice("server_id", "Server", Choices::Api("/api/v1/servers", "name"), false),
            text("path", "Directory", false, "on that server, absolute"),
            ORGANIZATION,
        ],
        editable: true,
        actions: &[action("test", "Test", "backup:update")],
        ..KIND
    },
    Kind {
        title: "Git providers",
        path: "git-providers",
        detail: |v| {
            let token =
                if v.get("has_access_token").and_then(Value::as_bool) == Some(true) { ", with a token" } else { "" };
            format!("{}{token}", field(v, "kind"))
        },
        resource: "provider",
        one: "a git provider",
        fields: &[
            text("name", "Name", true, ""),
            choice(
                "kind",
                "Kind",
                Choices::Fixed(&[
                    ("github", "GitHub"),
                    ("gitlab", "GitLab"),
                    ("bitbucket", "Bitbucket"),
                    ("generic", "Another git host"),
                ]),
                true,
            ),
            secret("access_token", "Access token", "for the provider's API; stored encrypted"),
            ORGANIZATION,
        ],
        ..KIND
    },
];
