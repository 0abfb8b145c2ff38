//! Applets that are not built yet: `--help` says what the applet will do and that it is not
//! implemented; any other call says so on stderr and exits 2. No fake behaviour.

use std::process::ExitCode;

use crate::{Applet, Invocation};

pub fn run(applet: &Applet, issue: u32, invocation: &Invocation) -> ExitCode {
    let name = &invocation.command_name;
    let wants_help = invocation
        .args
        .iter()
        .any(|arg| arg == "--help" || arg == "-h" || arg == "help");
    if wants_help {
        println!(
            "Usage: {name} ...\n\n{}.\n\nStatus: not implemented yet (issue #{issue}).",
            capitalized(applet.summary)
        );
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "{name}: not implemented yet (issue #{issue}).\nWhat it is for: {}.",
        applet.summary
    );
    ExitCode::from(2)
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
