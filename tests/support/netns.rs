//! A network namespace joined to this one by a veth pair, for tests that
//! need a peer which can vanish without a FIN or a reset: run the peer
//! inside the namespace ([`Netns::command`]), then [`Netns::cut`] its end of
//! the pair, and nothing it sends or is sent gets through any more.
//!
//! Declare it next to `mod support;` with
//! `#[path = "support/netns.rs"] mod netns;`. Needs root and the `ip`
//! command (iproute2). The namespace and both ends of the pair are removed
//! on drop.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

/// A namespace `name` with the veth end `ns_if` (address `ns_ip`/30), joined
/// to `host_if` (address `host_ip`/30) in this namespace.
#[derive(Debug)]
pub struct Netns {
    /// The namespace's name (`ip netns exec NAME ...`).
    pub name: String,
    /// The end of the pair in this (the test's) namespace.
    pub host_if: String,
    /// The end of the pair inside the namespace.
    pub ns_if: String,
    /// The address of `host_if`: what the namespace reaches this side by.
    pub host_ip: Ipv4Addr,
    /// The address of `ns_if`: the peer's address as this side sees it.
    pub ns_ip: Ipv4Addr,
}

/// Runs `ip ARGS`; the error says what failed and what `ip` printed.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// Creates the namespace and the pair, both ends up, named after `tag`
    /// and this process's id (so parallel test binaries do not collide),
    /// with addresses in 10.213.0.0/16. `Err` says why it could not (no
    /// `ip`, not root, no namespace support); what was created is removed.
    pub fn create(tag: &str) -> Result<Netns, String> {
        let id = std::process::id();
        // Interface names are at most 15 bytes.
        let short = id % 1_000_000;
        let subnet = (id % 64) as u8 * 4;
        let netns = Netns {
            name: format!("syncnet-{tag}-{id}"),
            host_if: format!("sn{short}h"),
            ns_if: format!("sn{short}n"),
            host_ip: Ipv4Addr::new(10, 213, (id / 64 % 250) as u8, subnet + 1),
            ns_ip: Ipv4Addr::new(10, 213, (id / 64 % 250) as u8, subnet + 2),
        };
        ip(&["netns", "add", &netns.name])?;
        // From here on, drop removes whatever was created.
        let host_cidr = format!("{}/30", netns.host_ip);
        let ns_cidr = format!("{}/30", netns.ns_ip);
        ip(&[
            "link",
            "add",
            &netns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &netns.ns_if,
            "netns",
            &netns.name,
        ])?;
        ip(&["addr", "add", &host_cidr, "dev", &netns.host_if])?;
        ip(&["link", "set", &netns.host_if, "up"])?;
        ip(&[
            "-n",
            &netns.name,
            "addr",
            "add",
            &ns_cidr,
            "dev",
            &netns.ns_if,
        ])?;
        ip(&["-n", &netns.name, "link", "set", &netns.ns_if, "up"])?;
        ip(&["-n", &netns.name, "link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Takes the namespace's end of the pair down: from now on no packet
    /// passes between the namespace and this side, in either direction, and
    /// no FIN or reset from a process inside reaches this side.
    pub fn cut(&self) -> Result<(), String> {
        ip(&["-n", &self.name, "link", "set", &self.ns_if, "down"])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its end of the pair, and with it
        // this end; the second command is for a pair left half-made.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
