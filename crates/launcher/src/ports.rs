//! Ports for the processes a stack starts.

/// A port for a process the stack starts, handed out once per launching process and from a
/// range no other socket is given by the kernel.
///
/// The process binds it only later (the simulator several seconds later, once every service is
/// ready), and the port must still be free then. A port picked with `bind(127.0.0.1:0)` and
/// released is not: the kernel gives every listener that binds port 0 (each in-process test's
/// ingress, health listeners, warehouse, wiremock, proxy, all in parallel) one of the same
/// ~7,000 ports of the ephemeral range, so one of them could take it. The process then exited
/// with "Address already in use" while the harness, polling the port, was answered by that
/// stranger: a health listener's `/healthz` said ready, and its empty 404 to `/_sim/orders`
/// failed as "EOF while parsing a value" (issue 11). So the ports come from outside
/// `ip_local_port_range`, where neither port-0 binds nor outgoing connections land, each one
/// once, from a random starting point (other processes on the machine start elsewhere),
/// skipping any port something listens on.
pub fn free_port() -> Result<u16, crate::LaunchError> {
    static NEXT: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    let (low, high) = port_range();
    let size = high - low;
    let mut next = NEXT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = *next.get_or_insert_with(|| {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        (random % u64::from(size.max(1))) as u32
    });
    for i in 0..size {
        let port = (low + (start + i) % size) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            *next = Some((start + i + 1) % size);
            return Ok(port);
        }
    }
    Err(crate::LaunchError::NoFreePort { low, high })
}

/// The larger span of unprivileged ports outside the kernel's ephemeral range (10000..32768
/// with Linux's default 32768-60999).
pub fn port_range() -> (u32, u32) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(str::parse::<u32>);
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999));
    let below = (10_000, ephemeral.0.max(10_000));
    let above = ((ephemeral.1 + 1).max(10_000), 65_536);
    if below.1 - below.0 >= above.1 - above.0 {
        below
    } else {
        above
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn ports_are_handed_out_once_and_never_where_port_0_binds_land() {
        let (low, high) = port_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "each port once");
        for port in ports {
            assert!((low..high).contains(&u32::from(port)), "{port} outside {low}..{high}");
        }
        for _ in 0..1_000 {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let taken = u32::from(taken.local_addr().unwrap().port());
            assert!(!(low..high).contains(&taken), "a port-0 bind got {taken}");
        }
    }
}
