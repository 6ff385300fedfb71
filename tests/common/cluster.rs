//! Throwaway PostgreSQL clusters for tests that stop, kill or restart the
//! server: initdb + pg_ctl from the installed PostgreSQL, in a temporary
//! folder, on a free port. The shared server is never touched.
//!
//! PostgreSQL refuses to run as root, so when the tests run as root the
//! commands run as the `postgres` user.

use std::path::PathBuf;
use std::process::Command;

/// A private cluster, stopped and deleted when dropped.
pub struct Cluster {
    root: PathBuf,
    pub port: u16,
    bindir: PathBuf,
    as_postgres: bool,
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
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.pg_ctl_start();
        cluster
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
        };
        let port = primary.port.to_string();
        standby.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                &standby.data(),
                "-R",
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",
            ],
        );
        standby.pg_ctl_start();
        standby
    }

    /// Promotes this standby to a primary and waits until it accepts writes.
    pub fn promote(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-w", "promote"]);
    }

    fn data(&self) -> String {
        self.root.join("data").to_string_lossy().into_owned()
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bindir.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
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

    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.root.to_string_lossy()
        );
        let log = self.root.join("server.log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
    }

    /// The admin URL of this cluster.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
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
        let exe = self.bindir.join("pg_ctl");
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
