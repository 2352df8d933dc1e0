//! How the daemon reaches the control plane: plaintext only on loopback
//! (unless a development setting says otherwise), and TLS towards the bus
//! verified against the CA this node pinned (or the one configured).

use std::path::{Path, PathBuf};

use ritma_bus::connect::BusTls;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "{setting} {url} is plaintext and not loopback: use {fix}, \
         or set RITMA_NODE_ALLOW_PLAINTEXT=true (development only)"
    )]
    Plaintext {
        setting: &'static str,
        url: String,
        fix: &'static str,
    },
    #[error("{setting} {url:?} is not a valid URL: {message}")]
    BadUrl {
        setting: &'static str,
        url: String,
        message: String,
    },
    #[error("CA bundle {path}: {message}")]
    Ca { path: String, message: String },
}

/// Loopback hosts: `localhost`, 127.0.0.0/8 and ::1.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse(setting: &'static str, url: &str) -> Result<reqwest::Url, TransportError> {
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("nats://{url}")
    };
    reqwest::Url::parse(&with_scheme).map_err(|e| TransportError::BadUrl {
        setting,
        url: url.to_owned(),
        message: e.to_string(),
    })
}

/// The controller URL must be `https://`, or `http://` on loopback.
pub fn controller_url_check(url: &str, allow_plaintext: bool) -> Result<(), TransportError> {
    let parsed = parse("RITMA_NODE_CONTROLLER_URL", url)?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_plaintext || parsed.host_str().is_some_and(is_loopback_host) => Ok(()),
        "http" => Err(TransportError::Plaintext {
            setting: "RITMA_NODE_CONTROLLER_URL",
            url: url.to_owned(),
            fix: "https://",
        }),
        other => Err(TransportError::BadUrl {
            setting: "RITMA_NODE_CONTROLLER_URL",
            url: url.to_owned(),
            message: format!("scheme {other:?}: use https://"),
        }),
    }
}

/// Every bus URL must be `tls://`, reached with TLS enforced (a CA bundle
/// pinned or configured), or on loopback.
pub fn nats_urls_check(
    urls: &[String],
    tls: &BusTls,
    allow_plaintext: bool,
) -> Result<(), TransportError> {
    for url in urls {
        let parsed = parse("RITMA_NODE_NATS_URLS", url)?;
        let encrypted = parsed.scheme() == "tls" || tls.enforced();
        if !encrypted && !allow_plaintext && !parsed.host_str().is_some_and(is_loopback_host) {
            return Err(TransportError::Plaintext {
                setting: "RITMA_NODE_NATS_URLS",
                url: url.clone(),
                fix: "tls://host:port (with the bus CA in RITMA_NODE_CA_FILE, or the one enrollment handed out)",
            });
        }
    }
    Ok(())
}

/// The bus TLS settings: the configured CA file wins; else the CA pinned at
/// enrollment, written next to the identity for the client to load.
pub fn bus_tls(
    configured: Option<&Path>,
    pinned_pem: Option<&str>,
    state_dir: &Path,
) -> Result<BusTls, TransportError> {
    let ca_file: Option<PathBuf> = match (configured, pinned_pem) {
        (Some(path), _) => Some(path.to_owned()),
        (None, Some(pem)) if !pem.trim().is_empty() => {
            let path = state_dir.join("bus-ca.pem");
            ritma_bus::creds::write_private(&path, pem).map_err(|e| TransportError::Ca {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            Some(path)
        }
        _ => None,
    };
    if let Some(path) = &ca_file {
        let text = std::fs::read_to_string(path).map_err(|e| TransportError::Ca {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        if !text.contains("-----BEGIN CERTIFICATE-----") {
            return Err(TransportError::Ca {
                path: path.display().to_string(),
                message: "no PEM certificate in it".into(),
            });
        }
    }
    Ok(BusTls {
        ca_file,
        required: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_refused_off_loopback_with_what_to_change() {
        for ok in [
            "https://ctl.example:8443",
            "http://127.0.0.1:8080",
            "http://localhost:8080",
            "http://[::1]:8080",
        ] {
            controller_url_check(ok, false).unwrap();
        }
        let e = controller_url_check("http://10.0.0.5:8080", false).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("https://") && text.contains("RITMA_NODE_ALLOW_PLAINTEXT"),
            "{text}"
        );
        controller_url_check("http://10.0.0.5:8080", true).unwrap();
        assert!(controller_url_check("ftp://x", false).is_err());

        let none = BusTls::default();
        let urls = |u: &[&str]| u.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        nats_urls_check(
            &urls(&["nats://127.0.0.1:4222", "localhost:4222"]),
            &none,
            false,
        )
        .unwrap();
        nats_urls_check(&urls(&["tls://bus.example:4222"]), &none, false).unwrap();
        let e = nats_urls_check(
            &urls(&["nats://127.0.0.1:4222", "nats://bus.example:4222"]),
            &none,
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("tls://"), "{e}");
        assert!(nats_urls_check(&urls(&["bus.example:4222"]), &none, false).is_err());
        let pinned = BusTls {
            ca_file: Some("/ca.pem".into()),
            required: false,
        };
        nats_urls_check(&urls(&["nats://bus.example:4222"]), &pinned, false).unwrap();
        nats_urls_check(&urls(&["nats://bus.example:4222"]), &none, true).unwrap();
        // Look-alikes of loopback are not loopback.
        assert!(!is_loopback_host("127.0.0.1.example.com"));
        assert!(!is_loopback_host("localhost.evil"));
    }

    #[test]
    fn the_pinned_ca_is_written_and_a_configured_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        let tls = bus_tls(None, Some(pem), dir.path()).unwrap();
        assert_eq!(
            tls.ca_file.as_deref(),
            Some(dir.path().join("bus-ca.pem").as_path())
        );
        assert!(tls.enforced());
        let own = dir.path().join("own.pem");
        std::fs::write(&own, pem).unwrap();
        assert_eq!(
            bus_tls(Some(&own), Some(pem), dir.path()).unwrap().ca_file,
            Some(own)
        );
        assert_eq!(bus_tls(None, None, dir.path()).unwrap(), BusTls::default());
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "hello").unwrap();
        assert!(bus_tls(Some(&junk), None, dir.path()).is_err());
    }
}
