//! What the benches share: options (quick mode included), memory and fd readings from
//! `/proc`, and a real roomcast server started in a temporary directory.
//!
//! Each bench compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    str::FromStr,
};

/// Whether to run small and fast (CI): `-- --quick`, or `ROOMCAST_BENCH_QUICK=1`.
pub fn quick() -> bool {
    std::env::args().any(|a| a == "--quick")
        || std::env::var("ROOMCAST_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Whether `--name` was given.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The value after `--name`, or `default`. A value that does not parse stops the bench, so
/// a typo never silently measures the default.
pub fn arg<T: FromStr>(name: &str, default: T) -> T {
    match std::env::args().skip_while(|a| a != name).nth(1) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} {v}: not a valid value");
            std::process::exit(2)
        }),
    }
}

/// The `field:` line of a `/proc` key-value file (values in kB), in bytes.
fn proc_kb(path: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {field} line in {path}"))
        * 1024
}

/// `/proc/self` or `/proc/PID`.
fn proc_dir(pid: Option<u32>) -> String {
    pid.map_or_else(|| "/proc/self".to_owned(), |p| format!("/proc/{p}"))
}

/// Proportional set size, bytes: every page the process maps, shared pages divided among
/// their users. Unlike a heap counter it includes allocator arenas and freed-but-kept pages.
pub fn pss(pid: Option<u32>) -> u64 {
    proc_kb(&format!("{}/smaps_rollup", proc_dir(pid)), "Pss:")
}

/// Resident set size, bytes.
pub fn rss(pid: Option<u32>) -> u64 {
    proc_kb(&format!("{}/smaps_rollup", proc_dir(pid)), "Rss:")
}

/// Open file descriptors (sockets included).
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap_or_else(|e| panic!("listing /proc/{pid}/fd: {e}"))
        .count()
}

/// User + system CPU time of a process, seconds.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`; utime and stime are the 14th and 15th overall.
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|s| s.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// The process and every process whose parent it is (nginx's master and its workers), for
/// figures that count a server as a whole.
pub fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`: the parent is the second field after the `(comm)`.
        let ppid = stat
            .rsplit_once(") ")
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// PSS of several processes, bytes (each shared page is counted once in all, split among
/// its users).
pub fn pss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| pss(Some(p))).sum()
}

/// PSS of those of `pids` still running, bytes: a process gone (a server restarting)
/// counts nothing instead of stopping the bench.
pub fn pss_sum_present(pids: &[u32]) -> u64 {
    let kb = |pid: &u32| {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let line = text.lines().find_map(|l| l.strip_prefix("Pss:"))?;
        line.trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    pids.iter().filter_map(kb).sum::<u64>() * 1024
}

/// RSS of several processes, bytes.
pub fn rss_sum(pids: &[u32]) -> u64 {
    pids.iter().map(|&p| rss(Some(p))).sum()
}

/// User + system CPU time of several processes, seconds.
pub fn cpu_secs_sum(pids: &[u32]) -> f64 {
    pids.iter().map(|&p| cpu_secs(p)).sum()
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// Every PostgreSQL process on the machine (the server and its backends): a cluster's
/// database, counted apart from the nodes.
pub fn postgres_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .collect()
}

/// The PostgreSQL database a bench may create schemas in: `ROOMCAST_BENCH_POSTGRES`, or the
/// local server's `postgres` database.
pub fn bench_postgres() -> String {
    std::env::var("ROOMCAST_BENCH_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Drops the schema a URL from `Db::create_test_schema` points at.
pub async fn drop_schema(admin: &str, url: &str) {
    use sqlx::Connection;
    let Some(schema) = url.rsplit("search_path%3D").next() else {
        return;
    };
    if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut conn)
            .await;
    }
}

/// A roomcast server (the real binary) on a free port with its own temporary data
/// directory; killed when dropped.
pub struct Server {
    child: Child,
    /// Its process id, for `/proc`.
    pub pid: u32,
    /// The port it listens on.
    pub port: u16,
    /// The bench's own settings, kept for a restart.
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server listening on `host` with the bench's settings plus `env`
    /// (`ROOMCAST__…` overrides; the bench's own environment is inherited too). The binary
    /// is this build's, or `ROOMCAST_BENCH_BIN` to measure another build.
    pub fn start(host: &str, env: &[(&str, String)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        env.insert(0, ("ROOMCAST__SERVER__HOST".to_owned(), host.to_owned()));
        let (child, port) = spawn(dir.path(), 0, &env);
        Self {
            pid: child.id(),
            child,
            port,
            env,
            _dir: dir,
        }
    }

    /// Stops the server as an operator would (SIGTERM, then waits for it to exit) and
    /// starts it again on the same port and data. Returns when the new process says its
    /// port; the seconds the old one took to exit come back.
    pub fn restart(&mut self) -> f64 {
        let t0 = std::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {} failed", self.pid);
        let _ = self.child.wait();
        let stopped = t0.elapsed().as_secs_f64();
        let (child, port) = spawn(self._dir.path(), self.port, &self.env);
        assert_eq!(port, self.port, "the restarted server took another port");
        self.pid = child.id();
        self.child = child;
        stopped
    }
}

/// Starts the binary in `dir` on `port` (0: any) and returns it with the port it says.
fn spawn(dir: &std::path::Path, port: u16, env: &[(String, String)]) -> (Child, u16) {
    let bin = std::env::var_os("ROOMCAST_BENCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_roomcast").into());
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir)
        .env("ROOMCAST__SERVER__PORT", port.to_string())
        .env("ROOMCAST__SERVER__DATA_DIR", dir)
        .env(
            "ROOMCAST__DATABASE__URL",
            format!("sqlite://{}/rc.db?mode=rwc", dir.display()),
        )
        .env("ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC", "1000000")
        .env("ROOMCAST__RATE_LIMIT__MESSAGES_BURST", "1000000")
        .env("ROOMCAST__RATE_LIMIT__SUBSCRIBES_PER_SEC", "1000000")
        .env("ROOMCAST__RATE_LIMIT__SUBSCRIBES_BURST", "1000000")
        // A load tool is one client with many streams: lift the per-client caps, keep
        // the server-wide ones near the open-file limit.
        .env("ROOMCAST__LIMITS__STREAMS_PER_USER", "1000000")
        .env("ROOMCAST__LIMITS__STREAMS_PER_SESSION", "1000000")
        .env("ROOMCAST__LIMITS__MAX_STREAMS", "19000")
        .env("ROOMCAST__SERVER__MAX_CONNECTIONS", "800")
        .env("RUST_LOG", "roomcast=info,actix_server=warn")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start the server");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let port = loop {
        let line = lines
            .next()
            .expect("the server exited before saying its port")
            .expect("server output");
        if let Some(rest) = line.split("port=").nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().expect("port number");
        }
    };
    // Keep draining its log so it never blocks on a full pipe; into a file when asked
    // (`ROOMCAST_BENCH_LOGS=DIR`: one `roomcast-PORT.log` per server, appended).
    let mut keep = std::env::var_os("ROOMCAST_BENCH_LOGS").and_then(|dir| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(format!("roomcast-{port}.log")))
            .ok()
    });
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if let Some(file) = keep.as_mut() {
                use std::io::Write;
                let _ = writeln!(file, "{line}");
            }
        }
    });
    (child, port)
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The connection id in the text of a stream's `connected` event (its first frame).
pub fn connection_id_in(frame: &str) -> Option<&str> {
    frame
        .split("\"connection_id\":\"")
        .nth(1)?
        .split('"')
        .next()
}

/// Reads a just-opened SSE body up to its `connected` event and returns the connection id
/// in it.
pub async fn connection_id<S>(body: &mut S) -> String
where
    S: futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
{
    use futures_util::StreamExt;
    let mut buf = String::new();
    while !buf.contains("\n\n") {
        let chunk = body.next().await.expect("connected frame").expect("bytes");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    connection_id_in(&buf).expect("connection id").to_owned()
}
