//! Host dry run: the node's own posture, read from the kernel and the
//! filesystem: modes of sensitive files, listening TCP ports
//! (`/proc/net/tcp{,6}`) and hardening settings under `/proc/sys`.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;

use futures::future::join_all;
use ritma_protocol::connectors::{CheckStatus, Finding, HostConnector, Severity};

use super::{Blocked, FS_TIMEOUT, blocking, finding};

pub(super) async fn check(config: &HostConnector) -> Vec<Finding> {
    let files = join_all(file_rules(config).into_iter().map(check_file));
    let allowed = config.allowed_ports.clone();
    let procfs = blocking(FS_TIMEOUT, move || {
        let mut found = read_ports(&allowed);
        found.extend(SYSCTLS.iter().map(|rule| {
            let path = rule.path();
            sysctl_finding(rule, std::fs::read_to_string(&path).map_err(|e| (path, e)))
        }));
        found
    });
    let (files, procfs) = tokio::join!(files, procfs);
    let mut findings: Vec<Finding> = files;
    match procfs {
        Ok(found) => findings.extend(found),
        Err(b) => findings.push(finding(
            "host.procfs",
            CheckStatus::Error,
            Severity::Medium,
            match b {
                Blocked::TimedOut => format!(
                    "reading /proc did not finish within {} s; ports and kernel settings were not checked",
                    FS_TIMEOUT.as_secs()
                ),
                Blocked::Failed => {
                    "reading /proc failed unexpectedly; ports and kernel settings were not checked"
                        .to_owned()
                }
            },
        )),
    }
    findings
}

// ---------------------------------------------------------------- files --

const WORLD_READ: u32 = 0o004;
const GROUP_WRITE: u32 = 0o020;
const WORLD_WRITE: u32 = 0o002;

/// A file whose mode must have none of the `deny` bits.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileRule {
    path: String,
    deny: u32,
    severity: Severity,
}

fn file_rules(config: &HostConnector) -> Vec<FileRule> {
    let rule = |path: &str, deny, severity| FileRule {
        path: path.to_owned(),
        deny,
        severity,
    };
    let mut rules = vec![
        rule(
            "/etc/shadow",
            WORLD_READ | GROUP_WRITE | WORLD_WRITE,
            Severity::High,
        ),
        rule(
            "/etc/gshadow",
            WORLD_READ | GROUP_WRITE | WORLD_WRITE,
            Severity::High,
        ),
        rule("/etc/passwd", GROUP_WRITE | WORLD_WRITE, Severity::High),
        rule("/etc/group", GROUP_WRITE | WORLD_WRITE, Severity::High),
    ];
    for p in &config.protected_paths {
        if !rules.iter().any(|r| &r.path == p) {
            rules.push(rule(p, GROUP_WRITE | WORLD_WRITE, Severity::Medium));
        }
    }
    rules
}

/// The names of the `deny` bits set in `mode`.
fn mode_problems(mode: u32, deny: u32) -> Vec<&'static str> {
    [
        (WORLD_READ, "world-readable"),
        (GROUP_WRITE, "group-writable"),
        (WORLD_WRITE, "world-writable"),
    ]
    .into_iter()
    .filter(|(bit, _)| deny & bit != 0 && mode & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

fn describe_rule(deny: u32) -> &'static str {
    if deny & WORLD_READ != 0 {
        "not world-readable, not group- or world-writable"
    } else {
        "not group- or world-writable"
    }
}

fn file_finding(rule: &FileRule, meta: Result<u32, io::Error>) -> Finding {
    let id = format!("host.file.mode:{}", rule.path);
    let path = &rule.path;
    match meta {
        Err(e) if e.kind() == io::ErrorKind::NotFound => finding(
            id,
            CheckStatus::Error,
            rule.severity,
            format!("{path} does not exist on this node, so its permissions could not be checked"),
        ),
        Err(e) => finding(
            id,
            CheckStatus::Error,
            rule.severity,
            format!("could not read the permissions of {path}: {e}"),
        ),
        Ok(mode) => {
            let mode = mode & 0o7777;
            let problems = mode_problems(mode, rule.deny);
            if problems.is_empty() {
                finding(
                    id,
                    CheckStatus::Pass,
                    rule.severity,
                    format!("{path} has mode {mode:04o}: {}", describe_rule(rule.deny)),
                )
            } else {
                finding(
                    id,
                    CheckStatus::Fail,
                    rule.severity,
                    format!(
                        "{path} has mode {mode:04o}: it is {}; it must be {} (fix with chmod {} {path})",
                        problems.join(" and "),
                        describe_rule(rule.deny),
                        chmod_hint(rule.deny & mode),
                    ),
                )
            }
        }
    }
}

fn chmod_hint(bad: u32) -> String {
    let mut parts = Vec::new();
    if bad & WORLD_READ != 0 {
        parts.push("o-r");
    }
    match (bad & GROUP_WRITE != 0, bad & WORLD_WRITE != 0) {
        (true, true) => parts.push("go-w"),
        (true, false) => parts.push("g-w"),
        (false, true) => parts.push("o-w"),
        (false, false) => {}
    }
    parts.join(",")
}

async fn check_file(rule: FileRule) -> Finding {
    let path = rule.path.clone();
    let meta = blocking(FS_TIMEOUT, move || {
        std::fs::metadata(&path).map(|m| m.permissions().mode())
    })
    .await;
    match meta {
        Ok(meta) => file_finding(&rule, meta),
        Err(Blocked::TimedOut) => finding(
            format!("host.file.mode:{}", rule.path),
            CheckStatus::Unreachable,
            rule.severity,
            format!(
                "{} did not respond within {} s (a hung network mount?); its permissions were not checked",
                rule.path,
                FS_TIMEOUT.as_secs()
            ),
        ),
        Err(Blocked::Failed) => finding(
            format!("host.file.mode:{}", rule.path),
            CheckStatus::Error,
            rule.severity,
            format!("checking {} failed unexpectedly", rule.path),
        ),
    }
}

// ---------------------------------------------------------------- ports --

/// A listening TCP socket, as found in `/proc/net/tcp` or `/proc/net/tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listener {
    pub addr: IpAddr,
    pub port: u16,
}

/// The sockets in state `0A` (LISTEN) of a `/proc/net/tcp` or
/// `/proc/net/tcp6` table. The header and lines that do not parse are
/// skipped. Addresses are the kernel's words printed in host byte order.
pub fn parse_proc_net_tcp(text: &str) -> Vec<Listener> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 4 || !fields[3].eq_ignore_ascii_case("0A") {
                return None;
            }
            let (addr, port) = fields[1].split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(Listener {
                addr: parse_hex_addr(addr)?,
                port,
            })
        })
        .collect()
}

fn parse_hex_addr(hex: &str) -> Option<IpAddr> {
    let word = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::to_ne_bytes);
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(hex)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(hex.get(i * 8..i * 8 + 8)?)?);
            }
            Some(IpAddr::V6(Ipv6Addr::from(bytes)))
        }
        _ => None,
    }
}

fn is_loopback(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_loopback(),
        IpAddr::V6(a) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

fn join_addrs(addrs: &BTreeSet<IpAddr>) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `Fail` per listening port that is not allowed, or one summary finding.
fn port_findings(listeners: &[Listener], allowed: &[u16]) -> Vec<Finding> {
    let mut by_port: BTreeMap<u16, BTreeSet<IpAddr>> = BTreeMap::new();
    for l in listeners {
        by_port.entry(l.port).or_default().insert(l.addr);
    }
    let list = by_port
        .keys()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if allowed.is_empty() {
        let message = if by_port.is_empty() {
            "no allow-list configured: no TCP port is listening".to_owned()
        } else {
            format!("no allow-list configured: listening on TCP ports {list}")
        };
        return vec![finding(
            "host.port.listening",
            CheckStatus::Pass,
            Severity::Info,
            message,
        )];
    }
    let unexpected: Vec<Finding> = by_port
        .iter()
        .filter(|(port, _)| !allowed.contains(port))
        .map(|(port, addrs)| {
            let local_only = addrs.iter().all(is_loopback);
            finding(
                format!("host.port.listening:{port}"),
                CheckStatus::Fail,
                if local_only {
                    Severity::Low
                } else {
                    Severity::Medium
                },
                format!(
                    "TCP port {port} is listening on {}{} but is not in allowed_ports",
                    join_addrs(addrs),
                    if local_only { " (loopback only)" } else { "" },
                ),
            )
        })
        .collect();
    if !unexpected.is_empty() {
        return unexpected;
    }
    let message = if by_port.is_empty() {
        "no TCP port is listening".to_owned()
    } else {
        format!("every listening TCP port is allowed: {list}")
    };
    vec![finding(
        "host.port.listening",
        CheckStatus::Pass,
        Severity::Info,
        message,
    )]
}

fn read_ports(allowed: &[u16]) -> Vec<Finding> {
    let mut listeners = Vec::new();
    let mut errors = Vec::new();
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        match std::fs::read_to_string(path) {
            Ok(text) => listeners.extend(parse_proc_net_tcp(&text)),
            Err(e) => errors.push(format!("{path}: {e}")),
        }
    }
    // Without IPv6 there is no tcp6 table; that alone is not a problem.
    if errors.len() == 2 {
        return vec![finding(
            "host.port.listening",
            CheckStatus::Error,
            Severity::Medium,
            format!(
                "could not read the TCP socket tables ({}); listening ports were not checked",
                errors.join("; ")
            ),
        )];
    }
    port_findings(&listeners, allowed)
}

// -------------------------------------------------------------- sysctls --

#[derive(Debug, Clone, Copy)]
enum Expect {
    Eq(i64),
    AtLeast(i64),
}

#[derive(Debug, Clone, Copy)]
struct Sysctl {
    key: &'static str,
    expect: Expect,
    severity: Severity,
    /// What the expected value gives, for the message.
    why: &'static str,
}

impl Sysctl {
    fn path(&self) -> String {
        format!("/proc/sys/{}", self.key.replace('.', "/"))
    }
}

const SYSCTLS: [Sysctl; 6] = [
    Sysctl {
        key: "kernel.randomize_va_space",
        expect: Expect::Eq(2),
        severity: Severity::Medium,
        why: "full address-space layout randomisation",
    },
    Sysctl {
        key: "kernel.kptr_restrict",
        expect: Expect::AtLeast(1),
        severity: Severity::Low,
        why: "kernel pointers hidden from unprivileged users",
    },
    Sysctl {
        key: "kernel.dmesg_restrict",
        expect: Expect::Eq(1),
        severity: Severity::Low,
        why: "kernel log readable only by privileged users",
    },
    Sysctl {
        key: "fs.protected_symlinks",
        expect: Expect::Eq(1),
        severity: Severity::Medium,
        why: "symlink attacks in sticky world-writable folders blocked",
    },
    Sysctl {
        key: "fs.protected_hardlinks",
        expect: Expect::Eq(1),
        severity: Severity::Medium,
        why: "hard links to files the user cannot write blocked",
    },
    Sysctl {
        key: "net.ipv4.ip_forward",
        expect: Expect::Eq(0),
        severity: Severity::Low,
        why: "the node does not route packets (expected to be 1 on routers and container hosts)",
    },
];

fn sysctl_finding(rule: &Sysctl, raw: Result<String, (String, io::Error)>) -> Finding {
    let id = format!("host.sysctl:{}", rule.key);
    let key = rule.key;
    let text = match raw {
        Ok(text) => text,
        Err((path, e)) => {
            return finding(
                id,
                CheckStatus::Error,
                rule.severity,
                format!("could not read {key} from {path}: {e}"),
            );
        }
    };
    let text = text.trim();
    let Ok(value) = text.parse::<i64>() else {
        return finding(
            id,
            CheckStatus::Error,
            rule.severity,
            format!("{key} has an unexpected value {text:?}; expected a number"),
        );
    };
    let (ok, wanted) = match rule.expect {
        Expect::Eq(want) => (value == want, format!("{want}")),
        Expect::AtLeast(min) => (value >= min, format!("{min} or more")),
    };
    if ok {
        finding(
            id,
            CheckStatus::Pass,
            rule.severity,
            format!("{key} = {value}: {}", rule.why),
        )
    } else {
        finding(
            id,
            CheckStatus::Fail,
            rule.severity,
            format!("{key} = {value}, expected {wanted} ({})", rule.why),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21385 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 22001 1 0000000000000000 100 0 0 10 0
   2: 0F02000A:0016 0202000A:C350 01 00000000:00000000 02:000A7E2F 00000000     0        0 23999 4 0000000000000000 20 4 30 10 -1
   3: garbage
   4: 00000000:0016 00000000:0000 0a 00000000:00000000 00:00000000 00000000     0        0 21001 1 0000000000000000 100 0 0 10 0
";

    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21003 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 21004 1 0000000000000000 100 0 0 10 0
";

    #[test]
    fn parses_listening_sockets_only() {
        let l = parse_proc_net_tcp(TCP);
        let ports: Vec<u16> = l.iter().map(|l| l.port).collect();
        // The established socket (state 01), the header and garbage are skipped.
        assert_eq!(ports, vec![8080, 3306, 22]);
        let l6 = parse_proc_net_tcp(TCP6);
        assert_eq!(
            l6.iter().map(|l| l.port).collect::<Vec<_>>(),
            vec![22, 8081]
        );
        assert_eq!(l6[0].addr, IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        assert!(parse_proc_net_tcp("").is_empty());
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn decodes_addresses_in_host_order() {
        let l = parse_proc_net_tcp(TCP);
        assert_eq!(l[0].addr, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(l[1].addr, IpAddr::V4(Ipv4Addr::LOCALHOST));
        let l6 = parse_proc_net_tcp(TCP6);
        assert_eq!(l6[1].addr, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn unexpected_ports_fail_one_by_one() {
        let mut l = parse_proc_net_tcp(TCP);
        l.extend(parse_proc_net_tcp(TCP6));
        let f = port_findings(&l, &[22]);
        let ids: Vec<&str> = f.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(
            ids,
            vec![
                "host.port.listening:3306",
                "host.port.listening:8080",
                "host.port.listening:8081"
            ]
        );
        assert!(f.iter().all(|f| f.status == CheckStatus::Fail));
        assert!(
            f[1].message
                .contains("TCP port 8080 is listening on 0.0.0.0")
        );
        assert!(f[1].message.contains("not in allowed_ports"));
        assert_eq!(f[1].severity, Severity::Medium);
        #[cfg(target_endian = "little")]
        {
            // Listening on loopback only is a lesser finding.
            assert_eq!(f[0].severity, Severity::Low);
            assert!(f[0].message.contains("loopback only"));
        }
    }

    #[test]
    fn all_allowed_passes_and_no_allow_list_reports() {
        let l = parse_proc_net_tcp(TCP);
        let f = port_findings(&l, &[22, 3306, 8080]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, CheckStatus::Pass);
        assert_eq!(
            f[0].message,
            "every listening TCP port is allowed: 22, 3306, 8080"
        );

        let f = port_findings(&l, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].status, f[0].severity),
            (CheckStatus::Pass, Severity::Info)
        );
        assert_eq!(
            f[0].message,
            "no allow-list configured: listening on TCP ports 22, 3306, 8080"
        );
    }

    #[test]
    fn sysctl_values_are_judged() {
        let aslr = &SYSCTLS[0];
        assert_eq!(aslr.path(), "/proc/sys/kernel/randomize_va_space");
        let ok = sysctl_finding(aslr, Ok("2\n".into()));
        assert_eq!(ok.check, "host.sysctl:kernel.randomize_va_space");
        assert_eq!(ok.status, CheckStatus::Pass);
        let bad = sysctl_finding(aslr, Ok("0\n".into()));
        assert_eq!(bad.status, CheckStatus::Fail);
        assert!(bad.message.contains("= 0, expected 2"), "{}", bad.message);

        let kptr = &SYSCTLS[1];
        assert_eq!(
            sysctl_finding(kptr, Ok("2".into())).status,
            CheckStatus::Pass
        );
        assert_eq!(
            sysctl_finding(kptr, Ok("0".into())).status,
            CheckStatus::Fail
        );

        let unreadable = sysctl_finding(
            kptr,
            Err((
                kptr.path(),
                io::Error::from(io::ErrorKind::PermissionDenied),
            )),
        );
        assert_eq!(unreadable.status, CheckStatus::Error);
        assert!(
            unreadable
                .message
                .contains("/proc/sys/kernel/kptr_restrict")
        );
        assert_eq!(
            sysctl_finding(kptr, Ok("x".into())).status,
            CheckStatus::Error
        );
    }

    #[test]
    fn file_modes_are_judged() {
        let shadow = FileRule {
            path: "/etc/shadow".into(),
            deny: WORLD_READ | GROUP_WRITE | WORLD_WRITE,
            severity: Severity::High,
        };
        assert_eq!(
            file_finding(&shadow, Ok(0o100640)).status,
            CheckStatus::Pass
        );
        let f = file_finding(&shadow, Ok(0o100644));
        assert_eq!(f.check, "host.file.mode:/etc/shadow");
        assert_eq!(f.status, CheckStatus::Fail);
        assert!(f.message.contains("mode 0644"), "{}", f.message);
        assert!(f.message.contains("world-readable"));
        assert!(f.message.contains("chmod o-r /etc/shadow"), "{}", f.message);

        let passwd = FileRule {
            path: "/etc/passwd".into(),
            deny: GROUP_WRITE | WORLD_WRITE,
            severity: Severity::High,
        };
        assert_eq!(file_finding(&passwd, Ok(0o644)).status, CheckStatus::Pass);
        let f = file_finding(&passwd, Ok(0o666));
        assert_eq!(f.status, CheckStatus::Fail);
        assert!(f.message.contains("group-writable and world-writable"));
        assert!(f.message.contains("chmod go-w"));

        let missing = file_finding(&passwd, Err(io::Error::from(io::ErrorKind::NotFound)));
        assert_eq!(missing.status, CheckStatus::Error);
        assert!(missing.message.contains("does not exist"));
    }

    #[tokio::test]
    async fn protected_paths_are_checked_and_missing_ones_error() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open.conf");
        std::fs::write(&open, "x").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o666)).unwrap();
        let missing = dir.path().join("missing.conf");
        let config = HostConnector {
            allowed_ports: vec![],
            protected_paths: vec![
                open.display().to_string(),
                missing.display().to_string(),
                "/etc/passwd".into(),
            ],
        };
        let rules = file_rules(&config);
        // Built-ins are not repeated.
        assert_eq!(rules.len(), 6);
        let findings = check(&config).await;
        let get = |p: &std::path::Path| {
            findings
                .iter()
                .find(|f| f.check == format!("host.file.mode:{}", p.display()))
                .unwrap()
        };
        assert_eq!(get(&open).status, CheckStatus::Fail);
        assert_eq!(get(&missing).status, CheckStatus::Error);
        assert!(get(&missing).message.contains("does not exist"));
    }

    #[tokio::test]
    async fn host_dry_run_on_this_machine() {
        let started = std::time::Instant::now();
        let findings = check(&HostConnector {
            allowed_ports: vec![],
            protected_paths: vec![],
        })
        .await;
        assert!(started.elapsed() < std::time::Duration::from_secs(15));
        for prefix in ["host.file.mode:", "host.port.listening", "host.sysctl:"] {
            assert!(
                findings.iter().any(|f| f.check.starts_with(prefix)),
                "no {prefix} finding in {findings:#?}"
            );
        }
        assert!(
            findings
                .iter()
                .any(|f| f.check == "host.file.mode:/etc/passwd")
        );
        assert_eq!(
            findings
                .iter()
                .filter(|f| f.check.starts_with("host.sysctl:"))
                .count(),
            SYSCTLS.len()
        );
    }
}
