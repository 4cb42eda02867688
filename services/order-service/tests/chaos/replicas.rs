//! What the replica rows of the chaos suite run on: a PostgreSQL server of
//! their own (initdb + pg_ctl from the installed server binaries, in a temp
//! folder, on a free port), so that killing it harms nothing else, and
//! nginx in front of the replicas with the project's own configuration
//! (`deploy/nginx/replicas.conf.in`).

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// The PostgreSQL server binaries: `PG_BIN`, else Debian's newest, else `$PATH`.
fn pg_bin(tool: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Path::new(&dir).join(tool);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(Result::ok)
                .map(|d| d.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .map_or_else(|| PathBuf::from(tool), |bin| bin.join(tool))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// A command as the server's owner: PostgreSQL refuses to run as root, so
/// as root it runs as `postgres`.
fn as_owner(program: PathBuf) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn uid_of(user: &str) -> Option<u32> {
    let out = Command::new("id").args(["-u", user]).output().ok()?;
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

pub struct PrivatePg {
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PrivatePg {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            let uid = uid_of("postgres").expect("a postgres user to run the server as");
            chown(dir.path(), Some(uid), None).unwrap();
        }
        let data = dir.path().join("data");
        let status = as_owner(pg_bin("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs (PostgreSQL's server binaries; PG_BIN)");
        assert!(status.success(), "initdb failed");
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.start_server();
        pg
    }

    /// `pg_ctl -D <data> <args>` as the server's owner; answers whether
    /// it succeeded.
    fn pg_ctl(&self, args: &[&str]) -> bool {
        as_owner(pg_bin("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(args)
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }

    /// Starts the server (again, after [`Self::stop_immediately`]).
    pub fn start_server(&self) {
        // fsync off: a test server, and a killed server (not a lost
        // machine) keeps every write it acknowledged either way.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        let log = log.to_str().unwrap();
        let started = self.pg_ctl(&["-w", "-t", "30", "-o", &options, "-l", log, "start"]);
        assert!(started, "the private PostgreSQL started");
    }

    /// As a crash would: no checkpoint, no goodbye to the clients.
    pub fn stop_immediately(&self) {
        let stopped = self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
        assert!(stopped, "the private PostgreSQL stopped");
    }

    /// Every process of the server: the postmaster (the first line of its
    /// pid file) and its children.
    fn processes(&self) -> Vec<String> {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let text = std::fs::read_to_string(pid_file).expect("the server is running");
        let postmaster = text.lines().next().unwrap().trim().to_owned();
        let mut pids = vec![postmaster.clone()];
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid …; comm may hold spaces, not ')'.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            if after.split_whitespace().nth(1) == Some(postmaster.as_str()) {
                pids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        pids
    }

    /// Every server process stopped (SIGSTOP) at once: a frozen host. What
    /// clients sent it meanwhile waits in its sockets.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// The server resumes where it stopped, and works through what waited.
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .args(self.processes())
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} the server's processes");
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub async fn create_database(&self, name: &str) {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        actix_rt::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.pg_ctl(&["-m", "immediate", "stop"]);
    }
}

/// nginx on a free port in front of `upstreams`.
pub struct Balancer {
    child: Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub fn start(upstreams: &[u16]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
            .collect();
        let config = include_str!("../../../../deploy/nginx/replicas.conf.in")
            .replace("@PREFIX@", &dir.path().display().to_string())
            .replace("@PORT@", &port.to_string())
            .replace("@UPSTREAMS@", servers.trim_end())
            .replace("@SSL@", "")
            .replace("@TLS@", "")
            .replace("@USER@", if running_as_root() { "user root;" } else { "" });
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).unwrap();
        let nginx = std::env::var("NGINX").unwrap_or_else(|_| {
            let debian = "/usr/sbin/nginx";
            if Path::new(debian).exists() {
                debian
            } else {
                "nginx"
            }
            .to_owned()
        });
        let child = Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx runs (scripts/test-deps.sh installs it)");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url,
            _dir: dir,
        }
    }
}

impl Drop for Balancer {
    /// SIGTERM: the master takes its worker with it (SIGKILL would leave
    /// the worker listening).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}
