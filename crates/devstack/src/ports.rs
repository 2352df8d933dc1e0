use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A port that was free a moment ago on 127.0.0.1, picked at random below
/// the kernel's ephemeral range: the ports the kernel hands to outgoing
/// connections and to listeners on port 0 come from that range, so one of
/// them cannot take the port between this pick and the server's bind.
pub fn free_port() -> std::io::Result<u16> {
    let (low, high) = picking_range();
    for _ in 0..PICK_TRIES {
        let port = low + (random() % u64::from(high - low)) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

const PICK_TRIES: usize = 200;

/// Times a server that could not bind its picked port is started again on
/// newly picked ones (a picked port can still be taken before the bind).
pub const PORT_PICK_ATTEMPTS: u32 = 3;
/// The lowest port picked: above the well-known and most registered
/// services' ports.
const PICK_FLOOR: u16 = 10_000;

/// Ports below the ephemeral range (`net.ipv4.ip_local_port_range`,
/// 32768-60999 by default), at least a few thousand of them.
fn picking_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_low >= PICK_FLOOR + 4_096 {
        (PICK_FLOOR, ephemeral_low)
    } else {
        (PICK_FLOOR, 32_768)
    }
}

fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// Wait until something accepts TCP connections on `port`.
pub async fn wait_for_port(port: u16, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if start.elapsed() > timeout {
            anyhow::bail!("nothing listens on 127.0.0.1:{port} after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picked_ports_are_free_and_below_the_ephemeral_range() {
        let (low, high) = picking_range();
        assert!(low < high, "{low}..{high}");
        for _ in 0..50 {
            let port = free_port().unwrap();
            assert!((low..high).contains(&port), "{port} not in {low}..{high}");
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }
}
