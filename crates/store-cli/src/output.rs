//! Printing results and errors, human or JSON, tolerating a closed pipe.

use std::cell::Cell;
use std::io::{self, Write};

use serde_json::{Value, json};
use unicode_width::UnicodeWidthStr;

pub struct Output {
    pub json: bool,
    /// No progress bars and no hints on stderr (where a page continues).
    pub quiet: bool,
    /// Set once the command changed something (see [`Output::committed`]).
    committed: Cell<bool>,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Output {
        Output {
            json,
            quiet,
            committed: Cell::new(false),
        }
    }

    /// Records that the command ran to the end (a change it made is committed) before its
    /// result is printed: if printing then fails, the error says so, since a script that
    /// retries on exit code 1 would otherwise apply the change twice (an `incr`, an import).
    pub fn committed(&self) {
        self.committed.set(true);
    }

    /// Prints one line to stdout. A closed pipe (`store kv ls g | head -1`) ends output
    /// silently; any other write error (a full disk, `> /dev/full`) ends the command with exit
    /// code 1 and the error on stderr, since the output it was asked for is lost.
    pub fn line(&self, text: impl AsRef<str>) {
        let mut stdout = io::stdout().lock();
        let written = writeln!(stdout, "{}", text.as_ref()).and_then(|()| stdout.flush());
        match written {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
            Err(e) => {
                let done = if self.committed.get() {
                    " (the command ran to the end: any change it made is committed and only its \
                     output is lost; check before running it again)"
                } else {
                    ""
                };
                self.note(format!("error: cannot write to standard output: {e}{done}"));
                std::process::exit(1);
            }
        }
    }

    /// Prints an action's result: as JSON with `--json`, else with `human`.
    pub fn result(&self, value: &Value, human: impl FnOnce(&Output, &Value)) {
        if self.json {
            self.line(value.to_string());
        } else {
            human(self, value);
        }
    }

    /// Prints rows as an aligned table with a header. Control characters in cells are shown
    /// escaped (`\n`, `\t`, `\u{1b}`): a newline would break the layout, and an escape
    /// sequence stored in the data would reach the terminal. `--json`/`--csv`/`kv get` print
    /// values exactly.
    pub fn table(&self, headers: &[&str], rows: &[Vec<String>]) {
        let headers: Vec<String> = headers.iter().map(|h| visible(h)).collect();
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.iter().map(|cell| visible(cell)).collect())
            .collect();
        // Terminal columns, not characters: a CJK character or an emoji takes two.
        let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.width());
            }
        }
        let fmt_row = |cells: &mut dyn Iterator<Item = &str>| {
            // Padded by hand: `format!`'s width is limited to u16, and a cell can be wider.
            let parts: Vec<String> = cells
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(c.width()))))
                .collect();
            parts.join("  ").trim_end().to_string()
        };
        self.line(fmt_row(&mut headers.iter().map(|s| s.as_str())));
        for row in &rows {
            self.line(fmt_row(&mut row.iter().map(|s| s.as_str())));
        }
    }

    /// Prints one line to stderr, never panicking (`eprintln!` does when stderr is closed).
    pub fn note(&self, text: impl AsRef<str>) {
        let _ = writeln!(io::stderr(), "{}", text.as_ref());
    }

    /// Prints an error: on stderr for a person (see [`human_error`]), and with `--json` also
    /// as an object on stdout with the message exact.
    pub fn error(&self, e: &store::Error) {
        self.note(format!("error: {}", human_error(&e.to_string())));
        if e.is_busy() {
            // The library's fix names `busy_timeout`; on the command line that is a flag.
            self.note("hint: `store --busy-timeout DURATION …` sets how long to wait (default 5s)");
        }
        if self.json {
            Self::json_error(e.kind().as_str(), e.op(), &e.to_string());
        }
    }

    /// The `--json` object of a usage error (clap prints the error itself on stderr).
    pub fn usage_error(&self, message: &str) {
        if self.json {
            Self::json_error("usage", "store", message);
        }
    }

    fn json_error(kind: &str, op: &str, message: &str) {
        let body = json!({"error": {"kind": kind, "op": op, "message": message}});
        // Not `line`: a closed stdout must not turn the failure into exit 0. The error is
        // already on stderr, so a write failure here changes nothing.
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{body}").and_then(|()| stdout.flush());
    }
}

/// An error message as stderr shows it: each line through [`visible`], since a message quotes
/// paths, names and values that came from data (an escape sequence in a file name must not
/// reach the terminal). Line breaks stay: DuckDB's messages span lines (`LINE 1: …`).
pub fn human_error(message: &str) -> String {
    message.split('\n').map(visible).collect::<Vec<_>>().join("\n")
}

/// `text` as every human-readable output prints stored data (tables, `kv groups`, `kv watch`
/// lines): see [`store::text::visible`] for what is escaped.
pub fn visible(text: &str) -> String {
    store::text::visible(text).into_owned()
}
