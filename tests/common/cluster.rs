//! Throwaway PostgreSQL clusters for tests that stop, kill or restart the
//! server: initdb + pg_ctl from the installed PostgreSQL, in a temporary
//! folder, on a free port. The shared server is never touched.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! commands run as the `postgres` user.
//!
//! A cluster may also run inside a [`Netns`], listening only on the
//! namespace's address, so that a test can cut it off.

use super::netns::Netns;
use std::path::PathBuf;
use std::process::Command;

/// A private cluster, stopped and deleted when dropped.
pub struct Cluster {
    root: PathBuf,
    pub port: u16,
    bindir: PathBuf,
    as_postgres: bool,
    /// The address it listens on (and `url()` names).
    host: String,
    /// The network namespace it runs in, if not this one.
    netns: Option<String>,
}

fn bindir() -> PathBuf {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config is installed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A new, empty folder under the temporary directory, named `prefix-<uuid>`,
/// owned by `postgres` when the cluster runs as `postgres`.
fn new_folder(prefix: &str, as_postgres: bool) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).expect("cluster folder");
    if as_postgres {
        let ok = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&root)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown of {} failed", root.display());
    }
    root
}

impl Cluster {
    /// Creates and starts a cluster with trust authentication.
    pub fn start() -> Cluster {
        let as_postgres = is_root();
        let root = new_folder("pronghorn-cluster", as_postgres);
        let cluster = Cluster {
            port: free_port(),
            bindir: bindir(),
            as_postgres,
            root,
            host: "127.0.0.1".to_owned(),
            netns: None,
        };
        cluster.initdb();
        cluster.pg_ctl_start();
        cluster
    }

    /// Creates and starts a cluster inside `ns`, reachable from here only
    /// through the namespace's link (on port 5432 of `ns.ns_ip`).
    pub fn start_in(ns: &Netns) -> Cluster {
        let as_postgres = is_root();
        let root = new_folder("pronghorn-netns", as_postgres);
        let cluster = Cluster {
            port: 5432,
            bindir: bindir(),
            as_postgres,
            root,
            host: ns.ns_ip.clone(),
            netns: Some(ns.name.clone()),
        };
        cluster.initdb();
        cluster.allow_from_host();
        cluster.pg_ctl_start();
        cluster
    }

    fn initdb(&self) {
        self.run(
            "initdb",
            &[
                "-D",
                &self.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
    }

    /// Lets this side of a [`Netns`] connect (the cluster runs inside it).
    fn allow_from_host(&self) {
        let hba = self.root.join("data/pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        rules.push('\n');
        rules.push_str(Netns::HBA);
        rules.push('\n');
        std::fs::write(&hba, rules).expect("pg_hba.conf");
    }

    /// Creates and starts a streaming standby of `primary`
    /// (`pg_basebackup -R`), on its own free port.
    pub fn start_standby(primary: &Cluster) -> Cluster {
        let root = new_folder("pronghorn-standby", primary.as_postgres);
        let standby = Cluster {
            port: free_port(),
            bindir: primary.bindir.clone(),
            as_postgres: primary.as_postgres,
            root,
            host: "127.0.0.1".to_owned(),
            netns: None,
        };
        standby.base_backup(primary, "127.0.0.1");
        standby.pg_ctl_start();
        standby
    }

    /// Creates and starts a streaming standby of `primary` inside `ns`
    /// (on port 5432 of `ns.ns_ip`). It streams from the primary over the
    /// primary's Unix socket, which no network namespace stops: cutting
    /// `ns` off cuts clients off the standby, not its replication.
    pub fn start_standby_in(primary: &Cluster, ns: &Netns) -> Cluster {
        assert!(
            primary.netns.is_none(),
            "the primary runs in this namespace"
        );
        let root = new_folder("pronghorn-standby", primary.as_postgres);
        let standby = Cluster {
            port: 5432,
            bindir: primary.bindir.clone(),
            as_postgres: primary.as_postgres,
            root,
            host: ns.ns_ip.clone(),
            netns: Some(ns.name.clone()),
        };
        standby.base_backup(primary, &primary.root.to_string_lossy());
        standby.allow_from_host();
        standby.pg_ctl_start();
        standby
    }

    /// `pg_basebackup -R` of `primary`, reached at `host` (an address or
    /// the primary's socket folder), which the standby then streams from.
    fn base_backup(&self, primary: &Cluster, host: &str) {
        let port = primary.port.to_string();
        self.run(
            "pg_basebackup",
            &[
                "-h",
                host,
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &self.data(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        );
    }

    /// Promotes this standby to a primary and waits until it accepts writes.
    pub fn promote(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    fn data(&self) -> String {
        self.root.join("data").to_string_lossy().into_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `tool` from the PostgreSQL binaries, as `postgres` when run as root,
    /// inside the cluster's network namespace when it has one.
    fn command(&self, tool: &str) -> Command {
        let mut argv: Vec<std::ffi::OsString> = Vec::new();
        if let Some(ns) = &self.netns {
            argv.extend(["ip", "netns", "exec", ns.as_str()].map(Into::into));
        }
        if self.as_postgres {
            argv.extend(["runuser", "-u", "postgres", "--"].map(Into::into));
        }
        argv.push(self.bindir.join(tool).into());
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        cmd
    }

    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses={} -c fsync=off -c max_connections=200",
            self.port,
            self.root.to_string_lossy(),
            self.host
        );
        let log = self.root.join("server.log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// The admin URL of this cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@{}:{}/postgres", self.host, self.port)
    }

    /// Stops the server at once (`-m immediate`: no clean shutdown, as a crash).
    pub fn kill(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Stops the server cleanly (`-m fast`).
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", data.as_str(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
