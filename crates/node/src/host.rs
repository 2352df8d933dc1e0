//! Facts about this machine, read from the kernel (no external commands).

use ritma_protocol::HostFacts;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

pub fn host_facts(hostname: &str) -> HostFacts {
    let memory_bytes = read("/proc/meminfo")
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024);
    let uptime_secs = read("/proc/uptime")
        .and_then(|u| {
            u.split_whitespace()
                .next()
                .and_then(|s| s.parse::<f64>().ok())
        })
        .map_or(0, |s| s as u64);
    let mut kernel = read("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel.truncate(128);
    HostFacts {
        hostname: hostname.chars().take(253).collect(),
        os: std::env::consts::OS.into(),
        kernel,
        arch: std::env::consts::ARCH.into(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes,
        uptime_secs,
    }
}

pub fn hostname() -> String {
    read("/proc/sys/kernel/hostname")
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}
