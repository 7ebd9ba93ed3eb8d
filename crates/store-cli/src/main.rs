//! `store`: the command-line tool over the store library.
//!
//! Exit codes: 0 success, 1 library error, 2 usage error (clap's own exit code for bad
//! arguments). With `--json`, results are printed as compact JSON with sorted keys, and errors
//! also go to stdout as `{"error":{"kind","message","op"}}` (kind `usage` and op `store` for a
//! usage error). The library's warnings go to stderr (see `logging`; `STORE_LOG` sets the level).

mod analytics;
mod demo;
mod feed;
mod kv;
mod logging;
mod ns;
mod output;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use store::{Service, ServiceConfig};

use crate::output::Output;

/// An embedded state + analytics store.
#[derive(Debug, Parser)]
#[command(name = "store", version, about)]
struct Cli {
    /// Data directory (default: $STORE_HOME, else the platform data directory + "store").
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars, and no hints on stderr (where a page continues, a --since past the
    /// newest change). Errors and pruned-change warnings still print.
    #[arg(long, global = true)]
    quiet: bool,
    /// How long to wait for a database another process is using (the KV file's write lock,
    /// the analytics file's lock) before failing busy: 5s by default; e.g. 30s, 2m, 0s.
    #[arg(long, global = true, value_name = "DURATION", value_parser = kv::parse_duration,
          allow_hyphen_values = true)]
    busy_timeout: Option<std::time::Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Key-value operations.
    Kv(kv::KvArgs),
    /// Namespace commands.
    Ns(ns::NsArgs),
    /// Print the durable change feed.
    Changes {
        /// Print changes after this sequence number (default 0; with --follow, the newest).
        #[arg(long, value_name = "N", allow_negative_numbers = true)]
        since: Option<u64>,
        /// At most this many changes (1 to 10000; the default is store/changes'); with
        /// --follow, at most this many per read, all of them printed in the end.
        #[arg(long, default_value_t = feed::DEFAULT_LIMIT, value_name = "N", allow_negative_numbers = true,
              value_parser = clap::value_parser!(u64).range(1..=store::kv::MAX_CHANGES_PER_CALL as u64))]
        limit: u64,
        /// Keep printing new changes until Ctrl-C.
        #[arg(long)]
        follow: bool,
    },
    /// Run SQL on the analytics database (KV state is the view `kv_entries`).
    Sql(analytics::SqlArgs),
    /// Import a Parquet, CSV or JSON file into a table.
    Import(analytics::ImportArgs),
    /// Export a table (or query) to a Parquet file.
    Export {
        /// The table to export.
        table: String,
        /// The Parquet file to write (its parent directories are created; an existing file is
        /// replaced whole, never left half-written).
        file: String,
        /// Parquet compression: zstd (the default), snappy, gzip, brotli, lz4, lz4_raw or
        /// uncompressed.
        #[arg(long, value_name = "CODEC")]
        compression: Option<String>,
    },
    /// Export one Parquet file per distinct value of COLUMN under DIR (Hive layout + manifest).
    ExportSplit {
        /// The table to export.
        table: String,
        /// The column whose distinct values name the files (COLUMN=value directories).
        column: String,
        /// The directory to write the files and the manifest into.
        dir: String,
    },
    /// Scoring-table commands.
    #[command(subcommand)]
    Scoring(analytics::ScoringCommand),
    /// List tables with row counts.
    Inventory,
    /// Walk through the store on the data directory and print what happened. The demo owns
    /// the groups whose names start with `_demo:` (no namespace can), and clears them first.
    Demo,
}

impl Command {
    /// Whether the command follows the change feed until Ctrl-C.
    fn follows(&self) -> bool {
        match self {
            Command::Changes { follow, .. } => *follow,
            Command::Kv(args) => args.follows(),
            _ => false,
        }
    }
}

fn main() -> ExitCode {
    logging::install();
    let cli = Cli::try_parse().unwrap_or_else(|e| usage_error(e));
    if let Some(flag) = repeated_option(&option_tokens()) {
        usage_error(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "the argument '{flag}' cannot be used multiple times (here once before and once after \
                 a subcommand, or twice); keep one"
            ),
        ));
    }
    if let Command::Kv(args) = &cli.command
        && let Some(problem) = kv::usage_problem(args)
    {
        // Reported against `store kv set`, so its usage line is the one shown.
        let mut command = Cli::command();
        command.build(); // names the subcommands' usage lines `store kv set …`
        let set = command
            .find_subcommand_mut("kv")
            .and_then(|kv| kv.find_subcommand_mut("set").cloned());
        usage_error(
            set.unwrap_or(command)
                .error(clap::error::ErrorKind::MissingRequiredArgument, problem),
        );
    }
    let out = Output::new(cli.json, cli.quiet);
    match run(cli, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::from(1)
        }
    }
}

/// The command line's arguments before any `--`, without the values of `--param` (the only
/// option whose value may start with `--`, so `--json` after it is that value, not the flag).
fn option_tokens() -> Vec<OsString> {
    let mut tokens = Vec::new();
    let mut args = std::env::args_os().skip(1).take_while(|a| a != "--");
    while let Some(arg) = args.next() {
        if arg == "--param" {
            args.next();
        } else {
            tokens.push(arg);
        }
    }
    tokens
}

/// Options that take one value and may be written before or after a subcommand (clap's
/// `global`). clap refuses one given twice at one level, but across levels it keeps the last
/// silently: `store kv --ns a set g k v --ns b` would write into `b`, and a script that
/// appends arguments to `store --home A …` would leave its home. Such a repetition is refused.
const SINGLE_GLOBALS: [&str; 3] = ["--home", "--ns", "--busy-timeout"];

/// The first of [`SINGLE_GLOBALS`] given more than once (as `--x V` or `--x=V`).
fn repeated_option(tokens: &[OsString]) -> Option<&'static str> {
    SINGLE_GLOBALS.into_iter().find(|flag| {
        let given = |token: &OsString| {
            let bytes = token.as_encoded_bytes();
            bytes == flag.as_bytes()
                || bytes
                    .strip_prefix(flag.as_bytes())
                    .is_some_and(|rest| rest.starts_with(b"="))
        };
        tokens.iter().filter(|t| given(t)).count() > 1
    })
}

/// Exits on a command line clap refused (2) or a help/version request (0, or 1 if it cannot be
/// printed). With `--json`, a usage error also goes to stdout as `{"error":{"kind":"usage",…}}`,
/// like a library error, so a caller parsing stdout always gets an object.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    // `--json` anywhere before a `--`, read from the raw arguments since clap stopped at the
    // error, maybe before the flag. Only `--param` takes a value starting with `--`: after it,
    // `--json` is that value, not the flag.
    let json = option_tokens().iter().any(|a| a == "--json");
    let rendered = e.render().to_string();
    let message = match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => None,
        // clap prints the help text for this one, not an error line.
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Some("a command or argument is missing; run with --help for usage".to_string())
        }
        // The error's paragraph (`error: the following required arguments were not provided:`
        // and the arguments on the lines below), without the usage line and hint after it.
        _ => Some(
            rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ")
                .trim_start_matches("error: ")
                .to_string(),
        ),
    };
    if let (true, Some(message)) = (json, message) {
        Output::new(true, true).usage_error(&message);
    }
    // Not `e.exit()`: it ignores a failed write, so `store --help > /dev/full` would exit 0
    // with the help lost. Help and version go to stdout, and stdout that cannot be written
    // fails the command (exit 1) as everywhere else; a closed pipe stays quiet, as in
    // `Output::line`. Usage errors go to stderr and keep exit 2 whatever happens to it.
    let printed = e.print().and_then(|()| std::io::stdout().lock().flush());
    match printed {
        Err(write) if !e.use_stderr() && write.kind() != std::io::ErrorKind::BrokenPipe => {
            Output::new(false, false).note(format!("error: cannot write to standard output: {write}"));
            std::process::exit(1)
        }
        _ => std::process::exit(e.exit_code()),
    }
}

fn run(cli: Cli, out: &Output) -> store::Result<()> {
    let home = match cli.home {
        Some(home) => home,
        None => store::default_home()?,
    };
    let mut config = ServiceConfig::new(home);
    if let Some(wait) = cli.busy_timeout {
        config.store.busy_timeout = wait;
    }
    if cli.command.follows() {
        feed::arm_interrupt();
    }
    let service = Service::open(config)?;
    let result = match cli.command {
        Command::Kv(args) => kv::run(&service, args, out),
        Command::Ns(args) => ns::run(&service, args, out),
        Command::Changes { since, limit, follow } => {
            if follow {
                let filter = feed::GroupFilter::new(None, "*");
                feed::follow(&service, since, limit, &filter, out)
            } else {
                feed::print_batch(&service, since.unwrap_or(0), limit, out)
            }
        }
        Command::Sql(args) => analytics::sql(&service, args, out),
        Command::Import(args) => analytics::import(&service, args, out),
        Command::Export {
            table,
            file,
            compression,
        } => analytics::export(&service, table, file, compression, out),
        Command::ExportSplit { table, column, dir } => {
            analytics::export_split(&service, table, column, dir, out)
        }
        Command::Scoring(command) => analytics::scoring(&service, command, out),
        Command::Inventory => analytics::inventory(&service, out),
        Command::Demo => demo::run(&service, out),
    };
    let closed = service.close();
    result.and(closed)
}
