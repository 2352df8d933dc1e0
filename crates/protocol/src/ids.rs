//! Identifiers that appear as subject tokens. They are restricted to a safe
//! alphabet so that no id can inject a `.`, `*` or `>` into a subject.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Longest id accepted for an org, tenant or node.
pub const MAX_ID_LEN: usize = 63;
/// Every id as a JSON Schema / OpenAPI pattern (what `NodeId::new` and its
/// kin accept, reserved words aside).
pub const ID_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,62}$";

/// Tokens that would make a subject ambiguous or collide with reserved
/// subject spaces.
const RESERVED: &[&str] = &["node", "state", "cmd", "sys", "all"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id is longer than {MAX_ID_LEN} characters")]
    TooLong { kind: &'static str },
    #[error(
        "{kind} id {value:?} may only contain lowercase letters, digits and '-', and must start with a letter or digit"
    )]
    BadCharacters { kind: &'static str, value: String },
    #[error("{kind} id {value:?} is reserved")]
    Reserved { kind: &'static str, value: String },
}

fn check(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > MAX_ID_LEN {
        return Err(IdError::TooLong { kind });
    }
    let mut chars = value.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !first_ok || !rest_ok {
        return Err(IdError::BadCharacters {
            kind,
            value: value.chars().take(80).collect(),
        });
    }
    if RESERVED.contains(&value) {
        return Err(IdError::Reserved {
            kind,
            value: value.to_owned(),
        });
    }
    Ok(())
}

macro_rules! subject_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ID_LEN,
                    "pattern": ID_PATTERN
                })
            }
        }

        impl $name {
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, &value)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

subject_id!(
    /// A customer organisation: its own NATS account, its own roles.
    OrgId,
    "org"
);
subject_id!(
    /// A scope inside an org (a subject token and a credential scope).
    TenantId,
    "tenant"
);
subject_id!(
    /// A node, unique within the whole installation.
    NodeId,
    "node"
);

impl NodeId {
    /// The id a node gets when it does not ask for one: its hostname made
    /// subject-safe, plus a short stable suffix of its public key so two hosts
    /// with one name do not collide and re-enrolling with the same key is
    /// idempotent.
    pub fn derive(hostname: &str, public_key: &str) -> Self {
        let mut base: String = hostname
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        base = base.trim_matches('-').to_owned();
        base.truncate(48);
        let base = base.trim_end_matches('-');
        // Only ASCII letters and digits: a key with anything else (not a real
        // NKey, but callers may pass anything) must not leak into the id
        // (found by the property tests: a non-ASCII key gave an invalid id).
        let mut suffix: String = public_key
            .chars()
            .skip(1)
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
            .to_ascii_lowercase();
        if suffix.is_empty() {
            suffix.push('0');
        }
        let candidate = if base.is_empty() {
            format!("node-{suffix}")
        } else {
            format!("{base}-{suffix}")
        };
        Self::new(candidate.clone()).unwrap_or_else(|_| Self(format!("node-{suffix}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        assert!(OrgId::new("acme").is_ok());
        assert!(TenantId::new("eu-west-1").is_ok());
        assert!(NodeId::new("0web").is_ok());
    }

    #[test]
    fn rejects_subject_metacharacters_and_bad_shapes() {
        for bad in [
            "",
            "a.b",
            "a*",
            ">",
            "A",
            "-x",
            "a b",
            "node",
            &"x".repeat(64),
        ] {
            assert!(NodeId::new(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn derived_ids_are_valid_and_stable() {
        let a = NodeId::derive("Web_01.example.com", "UABCDEFGHIJK");
        assert_eq!(a.as_str(), "web-01-example-com-abcdefgh");
        assert_eq!(a, NodeId::derive("Web_01.example.com", "UABCDEFGHIJK"));
        let b = NodeId::derive("...", "UXYZXYZXYZ");
        assert_eq!(b.as_str(), "node-xyzxyzxy");
        // Found by the property tests: a key with non-ASCII characters.
        assert_eq!(NodeId::derive("", "A\u{129a}").as_str(), "node-0");
        assert_eq!(NodeId::derive("h", "U.>*AB").as_str(), "h-ab");
    }

    #[test]
    fn deserialising_validates() {
        let err = serde_json::from_str::<OrgId>("\"a.b\"").unwrap_err();
        assert!(err.to_string().contains("may only contain"));
    }
}
