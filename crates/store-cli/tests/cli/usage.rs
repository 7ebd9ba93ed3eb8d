//! Usage errors exit 2 (SPEC §12 "Exit codes"), print to stderr (and, with `--json`, an error
//! object to stdout) and touch no data.

use crate::support::{Home, Outcome, TestCommand};

/// Runs `args` against a fresh home and asserts a usage error: exit 2, a message on stderr,
/// nothing on stdout, and the home directory never created (arguments are parsed first).
#[track_caller]
fn usage_error(args: &[&str]) -> Outcome {
    let home = Home::new();
    let out = home.run(args).code(2);
    assert!(
        out.stdout.is_empty(),
        "stdout of `{}`: {:?}",
        out.label,
        out.stdout
    );
    assert!(
        out.stderr.contains("error"),
        "stderr of `{}`: {:?}",
        out.label,
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert!(
        !home.path().exists(),
        "`{}` created the home directory",
        out.label
    );
    out
}

#[test]
fn unknown_command_exits_2() {
    usage_error(&["frobnicate"]);
}

#[test]
fn unknown_kv_subcommand_exits_2() {
    usage_error(&["kv", "frobnicate", "g", "k"]);
}

#[test]
fn unknown_flag_exits_2() {
    let out = usage_error(&["kv", "get", "g", "k", "--bogus"]);
    assert!(out.stderr.contains("--bogus"), "{}", out.stderr);
}

#[test]
fn unknown_global_flag_exits_2() {
    usage_error(&["--bogus", "kv", "get", "g", "k"]);
}

#[test]
fn missing_key_argument_exits_2() {
    usage_error(&["kv", "get", "g"]);
}

#[test]
fn missing_value_argument_exits_2() {
    usage_error(&["kv", "set", "g", "k"]);
}

#[test]
fn missing_command_exits_2() {
    usage_error(&[]);
}

/// With `--json`, stdout gets `{"error":{"kind":"usage","op":"store","message"}}` for a usage
/// error as for a library error, so a caller parsing stdout always gets an object; stderr keeps
/// clap's full message. Help and version stay plain text.
#[test]
fn usage_errors_under_json_exit_2_with_an_error_object_on_stdout() {
    for args in [
        &["--json", "kv", "get", "g"][..],
        &["kv", "set", "g", "k", "v", "--ttl", "5x", "--json"],
        &[
            "--json",
            "kv",
            "set",
            "g",
            "k",
            "v",
            "--if-version",
            "3",
            "--if-absent",
        ],
        &["--json", "frobnicate"],
        &["--json"],
    ] {
        let home = Home::new();
        let out = home.run(args).code(2);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(
            out.stderr.contains("error") || out.stderr.contains("Usage"),
            "{}",
            out.stderr
        );
        let body: serde_json::Value = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout of `{}` is not JSON ({e}): {:?}", out.label, out.stdout));
        let error = &body["error"];
        assert_eq!(error["kind"], "usage", "{body}");
        assert_eq!(error["op"], "store", "{body}");
        let message = error["message"].as_str().unwrap();
        assert!(!message.is_empty() && !message.starts_with("error:"), "{body}");
        assert!(!home.path().exists());
    }
    // The message is the whole error paragraph: what is missing, not only that something is.
    let out = Home::new().run(&["--json", "kv", "get", "g"]).code(2);
    let body: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("not provided") && message.contains("KEY"),
        "{body}"
    );
    // `--param` takes values starting with a hyphen: there `--json` is a value, not the flag.
    let out = Home::new().run(&["sql", "SELECT 1", "--param", "--json"]).code(2);
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    let home = Home::new();
    let help = home.run(&["--json", "--help"]).code(0);
    assert!(help.stdout.contains("Usage"), "{}", help.stdout);
    // After `--`, `--json` is a value, not the flag.
    let out = home.run(&["kv", "set", "g", "--", "--json"]).code(2);
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
}

#[test]
fn ttl_too_large_to_represent_exits_2() {
    usage_error(&[
        "kv",
        "set",
        "g",
        "k",
        "v",
        "--ttl",
        "10000000000000000000000years",
    ]);
}

#[cfg(unix)]
#[test]
fn non_utf8_argument_exits_2() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let home = Home::new();
    let out = home
        .cmd(["kv", "set", "g"])
        .arg(OsStr::from_bytes(b"\xff\xfe"))
        .arg("v")
        .run()
        .code(2);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn unparsable_ttl_exits_2() {
    let out = usage_error(&["kv", "set", "g", "k", "v", "--ttl", "5x"]);
    assert!(out.stderr.contains("5x"), "{}", out.stderr);
}

#[test]
fn non_numeric_if_version_exits_2() {
    usage_error(&["kv", "set", "g", "k", "v", "--if-version", "abc"]);
}

#[test]
fn if_version_together_with_if_absent_exits_2() {
    usage_error(&["kv", "set", "g", "k", "v", "--if-version", "3", "--if-absent"]);
}

#[test]
fn negative_offset_exits_2() {
    usage_error(&["kv", "ls", "g", "--offset", "-1"]);
}

#[test]
fn non_numeric_limit_exits_2() {
    usage_error(&["kv", "ls", "g", "--limit", "ten"]);
}

#[test]
fn non_integer_incr_delta_exits_2() {
    usage_error(&["kv", "incr", "g", "k", "1.5"]);
}

#[test]
fn count_with_both_group_and_prefix_exits_2() {
    usage_error(&["kv", "count", "g", "--prefix", "p"]);
}

#[test]
fn negative_changes_since_exits_2() {
    usage_error(&["changes", "--since", "-1"]);
}

#[test]
fn non_numeric_max_keys_exits_2() {
    usage_error(&[
        "kv",
        "--ns",
        "tenant-a",
        "set",
        "config",
        "k",
        "v",
        "--max-keys",
        "many",
    ]);
}

#[test]
fn ns_usage_without_a_namespace_exits_2() {
    usage_error(&["ns", "usage"]);
}

#[test]
fn help_and_version_exit_0() {
    let help = TestCommand::new().arg("--help").run().success();
    assert!(help.stdout.contains("kv"), "{}", help.stdout);
    let version = TestCommand::new().arg("--version").run().success();
    assert!(version.stdout.starts_with("store "), "{}", version.stdout);
}

/// docs/guarantees.md: output that cannot be written fails the command with exit 1. Help and version are
/// output too: clap's own `exit` ignored the failed write and exited 0. A reader that goes away
/// (a closed pipe) still ends them quietly with exit 0.
#[cfg(unix)]
#[test]
fn help_and_version_that_cannot_be_written_exit_1() {
    use std::os::unix::fs::FileTypeExt;
    use std::process::{Command, Stdio};

    use crate::support::BIN;

    // Only the real full device, opened for writing and never created: a regular file left
    // at that path would take the output and prove nothing.
    let is_full_device = std::fs::metadata("/dev/full").is_ok_and(|m| m.file_type().is_char_device());
    let cases: [&[&str]; 5] = [
        &["--help"],
        &["--version"],
        &["kv", "--help"],
        &["kv", "set", "--help"],
        &["help", "changes"],
    ];
    for args in cases {
        if is_full_device {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("open /dev/full");
            let out = Command::new(BIN)
                .args(args)
                .env_remove("STORE_HOME")
                .env_remove("XDG_DATA_HOME")
                .stdin(Stdio::null())
                .stdout(full)
                .stderr(Stdio::piped())
                .output()
                .expect("run store");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "store {args:?}: {stderr}");
            assert!(stderr.starts_with("error:"), "store {args:?}: {stderr}");
        }
        // A pipe whose reader is gone before anything is written: EPIPE, quietly exit 0.
        let mut child = crate::support::piped(args).spawn().expect("spawn store");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait for store");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "store {args:?}: {stderr}");
        assert!(stderr.is_empty(), "store {args:?}: {stderr}");
    }
}

#[test]
fn changes_limit_out_of_range_is_a_usage_error_with_or_without_follow() {
    usage_error(&["changes", "--follow", "--limit", "0"]);
    usage_error(&["changes", "--limit", "10001"]);
}

#[test]
fn quota_flags_without_ns_are_a_usage_error_naming_ns() {
    for flag in ["--max-keys", "--max-groups", "--max-bytes"] {
        let out = usage_error(&["kv", "set", "config", "k", "v", flag, "1"]);
        assert!(out.stderr.contains("need --ns"), "{}", out.stderr);
        let out = Home::new()
            .run(&["--json", "kv", "set", "config", "k", "v", flag, "1"])
            .code(2);
        let body: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
        assert_eq!(body["error"]["kind"], "usage", "{body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("need --ns"),
            "{body}"
        );
    }
}

#[test]
fn changes_limit_outside_1_to_10000_is_a_usage_error() {
    for limit in ["0", "10001"] {
        let out = usage_error(&["changes", "--limit", limit]);
        assert!(out.stderr.contains("--limit"), "{}", out.stderr);
    }
}

/// A negative value for an option that takes a number or a duration is refused by the
/// option's own parser, naming the option: clap's generic tip for a value starting with `-`
/// (`to pass '-1' as a value, use '-- -1'`) does not work for an option (h145).
#[test]
fn a_negative_option_value_is_refused_naming_the_option_without_a_misleading_tip() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["kv", "--ns", "a", "set", "g", "k", "v", "--max-keys", "-1"],
            "--max-keys",
        ),
        (
            &["kv", "--ns", "a", "set", "g", "k", "v", "--max-groups", "-1"],
            "--max-groups",
        ),
        (
            &["kv", "--ns", "a", "set", "g", "k", "v", "--max-bytes", "-1"],
            "--max-bytes",
        ),
        (&["ns", "usage", "a", "--max-keys", "-1"], "--max-keys"),
        (&["kv", "set", "g", "k", "v", "--ttl", "-1s"], "--ttl"),
        (
            &["kv", "set", "g", "k", "v", "--if-version", "-1"],
            "--if-version",
        ),
        (&["--busy-timeout", "-1s", "kv", "count"], "--busy-timeout"),
        (&["kv", "ls", "g", "--offset", "-1"], "--offset"),
        (&["kv", "ls", "g", "--limit", "-1"], "--limit"),
        (&["kv", "watch", "--since", "-1"], "--since"),
        (&["changes", "--since", "-1"], "--since"),
        (&["changes", "--limit", "-1"], "--limit"),
    ];
    for (args, option) in cases {
        let out = usage_error(args);
        assert!(!out.stderr.contains("'-- -1"), "{}: {}", out.label, out.stderr);
        assert!(
            out.stderr.contains("invalid value '-1") && out.stderr.contains(option),
            "{}: {}",
            out.label,
            out.stderr
        );
    }
}

/// `--home`, `--ns` and `--busy-timeout` may stand before or after a subcommand (clap's
/// global options), where clap let a second one silently win: `store kv --ns a set … --ns b`
/// wrote into `b`, so arguments appended by a script could leave the namespace or the home
/// (h145). Given twice, in any spelling and at any two positions, they are a usage error.
#[test]
fn a_global_option_given_twice_anywhere_is_a_usage_error() {
    let cases: &[&[&str]] = &[
        &["--home", "/tmp/x", "kv", "count", "--home", "/tmp/y"],
        &["kv", "--home=/tmp/x", "count", "--home", "/tmp/y"],
        &["kv", "--ns", "a", "set", "g", "k", "v", "--ns", "b"],
        &["kv", "--ns=a", "set", "g", "k", "v", "--ns=a"],
        &["kv", "--ns", "a", "--ns", "b", "count"],
        &["--busy-timeout", "1s", "kv", "count", "--busy-timeout=2s"],
    ];
    for args in cases {
        let out = usage_error(args);
        assert!(
            out.stderr.contains("cannot be used multiple times"),
            "{}: {}",
            out.label,
            out.stderr
        );
        let home = Home::new();
        let mut json = vec!["--json"];
        json.extend_from_slice(args);
        let body: serde_json::Value = serde_json::from_str(home.run(&json).code(2).stdout.trim()).unwrap();
        assert_eq!(body["error"]["kind"], "usage", "{body}");
    }
    // A value after `--` that merely spells the option is not a second one.
    let home = Home::new();
    home.ok(&["kv", "--ns", "a", "set", "g", "k", "--", "--ns"]);
    assert_eq!(
        home.run(&["kv", "--ns", "a", "get", "g", "k"]).success().stdout,
        "--ns\n"
    );
}
