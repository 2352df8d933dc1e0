//! Finding the server binaries, and installing them with apt when missing.

use std::path::PathBuf;
use std::process::Command;

/// `name` on PATH or in one of `extra_dirs`.
pub fn find_binary(name: &str, extra_dirs: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra_dirs.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Find `name`, installing Debian's `package` when it is missing and we are root.
pub fn find_or_install(
    name: &str,
    package: &str,
    extra_dirs: &dyn Fn() -> Vec<PathBuf>,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = find_binary(name, &extra_dirs()) {
        return Ok(p);
    }
    if !is_root() {
        anyhow::bail!(
            "`{name}` was not found; install it with `sudo apt-get install -y {package}` and run again"
        );
    }
    eprintln!("`{name}` not found: installing Debian package {package}");
    let ok = |s: std::io::Result<std::process::ExitStatus>| s.is_ok_and(|s| s.success());
    if !ok(Command::new("apt-get")
        .args(["install", "-y", package])
        .status())
    {
        let _ = Command::new("apt-get").arg("update").status();
        if !ok(Command::new("apt-get")
            .args(["install", "-y", package])
            .status())
        {
            anyhow::bail!(
                "`apt-get install -y {package}` failed; install it by hand and run again"
            );
        }
    }
    find_binary(name, &extra_dirs())
        .ok_or_else(|| anyhow::anyhow!("`{name}` still not found after installing {package}"))
}

/// The newest PostgreSQL server binaries folder Debian installed.
pub fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}
