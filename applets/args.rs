//! Argument parsing shared by every applet: argh, with help on stdout (exit 0) and usage
//! errors on stderr (exit 2, the conventional status for a bad invocation).

use std::process::ExitCode;

use argh::FromArgs;

/// Parses `args` as `command_name`'s arguments. On `--help` or a usage error the text is printed
/// and the exit status is returned as the error, for the caller to return from `main`.
pub fn parse<T: FromArgs>(command_name: &str, args: &[String]) -> Result<T, ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    T::from_args(&[command_name], &args).map_err(|early_exit| match early_exit.status {
        Ok(()) => {
            println!("{}", early_exit.output);
            ExitCode::SUCCESS
        }
        Err(()) => {
            eprintln!("{}", early_exit.output.trim_end());
            eprintln!("Run `{command_name} --help` for the options.");
            ExitCode::from(2)
        }
    })
}

/// The help text of `command_name` (what `--help` prints).
pub fn help_text<T: FromArgs>(command_name: &str) -> String {
    match T::from_args(&[command_name], &["--help"]) {
        Ok(_) => String::new(),
        Err(early_exit) => early_exit.output,
    }
}

/// Installs logging from `--log-level` (else `RUST_LOG`, else `default`). A bad level is a
/// usage error: the message goes to stderr and the status (2) is returned as the error.
pub fn init_logging(
    command_name: &str,
    level: Option<&str>,
    default: &str,
) -> Result<(), ExitCode> {
    bureau::logging::init(level, default).map_err(|error| {
        eprintln!("{command_name}: {error}");
        ExitCode::from(2)
    })
}

/// The current-thread tokio runtime an async applet runs on (one thread: our long-lived
/// processes are I/O-bound, and one thread keeps their memory small). On failure the message
/// goes to stderr and the status (1) is returned as the error.
pub fn current_thread_runtime(command_name: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    current_thread_runtime_parking(command_name, || {})
}

/// [`current_thread_runtime`] that calls `before_idle` each time the thread is about to wait for
/// I/O or a timer (the proxy writes its batched request log there).
pub fn current_thread_runtime_parking(
    command_name: &str,
    before_idle: fn(),
) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(before_idle)
        .build()
        .map_err(|error| {
            eprintln!("{command_name}: cannot start the async runtime: {error}");
            ExitCode::FAILURE
        })
}
