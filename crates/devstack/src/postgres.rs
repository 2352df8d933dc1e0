//! A private PostgreSQL instance under the stack's data folder, on its own
//! port, so a dev stack never touches a server already running here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::ports::{PORT_PICK_ATTEMPTS, free_port, wait_for_port};
use crate::tools;

pub struct PostgresServer {
    pub port: u16,
    pub url: String,
    data_dir: PathBuf,
    dir: PathBuf,
    pg_ctl: PathBuf,
    run_as: Option<String>,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PostgresServer {
    /// Initialise (first time) and start a cluster in `dir`, creating `database`.
    pub async fn start(dir: &Path, database: &str) -> anyhow::Result<Self> {
        let pg_ctl = tools::find_or_install("pg_ctl", "postgresql", &tools::postgres_bin_dirs)?;
        // The real bin folder (PATH may hold a symlink), where initdb and psql live too.
        let pg_ctl = std::fs::canonicalize(&pg_ctl).unwrap_or(pg_ctl);
        let bin = pg_ctl.parent().map(Path::to_path_buf).unwrap_or_default();
        // PostgreSQL refuses to run as root: run it as the `postgres` user then.
        let run_as = is_root().then(|| "postgres".to_owned());
        let data_dir = dir.join("data");
        std::fs::create_dir_all(dir)?;
        if let Some(user) = &run_as {
            run(Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(dir))?;
        }
        let as_user = |program: &Path| -> Command {
            match &run_as {
                Some(user) => {
                    let mut c = Command::new("runuser");
                    c.args(["-u", user, "--"]).arg(program);
                    c
                }
                None => Command::new(program),
            }
        };
        if !data_dir.join("PG_VERSION").exists() {
            run(as_user(&bin.join("initdb"))
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data_dir))?;
        }
        // A port picked free can be taken before the server binds it; the
        // start then fails (pg_ctl -w) and another port is picked.
        let mut attempt = 0;
        let server = loop {
            let port = free_port()?;
            let server = Self {
                port,
                url: format!("postgres://postgres@127.0.0.1:{port}/{database}"),
                data_dir: data_dir.clone(),
                dir: dir.to_owned(),
                pg_ctl: pg_ctl.clone(),
                run_as: run_as.clone(),
            };
            match server.spawn().await {
                Ok(()) => break server,
                Err(e) if attempt < PORT_PICK_ATTEMPTS => {
                    attempt += 1;
                    tracing::warn!(port, error = %e, "postgres did not start; trying another port");
                    // Dropped: stops whatever started (the data folder stays).
                    drop(server);
                }
                Err(e) => return Err(e),
            }
        };
        let port = server.port;
        let psql = bin.join("psql");
        let exists = Command::new(&psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-tAc",
            ])
            .arg(format!(
                "SELECT 1 FROM pg_database WHERE datname = '{database}'"
            ))
            .output()?;
        if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
            run(Command::new(&psql)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "postgres",
                    "-c",
                ])
                .arg(format!("CREATE DATABASE \"{database}\"")))?;
        }
        Ok(server)
    }

    fn pg_ctl(&self) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&self.pg_ctl);
                c
            }
            None => Command::new(&self.pg_ctl),
        }
    }

    async fn spawn(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200",
            self.port,
            self.dir.display()
        );
        run(self
            .pg_ctl()
            .args(["-w", "-t", "30", "-D"])
            .arg(&self.data_dir)
            .args(["-l"])
            .arg(self.dir.join("postgres.log"))
            .args(["-o", &options, "start"]))?;
        wait_for_port(self.port, Duration::from_secs(30)).await
    }

    /// Start again after `stop`, on the same port with the same data.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }

    pub fn stop(&self) {
        let _ = self
            .pg_ctl()
            .args(["-m", "fast", "-D"])
            .arg(&self.data_dir)
            .arg("stop")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        anyhow::bail!(
            "{:?} failed: {}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
