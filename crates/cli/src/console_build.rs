//! `ritma up` builds the console when it is missing or older than its
//! sources (a source checkout only), installing the toolchain it needs
//! first, with progress lines; the next `up` reuses the build. A failure
//! leaves the stack running without the console and says what to run.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

/// The checkout this binary was built from, when it is still there.
fn source_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join("app/scripts/build.sh")
        .exists()
        .then(|| root.canonicalize().unwrap_or(root))
}

/// Newest modification time of the files the console is built from.
fn newest_source(root: &Path) -> Option<SystemTime> {
    fn walk(dir: &Path, newest: &mut Option<SystemTime>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                *newest = Some(newest.map_or(m, |n| n.max(m)));
            }
        }
    }
    let mut newest = None;
    for part in [
        "app/src",
        "app/style",
        "app/Cargo.toml",
        "crates/protocol/src",
        "crates/wasm-split/src",
        "app/scripts/build.sh",
        "Cargo.lock",
    ] {
        let p = root.join(part);
        if p.is_dir() {
            walk(&p, &mut newest);
        } else if let Ok(m) = std::fs::metadata(&p).and_then(|m| m.modified()) {
            newest = Some(newest.map_or(m, |n| n.max(m)));
        }
    }
    newest
}

/// Why the console in `bin_dir` needs a build, or `None` when it is current.
pub fn stale_reason(bin_dir: &Path, site: &Path, root: &Path) -> Option<&'static str> {
    let console = bin_dir.join("ritma-console");
    let built = std::fs::metadata(&console).and_then(|m| m.modified()).ok();
    match (built, site.join("pkg/BUILD").exists()) {
        (None, _) | (_, false) => Some("not built yet"),
        (Some(built), true) => match newest_source(root) {
            Some(src) if src > built => Some("its sources changed since the last build"),
            _ => None,
        },
    }
}

/// Run `script` with progress lines prefixed `[console]`, its output also
/// kept in `log`.
fn run_step(root: &Path, script: &str, args: &[&str], env: &[(&str, &Path)], log: &Path) -> bool {
    let mut cmd = Command::new("bash");
    cmd.arg(root.join(script))
        .args(args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("SKIP_BROWSER", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Ok(mut child) = cmd.spawn() else {
        return false;
    };
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .ok();
    let stderr = child.stderr.take();
    let err_log = log.as_ref().and_then(|f| f.try_clone().ok());
    let err_thread = std::thread::spawn(move || {
        let mut log = err_log;
        if let Some(e) = stderr {
            for line in BufReader::new(e).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    let _ = writeln!(f, "{line}");
                }
                // cargo's own progress ("Compiling x") on one line, the rest as is.
                if line.trim_start().starts_with("Compiling") {
                    eprint!("\r[console]   {:<70}", line.trim());
                } else {
                    eprintln!("\r[console]   {line}");
                }
            }
        }
    });
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            println!("[console]   {line}");
        }
    }
    let _ = err_thread.join();
    eprintln!();
    child.wait().is_ok_and(|s| s.success())
}

/// Build the console next to this binary when it is missing or stale.
/// Returns false when it could not be built (the caller goes on without it).
pub fn ensure_built(bin_dir: &Path, site: &Path, logs: &Path) -> bool {
    let Some(root) = source_root() else {
        return bin_dir.join("ritma-console").exists();
    };
    let Some(reason) = stale_reason(bin_dir, site, &root) else {
        return true;
    };
    // The target folder holds <profile>/ritma; building there reuses its cache.
    let profile = bin_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("release");
    let target = bin_dir.parent().unwrap_or(bin_dir).to_path_buf();
    let log = logs.join("console-build.log");
    let started = Instant::now();
    println!(
        "[console] building the console ({reason}); output in {}",
        log.display()
    );
    println!(
        "[console] 1/2 toolchain: wasm32 target, wasm-bindgen-cli 0.2.130 and npm binaryen \
         (first time only: about 3-5 min on 2 cores)"
    );
    if !run_step(&root, "app/scripts/install-toolchain.sh", &[], &[], &log) {
        println!(
            "[console] the toolchain could not be installed; the stack runs without the console.\n\
             [console] Fix and retry with: app/scripts/install-toolchain.sh && app/scripts/build.sh{} \
             (see {})",
            if profile == "debug" { " --dev" } else { "" },
            log.display()
        );
        return false;
    }
    println!(
        "[console] 2/2 build: the browser bundle (WASM) and the console server \
         (first time: about 8-12 min on 2 cores; later: seconds to a few minutes)"
    );
    let args: &[&str] = if profile == "debug" { &["--dev"] } else { &[] };
    if !run_step(
        &root,
        "app/scripts/build.sh",
        args,
        &[("CARGO_TARGET_DIR", &target)],
        &log,
    ) {
        println!(
            "[console] the build failed; the stack runs without the console.\n\
             [console] Retry with: app/scripts/build.sh{} (see {})",
            args.first().map(|a| format!(" {a}")).unwrap_or_default(),
            log.display()
        );
        return false;
    }
    println!(
        "[console] built in {:.0} s; the next `ritma up` reuses it",
        started.elapsed().as_secs_f64()
    );
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_older_console_is_stale_and_a_fresh_one_is_not() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (bin, site, root) = (
            dir.path().join("bin"),
            dir.path().join("site"),
            dir.path().join("src"),
        );
        for d in [&bin, &root.join("app/src"), &site.join("pkg")] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(root.join("app/src/lib.rs"), "x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stale_reason(&bin, &site, &root), Some("not built yet"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(bin.join("ritma-console"), "bin").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(site.join("pkg/BUILD"), "h").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stale_reason(&bin, &site, &root), None);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(root.join("app/src/lib.rs"), "y").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            stale_reason(&bin, &site, &root),
            Some("its sources changed since the last build")
        );
    }
}
