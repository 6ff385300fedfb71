//! A private network namespace joined to this one by a veth pair, for
//! tests that make a server vanish without a FIN or a RST: taking the
//! namespace's end of the pair down drops every packet silently. Needs root
//! (as CI runs) and `ip` from iproute2; never touches the shared server or
//! this machine's other interfaces.

use std::process::Command;

/// Runs `args` (program first) and panics with its output when it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair: `host_ip` on this side,
/// `ns_ip` inside. Deleted when dropped (drop what runs in it first).
pub struct Netns {
    /// The namespace's name, for `ip netns exec`.
    pub name: String,
    host_if: String,
    ns_if: String,
    /// The address servers inside the namespace listen on.
    pub ns_ip: String,
}

impl Netns {
    /// Creates the namespace and its link, both up.
    pub fn new() -> Netns {
        let uid = Command::new("id").arg("-u").output().expect("id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test needs root to create a network namespace (CI runs as root)"
        );
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let octet = u8::from_str_radix(&tag[..2], 16).unwrap_or(1) % 250 + 1;
        let ns = Netns {
            name: format!("pgho{tag}"),
            host_if: format!("vh{tag}"),
            ns_if: format!("vn{tag}"),
            ns_ip: format!("10.231.{octet}.2"),
        };
        let host_ip = format!("10.231.{octet}.1/30");
        let ns_ip = format!("{}/30", ns.ns_ip);
        run(&["ip", "netns", "add", &ns.name]);
        run(&[
            "ip",
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &ns.ns_if,
        ]);
        run(&["ip", "link", "set", &ns.ns_if, "netns", &ns.name]);
        run(&["ip", "addr", "add", &host_ip, "dev", &ns.host_if]);
        run(&["ip", "link", "set", &ns.host_if, "up"]);
        ns.exec(&["ip", "addr", "add", &ns_ip, "dev", &ns.ns_if]);
        ns.exec(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The `pg_hba.conf` line that lets this side connect to servers inside.
    pub const HBA: &'static str = "host all all 10.231.0.0/16 trust";

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) {
        let mut all = vec!["ip", "netns", "exec", &self.name];
        all.extend_from_slice(args);
        run(&all);
    }

    /// Drops every packet from now on: no FIN, no RST, nothing.
    pub fn cut(&self) {
        self.exec(&["ip", "link", "set", &self.ns_if, "down"]);
    }

    /// Lets packets through again.
    pub fn restore(&self) {
        self.exec(&["ip", "link", "set", &self.ns_if, "up"]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
