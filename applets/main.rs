//! The `bureau` executable: one static binary, many applets, chosen by `basename(argv[0])`.
//!
//! Invariant: dispatch happens before any runtime or thread starts. Each applet chooses its own
//! runtime (the sandbox applet none at all, because `clone` copies only the calling thread), and
//! process-global changes such as the environment are made while the process is single-threaded.
//!
//! `bureau-sandbox ARGS` and `bureau sandbox ARGS` are the same call: the applet sees the same
//! command name (`bureau-sandbox`) and the same arguments either way.

mod args;
mod bridge;
mod cli;
mod daemon;
mod launcher;
mod planned;
mod proxy;
mod proxy_call;
mod sandbox;

use std::process::ExitCode;

#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One applet: what `bureau-<short_name>` (or `bureau <short_name>`) runs.
pub struct Applet {
    /// The name after `bureau-`, e.g. `sandbox`.
    pub short_name: &'static str,
    /// One line for listings and help.
    pub summary: &'static str,
    pub entry: Entry,
}

/// How an applet runs.
pub enum Entry {
    /// Implemented: called with the invocation, returns the process exit status.
    Built(fn(&Invocation) -> ExitCode),
    /// Not built yet: says so clearly and exits 2, naming the issue that builds it.
    Planned { issue: u32 },
}

/// What an applet is called with.
pub struct Invocation {
    /// The canonical command name, `bureau-<short_name>`, used in help and error text.
    pub command_name: String,
    /// Arguments after the command name.
    pub args: Vec<String>,
}

impl Applet {
    pub fn command_name(&self) -> String {
        format!("bureau-{}", self.short_name)
    }
}

/// Every applet, in the order listings show them.
pub const APPLETS: &[Applet] = &[
    Applet {
        short_name: "launcher",
        summary: "privileged, no network: machine keys, credential decryption, sandboxes",
        entry: Entry::Built(launcher::run),
    },
    Applet {
        short_name: "daemon",
        summary: "unprivileged: Matrix sync, reconciliation, observation, transport",
        entry: Entry::Built(daemon::run),
    },
    Applet {
        short_name: "proxy",
        summary: "one per principal: injects that principal's credentials into upstream requests",
        entry: Entry::Built(proxy::run),
    },
    Applet {
        short_name: "sandbox",
        summary: "runs a command in namespaces with landlock, seccomp and cgroup limits",
        entry: Entry::Built(sandbox::run),
    },
    Applet {
        short_name: "bridge",
        summary: "inside a sandbox: forwards TCP 127.0.0.1:8642 to the proxy socket",
        entry: Entry::Built(bridge::run),
    },
    Applet {
        short_name: "doctor",
        summary: "checks (and with --fix repairs) this machine",
        entry: Entry::Planned { issue: 6 },
    },
    Applet {
        short_name: "proxy-call",
        summary: "inside a sandbox: one proxied HTTP request, for scripts without curl",
        entry: Entry::Built(proxy_call::run),
    },
];

/// What the process was asked to run.
#[derive(Debug, PartialEq, Eq)]
enum Dispatch<'a> {
    /// An applet, by symlink name or as `bureau <short_name>`.
    Applet {
        applet_index: usize,
        args: &'a [String],
    },
    /// The `bureau` CLI.
    Cli { args: &'a [String] },
    /// `bureau-<something>` that is not an applet.
    UnknownApplet { name: &'a str },
}

/// Chooses the applet from the program name (`basename(argv[0])`) and the arguments.
///
/// `bureau-sandbox x` and `bureau sandbox x` → the sandbox applet with `[x]`; `bureau install`
/// → the CLI; any other name (a renamed binary such as `bureau.new` during an upgrade) → the CLI.
fn dispatch<'a>(program_name: &'a str, args: &'a [String]) -> Dispatch<'a> {
    let find = |short_name: &str| {
        APPLETS
            .iter()
            .position(|applet| applet.short_name == short_name)
    };
    if let Some(short_name) = program_name.strip_prefix("bureau-") {
        return match find(short_name) {
            Some(applet_index) => Dispatch::Applet { applet_index, args },
            None => Dispatch::UnknownApplet { name: program_name },
        };
    }
    match args.split_first() {
        Some((first, rest)) => match find(first) {
            Some(applet_index) => Dispatch::Applet {
                applet_index,
                args: rest,
            },
            None => Dispatch::Cli { args },
        },
        None => Dispatch::Cli { args },
    }
}

/// The applet listing used by the unknown-applet error and `bureau --help`.
pub fn applet_listing() -> String {
    let width = APPLETS
        .iter()
        .map(|applet| applet.command_name().len())
        .max()
        .unwrap_or(0);
    let mut listing = String::new();
    for applet in APPLETS {
        let status = match applet.entry {
            Entry::Built(_) => String::new(),
            Entry::Planned { issue } => format!(" (not implemented yet: issue #{issue})"),
        };
        listing.push_str(&format!(
            "  {:width$}  {}{status}\n",
            applet.command_name(),
            applet.summary
        ));
    }
    listing
}

fn main() -> ExitCode {
    let mut raw_args = std::env::args_os();
    let program_path = raw_args.next().unwrap_or_default();
    let program_name = std::path::Path::new(&program_path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bureau".to_owned());

    let mut args = Vec::new();
    for (index, raw) in raw_args.enumerate() {
        match raw.into_string() {
            Ok(arg) => args.push(arg),
            Err(raw) => {
                eprintln!(
                    "{program_name}: argument {} is not valid UTF-8: {raw:?}\nHint: Bureau's \
                     paths and names are UTF-8; rename the file or pass another path",
                    index + 1
                );
                return ExitCode::from(2);
            }
        }
    }

    match dispatch(&program_name, &args) {
        Dispatch::Applet { applet_index, args } => {
            let applet = &APPLETS[applet_index];
            let invocation = Invocation {
                command_name: applet.command_name(),
                args: args.to_vec(),
            };
            match applet.entry {
                Entry::Built(run) => run(&invocation),
                Entry::Planned { issue } => planned::run(applet, issue, &invocation),
            }
        }
        Dispatch::Cli { args } => cli::run(args),
        Dispatch::UnknownApplet { name } => {
            eprintln!(
                "bureau: unknown applet {name:?}\n\nThe applets are:\n{}\nEach also runs as \
                 `bureau <name> ...` (e.g. `bureau sandbox --help`); `bureau --help` lists the CLI.",
                applet_listing()
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    fn index_of(short_name: &str) -> usize {
        APPLETS
            .iter()
            .position(|applet| applet.short_name == short_name)
            .expect("applet exists")
    }

    #[test]
    fn symlink_name_and_subcommand_reach_the_same_applet_with_the_same_args() {
        let via_symlink = strings(&["--help"]);
        let via_cli = strings(&["sandbox", "--help"]);
        let expected = Dispatch::Applet {
            applet_index: index_of("sandbox"),
            args: &via_symlink,
        };
        assert_eq!(dispatch("bureau-sandbox", &via_symlink), expected);
        assert_eq!(dispatch("bureau", &via_cli), expected);
    }

    #[test]
    fn unknown_bureau_dash_name_is_refused() {
        assert_eq!(
            dispatch("bureau-nonsense", &[]),
            Dispatch::UnknownApplet {
                name: "bureau-nonsense"
            }
        );
    }

    #[test]
    fn other_names_and_cli_subcommands_go_to_the_cli() {
        let args = strings(&["install", "--prefix", "/x"]);
        assert_eq!(dispatch("bureau", &args), Dispatch::Cli { args: &args });
        assert_eq!(dispatch("bureau.new", &args), Dispatch::Cli { args: &args });
        assert_eq!(dispatch("bureau", &[]), Dispatch::Cli { args: &[] });
    }

    #[test]
    fn applet_names_are_unique() {
        let mut names: Vec<_> = APPLETS.iter().map(|applet| applet.short_name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), APPLETS.len());
    }
}
