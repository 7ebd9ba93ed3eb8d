//! Test harness: a temporary home per test, a `TestCommand` that runs the `store` binary and
//! captures its outcome, and `Background` for long-running commands (`kv watch`, `--follow`).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_store");

/// How long any single short-lived command may take before the test fails.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One invocation of `store`, with `STORE_HOME`, `XDG_DATA_HOME` and `STORE_LOG` removed unless
/// set again.
pub struct TestCommand {
    cmd: assert_cmd::Command,
    label: Vec<String>,
}

impl TestCommand {
    /// `store` with no arguments and a clean environment.
    pub fn new() -> TestCommand {
        let mut cmd = assert_cmd::Command::cargo_bin("store").expect("the store binary is built");
        cmd.env_remove("STORE_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("STORE_LOG")
            .timeout(COMMAND_TIMEOUT);
        TestCommand {
            cmd,
            label: vec!["store".into()],
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> TestCommand {
        self.label.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, TestCommand::arg)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> TestCommand {
        self.cmd.env(key, value);
        self
    }

    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    pub fn current_dir(mut self, dir: &Path) -> TestCommand {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> TestCommand {
        self.cmd.write_stdin(input);
        self
    }

    /// Runs to completion and captures exit code, stdout and stderr.
    pub fn run(mut self) -> Outcome {
        let output = self.cmd.output().expect("store runs");
        Outcome {
            label: self.label.join(" "),
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
        }
    }
}

/// What a finished command did.
#[derive(Debug)]
pub struct Outcome {
    pub label: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// Asserts the exit code.
    #[track_caller]
    pub fn code(self, expected: i32) -> Outcome {
        assert_eq!(
            self.code,
            Some(expected),
            "`{}` exit code\n--- stdout\n{}--- stderr\n{}",
            self.label,
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn success(self) -> Outcome {
        self.code(0)
    }

    /// Asserts exit 1 (a library error) with an `error:` line on stderr.
    #[track_caller]
    pub fn library_error(self) -> Outcome {
        let out = self.code(1);
        assert!(
            out.stderr.starts_with("error:"),
            "stderr of `{}`: {:?}",
            out.label,
            out.stderr
        );
        out
    }

    /// stdout as one compact JSON document with sorted keys (SPEC §0).
    #[track_caller]
    pub fn json(&self) -> Value {
        parse_json_line(self.stdout.strip_suffix('\n').unwrap_or(&self.stdout))
    }

    /// The `{"error": {...}}` body printed on stdout under `--json`.
    #[track_caller]
    pub fn json_error(&self) -> Value {
        let v = self.json();
        assert_eq!(keys(&v), ["error"], "{v}");
        assert_eq!(keys(&v["error"]), ["kind", "message", "op"], "{v}");
        v["error"].clone()
    }
}

/// Parses one line of JSON and checks it is compact with sorted keys: serde_json (without
/// `preserve_order`, see `oracle_serializes_with_sorted_keys`) re-serializes to the same text.
#[track_caller]
pub fn parse_json_line(line: &str) -> Value {
    assert!(!line.contains('\n'), "expected one line of JSON, got {line:?}");
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    assert_eq!(
        serde_json::to_string(&value).expect("serializable"),
        line,
        "JSON must be compact with sorted keys"
    );
    value
}

/// The object's keys, in order.
#[track_caller]
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .unwrap_or_else(|| panic!("expected an object: {v}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// A temporary data directory (not yet created: the CLI must create it).
pub struct Home {
    _dir: TempDir,
    path: PathBuf,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("home");
        Home { _dir: dir, path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `store --home HOME args…`.
    pub fn cmd<I, S>(&self, args: I) -> TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        TestCommand::new().arg("--home").arg(&self.path).args(args)
    }

    pub fn run(&self, args: &[&str]) -> Outcome {
        self.cmd(args).run()
    }

    /// Runs successfully and returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        self.run(args).success().stdout
    }

    /// Runs with `--json`, successfully, and returns the parsed result.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        self.cmd(["--json"]).args(args).run().success().json()
    }

    /// Runs with `--json`, expecting exit 1, and returns the error body.
    #[track_caller]
    pub fn json_fail(&self, args: &[&str]) -> Value {
        self.cmd(["--json"]).args(args).run().library_error().json_error()
    }

    /// Sets a key and returns its version.
    #[track_caller]
    pub fn set(&self, group: &str, key: &str, value: &str) -> u64 {
        let v = self.json(&["kv", "set", group, key, value]);
        v["version"].as_u64().unwrap_or_else(|| panic!("version in {v}"))
    }

    /// The value of a key, read with `--json` so it is exact.
    #[track_caller]
    pub fn get(&self, group: &str, key: &str) -> String {
        let v = self.json(&["kv", "get", group, key]);
        v["value"]
            .as_str()
            .unwrap_or_else(|| panic!("value in {v}"))
            .to_string()
    }

    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(&self.path, args)
    }
}

/// A `store` process left running, with its stdout and stderr read line by line on threads.
pub struct Background {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    label: String,
}

/// Every line until the pumping thread ends at the stream's end (10 s at most per line).
fn drain_to_end(lines: &Receiver<String>) -> Vec<String> {
    let mut all = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(10)) {
        all.push(line);
    }
    all
}

/// `f`'s result and how long it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let result = f();
    (result, started.elapsed())
}

/// `store --busy-timeout 300ms ARGS` while what it needs is held elsewhere: it must fail
/// (exit 1) once it has waited out those 300 ms, well before the default 5 s.
#[track_caller]
pub fn fails_after_a_300ms_busy_timeout(home: &Home, args: &[&str]) -> Outcome {
    let args: Vec<&str> = ["--busy-timeout", "300ms"].iter().chain(args).copied().collect();
    let (out, took) = timed(|| home.run(&args));
    let out = out.library_error();
    assert!(took >= Duration::from_millis(300), "gave up after {took:?}");
    assert!(took < Duration::from_millis(4500), "waited {took:?}");
    out
}

/// Entry names directly inside `dir`, sorted.
#[cfg_attr(not(feature = "analytics"), allow(dead_code))]
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn pump(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The binary with `args`, no home from the environment, stdin empty and stdout/stderr piped,
/// for tests that drive the process themselves (read partly, stall, close the pipe).
pub fn piped<I, S>(args: I) -> std::process::Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = std::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("STORE_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("STORE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

impl Background {
    pub fn spawn(home: &Path, args: &[&str]) -> Background {
        let mut child = piped([OsStr::new("--home"), home.as_os_str()])
            .args(args)
            .spawn()
            .expect("spawn store");
        let stdout = pump(child.stdout.take().expect("piped stdout"));
        let stderr = pump(child.stderr.take().expect("piped stderr"));
        Background {
            child,
            stdout,
            stderr,
            label: format!("store {}", args.join(" ")),
        }
    }

    /// The next stdout line, or `None` if none arrives within `timeout`.
    pub fn next_line(&self, timeout: Duration) -> Option<String> {
        self.stdout.recv_timeout(timeout).ok()
    }

    /// The next stdout line, failing the test if none arrives within `timeout`.
    #[track_caller]
    pub fn expect_line(&self, timeout: Duration) -> String {
        let started = Instant::now();
        self.next_line(timeout)
            .unwrap_or_else(|| panic!("`{}` printed nothing within {:?}", self.label, started.elapsed()))
    }

    /// Waits until a stderr line contains `needle` (e.g. the "following changes" banner, printed
    /// once the Ctrl-C handler is installed and the starting seq is read).
    #[track_caller]
    pub fn expect_stderr(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("`{}` never wrote {needle:?} to stderr", self.label),
            }
        }
    }

    /// The stderr lines printed so far and not yet read.
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits up to `timeout` until the process has `path` open (Linux: its `/proc` fds).
    #[cfg(target_os = "linux")]
    pub fn wait_until_open(&self, path: &Path, timeout: Duration) -> bool {
        let fds = PathBuf::from(format!("/proc/{}/fd", self.child.id()));
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let open = std::fs::read_dir(&fds).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
            });
            if open {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends the signal `name` (`INT`, `TERM`, `HUP`) with `kill -<name> <pid>`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process (SIGKILL on Unix) and waits for it; it may have ended already.
    #[cfg_attr(not(feature = "analytics"), allow(dead_code))]
    pub fn kill(mut self) {
        let _ = self.child.kill();
        self.child.wait().expect("wait for the killed store");
    }

    /// Interrupts and asserts a clean exit with code 0 within 2 s (SPEC §12: "until Ctrl-C
    /// (exit 0)"). Returns the stdout lines printed after the interrupt.
    #[track_caller]
    pub fn interrupt_and_expect_exit_0(self) -> Vec<String> {
        self.signal_and_expect_exit_0("INT")
    }

    /// Sends the signal `name` and asserts a clean exit with code 0 within 2 s; returns the
    /// stdout lines printed after it.
    #[track_caller]
    pub fn signal_and_expect_exit_0(mut self, name: &str) -> Vec<String> {
        self.signal(name);
        let status = self.wait_exit(Duration::from_secs(2));
        // Once it has exited, its pipes end: read them to the end, not just what has arrived.
        let drain = |lines: &Receiver<String>| match status {
            Some(_) => drain_to_end(lines),
            None => lines.try_iter().collect(),
        };
        let rest: Vec<String> = drain(&self.stdout);
        let errors: Vec<String> = drain(&self.stderr);
        match status {
            Some(status) => assert_eq!(
                status.code(),
                Some(0),
                "`{}` after SIG{name}: {status}; stderr: {errors:?}",
                self.label
            ),
            None => panic!("`{}` still running 2 s after SIG{name}", self.label),
        }
        rest
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn oracle_serializes_with_sorted_keys() {
    // `parse_json_line` relies on this: if serde_json's `preserve_order` were enabled, the
    // sorted-keys check would compare insertion order with itself.
    let v: Value = serde_json::from_str(r#"{"b":1,"a":{"d":2,"c":3}}"#).expect("json");
    assert_eq!(v.to_string(), r#"{"a":{"c":3,"d":2},"b":1}"#);
}

/// `store --home HOME ARGS` with stdout on `/dev/full` (every write fails): asserts exit 1 and
/// returns stderr.
#[cfg(target_os = "linux")]
#[track_caller]
pub fn stderr_with_stdout_full(home: &Home, args: &[&str]) -> String {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home.path())
        .args(args)
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}
