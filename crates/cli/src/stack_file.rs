//! `.ritma/dev/stack.json`: what `ritma up` started, for people, tests and
//! the other commands (which read the API URL and admin token from it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const DEFAULT_DATA_DIR: &str = ".ritma/dev";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoNode {
    pub name: String,
    pub tenant: String,
    pub pid: u32,
    pub state_dir: PathBuf,
    pub heartbeat_secs: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackFile {
    pub api_url: String,
    pub admin_token: String,
    pub nats_url: String,
    pub nats_monitor_url: String,
    pub integrator_creds: PathBuf,
    pub org: String,
    pub console_url: Option<String>,
    pub database_url: String,
    pub data_dir: PathBuf,
    pub controller_pid: u32,
    pub console_pid: Option<u32>,
    pub nodes: Vec<DemoNode>,
    pub offline_after_secs: u32,
}

impl StackFile {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("stack.json")
    }

    pub fn load(data_dir: &Path) -> anyhow::Result<Self> {
        let path = Self::path(data_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| anyhow::anyhow!("{}: {e} (is `ritma up` running?)", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    }

    pub fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        ritma_bus::creds::write_private(
            &Self::path(data_dir),
            &serde_json::to_string_pretty(self)?,
        )?;
        Ok(())
    }
}
