//! The standard `.creds` file format that every NATS client understands.

use crate::BusError;

pub fn format_creds(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
************************* IMPORTANT *************************\n\
NKEY Seed printed below can be used to sign and prove identity.\n\
NKEYs are sensitive and should be treated as secrets.\n\n\
-----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
*************************************************************\n"
    )
}

/// Split a `.creds` file into its JWT and seed.
pub fn parse_creds(text: &str) -> Result<(String, String), BusError> {
    let block = |begin: &str| -> Option<String> {
        let mut lines = text.lines().skip_while(|l| !l.contains(begin));
        lines.next()?;
        lines
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(str::to_owned)
    };
    match (block("BEGIN NATS USER JWT"), block("BEGIN USER NKEY SEED")) {
        (Some(jwt), Some(seed)) => Ok((jwt, seed)),
        _ => Err(BusError::MalformedJwt("not a NATS .creds file".into())),
    }
}

/// Write a secret file readable only by its owner.
pub fn write_private(path: &std::path::Path, contents: &str) -> Result<(), BusError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| BusError::io(parent, e))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| BusError::io(&tmp, e))?;
    file.write_all(contents.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| BusError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| BusError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creds_round_trip() {
        let text = format_creds("eyJ.a.b", "SUAXYZ");
        assert_eq!(
            parse_creds(&text).unwrap(),
            ("eyJ.a.b".into(), "SUAXYZ".into())
        );
        assert!(parse_creds("nothing").is_err());
    }
}
