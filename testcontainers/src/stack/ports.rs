//! Host ports for a rehearsal stack's published services.
//!
//! A stack's ports are fixed when it is made: its config and compose.env name them, and every
//! recreate (the tool's, the pipeline's `compose up`) must publish the same ones. They were
//! once asked of the kernel (`bind 127.0.0.1:0`), which answers from the ephemeral range, the
//! same range the engine gives out for `127.0.0.1::PORT` publications (a rescue's throwaway
//! Mongo, the Mongo test containers). Between the pick and compose's `up`, another test's
//! throwaway could be given the same port ("port is already allocated": CI, stop 30).
//!
//! So ports are drawn at random below the ephemeral range, where neither the kernel nor the
//! engine hands out ports on its own, and each is checked free by binding it. Two stacks can
//! still draw the same port in the same second; [`is_port_taken`] lets `up` see that and try
//! again with new ports.

use std::net::TcpListener;

/// Where the kernel's (and the engine's) automatic ports start when /proc cannot say.
const EPHEMERAL_LOW_DEFAULT: u16 = 32768;
/// The lowest port drawn: above the well-known and most registered services' ports.
const FLOOR: u16 = 20000;

/// The low end of the kernel's ephemeral range (`net.ipv4.ip_local_port_range`).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(EPHEMERAL_LOW_DEFAULT)
}

/// A port of 127.0.0.1 free right now, drawn at random below the ephemeral range (or from it
/// when the range starts too low to leave room below it).
pub(crate) fn free_loopback_port() -> Result<u16, String> {
    let high = ephemeral_low();
    let (low, high) = if high > FLOOR + 1000 {
        (FLOOR, high)
    } else {
        (FLOOR, u16::MAX)
    };
    for _ in 0..200 {
        let mut b = [0u8; 2];
        getrandom::fill(&mut b).map_err(|e| format!("no random source for a port: {e}"))?;
        let port = low + u16::from_le_bytes(b) % (high - low);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // A crowded range: let the kernel pick (the race this module avoids is then possible,
    // and `up`'s retry covers it).
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port on 127.0.0.1: {e}"))
}

/// Whether `up` failed because a host port it published was taken after it was picked (the
/// engine's "port is already allocated", or the proxy's "address already in use").
pub(crate) fn is_port_taken(err: &str) -> bool {
    err.contains("port is already allocated") || err.contains("address already in use")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_drawn_below_the_ephemeral_range_and_are_free() {
        let high = ephemeral_low();
        for _ in 0..50 {
            let p = free_loopback_port().unwrap();
            assert!(TcpListener::bind(("127.0.0.1", p)).is_ok(), "{p} not free");
            if high > FLOOR + 1000 {
                assert!((FLOOR..high).contains(&p), "{p} outside {FLOOR}..{high}");
            }
        }
    }

    #[test]
    fn the_engines_two_port_refusals_are_recognised_and_nothing_else() {
        assert!(is_port_taken(
            "ERROR: for core  Cannot start service core: driver failed programming external \
             connectivity on endpoint x: Bind for 127.0.0.1:40363 failed: port is already allocated"
        ));
        assert!(is_port_taken(
            "Error starting userland proxy: listen tcp4 127.0.0.1:40363: bind: address already in use"
        ));
        assert!(!is_port_taken(
            "docker-compose up -d: exit status: 1: no such image"
        ));
    }
}
