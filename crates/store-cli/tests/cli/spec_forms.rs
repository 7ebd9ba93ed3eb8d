//! Command forms SPEC §12 lists that the other modules do not run: `kv watch '*'`, an unparsable
//! `--param`, and `scoring ensure` under `--json`. The workspace and journal commands (SPEC §9,
//! §10) are not built.

#[cfg(feature = "analytics")]
use serde_json::json;

use crate::feed::{BANNER, STARTUP, WITHIN};
use crate::support::Home;

/// `kv watch [G|*]`: `*` follows every group, including other processes' writes, until Ctrl-C.
#[test]
fn kv_watch_star_prints_other_processes_writes_to_every_group() {
    let home = Home::new();
    let watch = home.spawn(&["kv", "watch", "*"]);
    watch.expect_stderr(BANNER, STARTUP);
    let first = home.set("alpha", "a", "1");
    let second = home.set("beta", "b", "2");
    let lines: Vec<String> = (0..2).map(|_| watch.expect_line(WITHIN)).collect();
    assert_eq!(
        lines,
        [
            format!("{first}\tset\talpha\ta\t1"),
            format!("{second}\tset\tbeta\tb\t2")
        ]
    );
    let rest = watch.interrupt_and_expect_exit_0();
    assert!(rest.is_empty(), "unexpected output: {rest:?}");
}

/// §12: an unparsable `--param` is a usage error (exit 2), and nothing runs.
#[cfg(feature = "analytics")]
#[test]
fn sql_with_a_param_that_is_not_json_exits_2() {
    let home = Home::new();
    let out = home
        .run(&["sql", "SELECT ? AS a", "--param", "{not json"])
        .code(2);
    assert!(out.stdout.is_empty(), "{:?}", out.stdout);
    assert!(!out.stderr.is_empty());
}

/// `--json` prints the action result; `store/scoring/ensure`'s is `{}`.
#[cfg(feature = "analytics")]
#[test]
fn scoring_ensure_under_json_prints_an_empty_object() {
    let home = Home::new();
    assert_eq!(home.json(&["scoring", "ensure"]), json!({}));
    assert_eq!(home.json(&["scoring", "ensure"]), json!({}));
}
