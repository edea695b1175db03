//! The states a record can be in, as enums. Each is stored as its text on both backends (the
//! migrations' `CHECK` lists the same words), travels as that text in the API, and is compared
//! as a value in code, so a misspelt state is a compile error rather than a branch never taken.

/// A stored or received text that is none of an enum's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a known {what}: expected {expected}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub value: String,
    /// The words it may be, in words: `a, b or c`.
    pub expected: String,
}

/// `a, b or c`.
pub(crate) fn choices<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let words: Vec<&str> = words.collect();
    match words.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => words.concat(),
    }
}

/// Declares an enum whose values are a fixed list of words: `as_str`, `FromStr`,
/// `TryFrom<String>`, `Display`, serde as the word and, with the `sqlx` feature, a column of
/// text on any backend (read back through `FromStr`, so an unknown word is an error); with the
/// `utoipa` feature, an OpenAPI string schema that lists the words.
macro_rules! word_enum {
    ($(#[doc = $doc:literal])* $name:ident, $what:literal { $($variant:ident = $word:literal),+ $(,)? }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::status::UnknownWord;

            fn from_str(text: &str) -> Result<Self, $crate::status::UnknownWord> {
                Self::ALL.iter().copied().find(|v| v.as_str() == text).ok_or_else(|| $crate::status::UnknownWord {
                    what: $what,
                    value: text.to_string(),
                    expected: $crate::status::choices(Self::ALL.iter().map(|v| v.as_str())),
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::status::UnknownWord;

            fn try_from(text: String) -> Result<Self, $crate::status::UnknownWord> {
                text.parse()
            }
        }

        #[cfg(feature = "sqlx")]
        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            str: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as sqlx::Type<DB>>::compatible(ty)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                self.as_str().encode_by_ref(buf)
            }
        }

        #[cfg(feature = "sqlx")]
        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            &'r str: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&'r str as sqlx::Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }

        #[cfg(feature = "utoipa")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .description(Some([$($doc.trim()),*].join(" ")))
                    .enum_values(Some([$($word),+]))
                    .into()
            }
        }

        #[cfg(feature = "utoipa")]
        impl utoipa::ToSchema for $name {}

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

pub(crate) use word_enum;

word_enum! {
    /// A background job's, and so a deployment's, run: waiting, running, or how it ended.
    RunStatus, "run status" {
        Queued = "queued",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl RunStatus {
    /// It has ended, one way or another.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }
}

word_enum! {
    /// A server: registered, being provisioned, ready, or not usable (with a reason beside it).
    ServerStatus, "server status" {
        Pending = "pending",
        Provisioning = "provisioning",
        Active = "active",
        Failed = "failed",
        Unreachable = "unreachable",
    }
}

word_enum! {
    /// Something Slipway puts on a server (a site, an SSH key, a worker, a database…): whether
    /// the server has it yet, is losing it, or could not be given it.
    InstallStatus, "install status" {
        Installing = "installing",
        Installed = "installed",
        Failed = "failed",
        Removing = "removing",
    }
}

impl InstallStatus {
    /// Work on the server is under way (the record will change by itself).
    pub fn is_in_progress(self) -> bool {
        matches!(self, InstallStatus::Installing | InstallStatus::Removing)
    }
}

word_enum! {
    /// What an item on a server is doing now, as the server reports it (a worker running, a cron
    /// job's last run): read live and never stored. `removed` says a delete took it away at once.
    ItemState, "item state" {
        Running = "running",
        Installing = "installing",
        Stopped = "stopped",
        Failed = "failed",
        Succeeded = "succeeded",
        Waiting = "waiting",
        Missed = "missed",
        Unknown = "unknown",
        Removed = "removed",
    }
}

word_enum! {
    /// A backup: waiting, being taken, stored, failed, or restored from.
    BackupStatus, "backup status" {
        Pending = "pending",
        InProgress = "in_progress",
        Completed = "completed",
        Failed = "failed",
        Restored = "restored",
    }
}

word_enum! {
    /// One notification sent to one channel.
    DeliveryStatus, "delivery status" {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_word_reads_back_as_its_value() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(*status));
            assert_eq!(serde_json::to_string(status).unwrap(), format!("\"{status}\""));
        }
        assert_eq!(BackupStatus::InProgress.as_str(), "in_progress");
        assert_eq!(serde_json::from_str::<BackupStatus>("\"in_progress\"").unwrap(), BackupStatus::InProgress);
    }

    #[test]
    fn an_unknown_word_is_an_error_that_names_the_choices() {
        let error = "sleeping".parse::<ServerStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "\"sleeping\" is not a known server status: expected pending, provisioning, active, failed or unreachable"
        );
        assert!(serde_json::from_str::<InstallStatus>("\"Installed\"").is_err());
        assert!(InstallStatus::try_from(String::new()).is_err());
    }
}
