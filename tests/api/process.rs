//! Runs the real `roomcast` binary, for tests that kill or signal it.

#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use roomcast::db::Db;

use crate::helpers::PG_ENV;

/// The `database.url` of every run of the binary with its data in `dir`, so a server and
/// the CLI (or a restarted server) share one database: a SQLite file in `dir`, or with
/// [`PG_ENV`] set one fresh schema of that database, remembered in a file in `dir`.
pub fn database_url(dir: &Path) -> String {
    let Ok(base) = std::env::var(PG_ENV) else {
        return format!("sqlite://{}/rc.db?mode=rwc", dir.display());
    };
    let remembered = dir.join("test-database-url");
    if let Ok(url) = std::fs::read_to_string(&remembered) {
        return url;
    }
    // Its own thread and runtime: callers may be inside a runtime, which cannot block.
    let url = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(Db::create_test_schema(&base))
            .expect("a test schema")
    })
    .join()
    .expect("creating the test schema");
    std::fs::write(&remembered, &url).expect("remembering the test database");
    url
}

/// A running `roomcast serve`.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Everything it logged after the start line, as it comes.
    pub log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts the binary on a free port with its data in `dir`, plus extra env vars.
    pub fn start(dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        crate::helpers::init_test_log();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast"));
        cmd.current_dir(dir)
            .env("ROOMCAST__SERVER__PORT", "0")
            .env("ROOMCAST__SERVER__DATA_DIR", dir)
            .env("ROOMCAST__DATABASE__URL", database_url(dir))
            .env("ROOMCAST__DATABASE__MAX_CONNECTIONS", "4")
            .env("ROOMCAST__RATE_LIMIT__AUTH_PER_MIN", "100000")
            .env("ROOMCAST__RATE_LIMIT__MESSAGES_PER_SEC", "100000")
            .env("ROOMCAST__RATE_LIMIT__MESSAGES_BURST", "100000")
            .env("ROOMCAST__RATE_LIMIT__SUBSCRIBES_PER_SEC", "100000")
            .env("ROOMCAST__RATE_LIMIT__SUBSCRIBES_BURST", "100000")
            .env("ROOMCAST__RATE_LIMIT__REMOVALS_PER_SEC", "100000")
            .env("ROOMCAST__RATE_LIMIT__REMOVALS_BURST", "100000")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("starting the roomcast binary");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("the server logs its port within 30 s");
            if let Some(rest) = line.split("port=").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits.parse::<u16>().expect("a port number");
            }
        };
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log: rx,
        }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM without waiting; returns when it was sent.
    pub fn send_sigterm(&self) -> std::time::Instant {
        let sent = std::time::Instant::now();
        let pid = self.child.id().to_string();
        let ok = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        assert!(ok.success(), "kill -TERM failed");
        sent
    }

    /// The exit status once the process has exited, or `None` if it still runs after
    /// `wait`. Polls, so a test can read streams meanwhile.
    pub async fn exited_within(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().expect("polling the child") {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A test client for this server.
    pub fn client(&self) -> crate::helpers::Client {
        crate::helpers::Client::new(&self.base)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `roomcast ARGS` against the database in `dir`, feeding `stdin`.
pub fn cli(dir: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    cli_at(dir, &database_url(dir), args, stdin)
}

/// Runs `roomcast ARGS` against the database at `url` (data directory `dir`), feeding `stdin`.
pub fn cli_at(dir: &Path, url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_roomcast"))
        .args(args)
        .current_dir(dir)
        .env("ROOMCAST__SERVER__DATA_DIR", dir)
        .env("ROOMCAST__DATABASE__URL", url)
        .env("ROOMCAST__DATABASE__MAX_CONNECTIONS", "4")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the roomcast binary");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("writing stdin");
    child.wait_with_output().expect("cli output")
}

/// Runs `roomcast ARGS` against a running test app's database, as an operator would beside
/// it, off the async runtime; panics unless it succeeds.
pub async fn operator(dir: &Path, url: &str, args: &[&str]) {
    let (dir, url) = (dir.to_owned(), url.to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli_at(&dir, &url, &args, "")
    })
    .await
    .expect("the command ran");
    assert!(
        out.status.success(),
        "roomcast failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
