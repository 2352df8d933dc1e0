//! The installation's root keys: the operator, the system account (and a user
//! in it, for claims pushes) and the controller's account (and its user).
//! Created on the first start of a stack, kept as 0600 files in one folder.
//! Org accounts' keys are not here: the controller keeps those encrypted in
//! Postgres.

use std::path::{Path, PathBuf};

use nkeys::KeyPair;

use crate::BusError;
use crate::accounts;
use crate::creds::write_private;

pub struct BusKeys {
    pub operator: KeyPair,
    pub system_account: KeyPair,
    pub system_user: KeyPair,
    pub controller_account: KeyPair,
    pub controller_user: KeyPair,
}

const FILES: [&str; 5] = [
    "operator.nk",
    "system-account.nk",
    "system-user.nk",
    "controller-account.nk",
    "controller-user.nk",
];

impl BusKeys {
    /// Load the keys from `dir`, creating any that are missing.
    pub fn load_or_create(dir: &Path) -> Result<Self, BusError> {
        let makers: [fn() -> KeyPair; 5] = [
            KeyPair::new_operator,
            KeyPair::new_account,
            KeyPair::new_user,
            KeyPair::new_account,
            KeyPair::new_user,
        ];
        let mut keys = Vec::with_capacity(5);
        for (file, make) in FILES.iter().zip(makers) {
            keys.push(load_or_create_key(&dir.join(file), make)?);
        }
        let mut keys = keys.into_iter();
        let mut next = || {
            keys.next()
                .ok_or_else(|| BusError::Key("missing key".into()))
        };
        Ok(Self {
            operator: next()?,
            system_account: next()?,
            system_user: next()?,
            controller_account: next()?,
            controller_user: next()?,
        })
    }

    /// Load existing keys; fails if the stack was never initialised.
    pub fn load(dir: &Path) -> Result<Self, BusError> {
        for file in FILES {
            let path = dir.join(file);
            if !path.exists() {
                return Err(BusError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "bus key missing; run `ritma up` or `ritma bus init` first",
                    ),
                ));
            }
        }
        Self::load_or_create(dir)
    }

    pub fn operator_jwt(&self) -> Result<String, BusError> {
        accounts::operator_jwt(&self.operator, &self.system_account.public_key())
    }

    pub fn system_account_jwt(&self) -> Result<String, BusError> {
        accounts::system_account_jwt(&self.operator, &self.system_account.public_key())
    }

    pub fn system_user_jwt(&self) -> Result<String, BusError> {
        accounts::unrestricted_user_jwt(
            &self.system_account,
            &self.system_user.public_key(),
            "ritma-system",
        )
    }

    pub fn controller_user_jwt(&self) -> Result<String, BusError> {
        accounts::unrestricted_user_jwt(
            &self.controller_account,
            &self.controller_user.public_key(),
            "ritma-controller",
        )
    }
}

fn load_or_create_key(path: &PathBuf, make: fn() -> KeyPair) -> Result<KeyPair, BusError> {
    match std::fs::read_to_string(path) {
        Ok(seed) => KeyPair::from_seed(seed.trim()).map_err(BusError::key),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let kp = make();
            write_private(path, &kp.seed().map_err(BusError::key)?)?;
            Ok(kp)
        }
        Err(e) => Err(BusError::io(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keys_persist_privately() {
        let dir = tempfile_dir();
        let a = BusKeys::load_or_create(&dir).unwrap();
        let b = BusKeys::load(&dir).unwrap();
        assert_eq!(a.operator.public_key(), b.operator.public_key());
        assert!(a.operator.public_key().starts_with('O'));
        assert!(a.controller_account.public_key().starts_with('A'));
        let mode = std::fs::metadata(dir.join("operator.nk"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ritma-keys-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn uuid_like() -> String {
        format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        )
    }
}
