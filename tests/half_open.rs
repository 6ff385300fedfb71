//! Half-open connections: the server's network vanishes without a FIN or a
//! RST (its link goes down), and the store notices through its keepalive and
//! TCP user timeout settings instead of waiting forever.
//!
//! The server is a private cluster inside its own network namespace, joined
//! to this one by a veth pair; taking the namespace's end of the pair down
//! drops every packet silently. This needs root (as CI runs), and never
//! touches the shared server or this machine's other interfaces.

use diesel::sql_types::Integer;
use diesel_async::RunQueryDsl;
use pronghorn_db::{Configuration, DbConfig, HealthStore, PgStore, PoolSettings};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn run(args: &[&str]) {
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

fn bindir() -> String {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .expect("pg_config");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A cluster listening only inside its own network namespace.
struct IsolatedServer {
    ns: String,
    host_if: String,
    ns_if: String,
    server_ip: String,
    root: PathBuf,
}

impl IsolatedServer {
    fn start() -> IsolatedServer {
        let uid = Command::new("id").arg("-u").output().expect("id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test needs root to create a network namespace (CI runs as root)"
        );
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let octet = u8::from_str_radix(&tag[..2], 16).unwrap_or(1) % 250 + 1;
        let s = IsolatedServer {
            ns: format!("pgho{tag}"),
            host_if: format!("vh{tag}"),
            ns_if: format!("vn{tag}"),
            server_ip: format!("10.231.{octet}.2"),
            root: std::env::temp_dir().join(format!("pronghorn-netns-{tag}")),
        };
        let host_ip = format!("10.231.{octet}.1/30");
        let ns_ip = format!("{}/30", s.server_ip);
        run(&["ip", "netns", "add", &s.ns]);
        run(&[
            "ip", "link", "add", &s.host_if, "type", "veth", "peer", "name", &s.ns_if,
        ]);
        run(&["ip", "link", "set", &s.ns_if, "netns", &s.ns]);
        run(&["ip", "addr", "add", &host_ip, "dev", &s.host_if]);
        run(&["ip", "link", "set", &s.host_if, "up"]);
        run(&[
            "ip", "netns", "exec", &s.ns, "ip", "addr", "add", &ns_ip, "dev", &s.ns_if,
        ]);
        run(&[
            "ip", "netns", "exec", &s.ns, "ip", "link", "set", &s.ns_if, "up",
        ]);
        run(&[
            "ip", "netns", "exec", &s.ns, "ip", "link", "set", "lo", "up",
        ]);

        std::fs::create_dir_all(&s.root).expect("folder");
        run(&["chown", "postgres:postgres", &s.root.to_string_lossy()]);
        let bin = bindir();
        let data = s.root.join("data").to_string_lossy().into_owned();
        let pg = |tool: &str| format!("{bin}/{tool}");
        run(&[
            "runuser",
            "-u",
            "postgres",
            "--",
            &pg("initdb"),
            "-D",
            &data,
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        ]);
        let hba = s.root.join("data/pg_hba.conf");
        let mut rules = std::fs::read_to_string(&hba).expect("pg_hba");
        rules.push_str("\nhost all all 10.231.0.0/16 trust\n");
        std::fs::write(&hba, rules).expect("pg_hba");
        let opts = format!(
            "-p 5432 -k {} -c listen_addresses={} -c fsync=off",
            s.root.to_string_lossy(),
            s.server_ip
        );
        let log = s.root.join("server.log").to_string_lossy().into_owned();
        run(&[
            "ip",
            "netns",
            "exec",
            &s.ns,
            "runuser",
            "-u",
            "postgres",
            "--",
            &pg("pg_ctl"),
            "-D",
            &data,
            "-o",
            &opts,
            "-l",
            &log,
            "-w",
            "start",
        ]);
        s
    }

    /// Drops every packet from now on: no FIN, no RST, nothing.
    fn vanish(&self) {
        self.set_link("down");
    }

    fn reappear(&self) {
        self.set_link("up");
    }

    /// Sets the namespace's end of the veth pair `up` or `down`.
    fn set_link(&self, state: &str) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "ip",
            "link",
            "set",
            &self.ns_if,
            state,
        ]);
    }
}

impl Drop for IsolatedServer {
    fn drop(&mut self) {
        let data = self.root.join("data").to_string_lossy().into_owned();
        let pg_ctl = format!("{}/pg_ctl", bindir());
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "runuser",
                "-u",
                "postgres",
                "--",
                &pg_ctl,
                "-D",
                &data,
                "-m",
                "immediate",
                "-w",
                "stop",
            ])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).output();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[derive(diesel::QueryableByName)]
struct One {
    #[diesel(sql_type = Integer)]
    n: i32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_server_is_detected_not_waited_on() {
    let server = IsolatedServer::start();
    let url = format!(
        "postgres://postgres@{}:5432/postgres?sslmode=disable",
        server.server_ip
    );
    let config = match DbConfig::from_lookup(|k| match k {
        "DB_CONNECTION_STRING" => Some(url.clone()),
        "DB_KEEPALIVES_IDLE" => Some("1000".into()),
        "DB_TCP_USER_TIMEOUT" => Some("2000".into()),
        _ => None,
    }) {
        Ok(Configuration::Configured(c)) => c.with_pool(PoolSettings {
            min_idle: 0,
            max_size: 2,
            idle_timeout: Duration::from_secs(60),
            connection_timeout: Duration::from_secs(2),
        }),
        other => panic!("{other:?}"),
    };
    let store = std::sync::Arc::new(PgStore::new(config).await.expect("store"));
    store
        .server_info()
        .await
        .expect("the isolated server answers");

    // A long query is in flight when the network vanishes: nothing is
    // unacknowledged, so only keepalives can notice.
    let s = store.clone();
    let in_flight = tokio::spawn(async move {
        let started = Instant::now();
        let mut conn = s.conn().await.expect("conn");
        let r = diesel::sql_query("SELECT 1 AS n FROM pg_sleep(120)")
            .get_result::<One>(&mut *conn)
            .await;
        (r.map(|o| o.n), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.vanish();

    // A new call sends a query that is never acknowledged: the TCP user
    // timeout ends it.
    let started = Instant::now();
    let err = store.server_info().await.expect_err("the server is gone");
    let took = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(took <= Duration::from_secs(6), "a new call took {took:?}");

    let (result, waited) = tokio::time::timeout(Duration::from_secs(30), in_flight)
        .await
        .expect("the in-flight query was not left waiting")
        .expect("task");
    assert!(result.is_err(), "the in-flight query cannot have succeeded");
    assert!(
        waited <= Duration::from_secs(15),
        "noticed after {waited:?}"
    );

    // The network comes back: the same store serves again.
    server.reappear();
    let back = Instant::now();
    let mut served = false;
    while back.elapsed() < Duration::from_secs(20) {
        if store.server_info().await.is_ok() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        served,
        "the store did not serve again after the network returned"
    );
    eprintln!("half-open: new call failed after {took:?}, in-flight query after {waited:?}");
}
