//! `--help` on every subcommand: on stdout with exit 0, saying what the command does and what
//! each of its arguments and options means (h145: 22 arguments showed a bare name).

use crate::support::TestCommand;

/// Every subcommand path, as `store --help` and its pages lead a user to them.
const SUBCOMMANDS: &[&[&str]] = &[
    &[],
    &["kv"],
    &["kv", "get"],
    &["kv", "set"],
    &["kv", "incr"],
    &["kv", "del"],
    &["kv", "ls"],
    &["kv", "groups"],
    &["kv", "count"],
    &["kv", "purge"],
    &["kv", "watch"],
    &["ns"],
    &["ns", "usage"],
    &["changes"],
    &["sql"],
    &["import"],
    &["export"],
    &["export-split"],
    &["scoring"],
    &["scoring", "ensure"],
    &["inventory"],
    &["demo"],
];

/// The lines of one help section ("Arguments:", "Options:"), up to the blank line after it.
fn section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = help.lines();
    lines.by_ref().find(|l| l.trim_end() == title);
    lines.take_while(|l| !l.trim().is_empty()).collect()
}

/// What a help line says about its argument: the text after the name (two spaces or more
/// separate them), without clap's `[default: …]` and `[possible values: …]` notes.
fn description(line: &str) -> String {
    let line = line.trim_start();
    let mut text = line.find("  ").map_or("", |i| &line[i..]).trim().to_string();
    for note in ["[default:", "[possible values:"] {
        if let Some(start) = text.find(note)
            && let Some(len) = text[start..].find(']')
        {
            text.replace_range(start..=start + len, "");
        }
    }
    text.trim().to_string()
}

#[test]
fn every_subcommand_prints_its_help_on_stdout_starting_with_what_it_does() {
    for path in SUBCOMMANDS {
        for flag in ["--help", "-h"] {
            let out = TestCommand::new().args(*path).arg(flag).run().success();
            assert!(out.stderr.is_empty(), "{}: {:?}", out.label, out.stderr);
            assert!(
                out.stdout.contains("Usage: store"),
                "{}:\n{}",
                out.label,
                out.stdout
            );
            let first = out.stdout.lines().next().unwrap_or_default();
            assert!(
                !first.trim().is_empty() && !first.starts_with("Usage"),
                "{} does not start by saying what the command does:\n{}",
                out.label,
                out.stdout
            );
        }
    }
}

#[test]
fn every_argument_and_option_in_help_has_a_description() {
    let mut bare = Vec::new();
    for path in SUBCOMMANDS {
        let out = TestCommand::new().args(*path).arg("--help").run().success();
        for title in ["Arguments:", "Options:"] {
            for line in section(&out.stdout, title) {
                let named = line.trim_start();
                // A wrapped description continues on lines that start with no name.
                if !named.starts_with(['<', '[', '-']) {
                    continue;
                }
                if description(line).is_empty() {
                    bare.push(format!("{}: {}", out.label, named.trim()));
                }
            }
        }
    }
    assert!(
        bare.is_empty(),
        "arguments without a description:\n{}",
        bare.join("\n")
    );
}
