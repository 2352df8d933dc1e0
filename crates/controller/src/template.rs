//! The configuration a new node needs: environment, systemd unit, install command.

use std::collections::BTreeMap;

use ritma_api::service::ConfigTemplate;
use ritma_protocol::{OrgId, TenantId};

use crate::fleet::TemplateSettings;

/// Shown in place of the secret: the wizard fills it in with the token it just made.
pub const TOKEN_PLACEHOLDER: &str = "<token>";

pub fn node_env(t: &TemplateSettings, org: &OrgId, tenant: &TenantId) -> BTreeMap<String, String> {
    let mut env = BTreeMap::from([
        ("RITMA_NODE_CONTROLLER_URL".into(), t.controller_url.clone()),
        ("RITMA_NODE_ORG_ID".into(), org.to_string()),
        ("RITMA_NODE_TENANT_ID".into(), tenant.to_string()),
        ("RITMA_ENROLL_TOKEN".into(), TOKEN_PLACEHOLDER.into()),
        ("RITMA_STATE_DIR".into(), "/var/lib/ritma-node".into()),
        ("UTLD_SOCKET".into(), t.utld_socket.clone()),
        ("UTLD_TLS_ADDR".into(), t.utld_tls_addr.clone()),
        (
            "UTLD_COMPLIANCE_INDEX".into(),
            "/var/lib/ritma-node/compliance.jsonl".into(),
        ),
    ]);
    if let Some(url) = &t.utld_usage_http_url {
        env.insert("UTLD_USAGE_HTTP_URL".into(), url.clone());
    }
    if let Some(url) = &t.ritma_cloud_url {
        env.insert("RITMA_CLOUD_URL".into(), url.clone());
    }
    env
}

pub fn node_template(t: &TemplateSettings, org: &OrgId, tenant: &TenantId) -> ConfigTemplate {
    let env = node_env(t, org, tenant);
    let env_file: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let systemd_unit = "[Unit]
Description=Ritma node daemon
Wants=network-online.target
After=network-online.target

[Service]
EnvironmentFile=/etc/ritma/node.env
ExecStart=/usr/bin/ritma-node
Restart=always
RestartSec=5
User=ritma-node
StateDirectory=ritma-node
StateDirectoryMode=0700
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
";
    let install_command = format!(
        "sudo install -d -m 0750 /etc/ritma && sudo tee /etc/ritma/node.env >/dev/null <<'EOF'\n{env_file}EOF\nsudo chmod 0600 /etc/ritma/node.env && sudo systemctl enable --now ritma-node"
    );
    ConfigTemplate {
        org_id: org.to_string(),
        tenant_id: tenant.to_string(),
        env,
        env_file,
        systemd_unit: systemd_unit.to_owned(),
        install_command,
    }
}
