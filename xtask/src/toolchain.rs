//! The Rust toolchain's own tools: rust-lld and the `llvm-tools` component's programs, whose
//! LLVM is rustc's (so they read the profiles and objects rustc writes).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process;

/// The toolchain's host tools directory (`…/lib/rustlib/HOST/bin`): rust-lld, and the
/// `llvm-tools` component's programs.
pub fn host_tools_dir() -> Result<PathBuf, String> {
    let sysroot = process::output(Command::new("rustc").args(["--print", "sysroot"]))?;
    let version = process::output(Command::new("rustc").arg("-vV"))?;
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .ok_or_else(|| format!("rustc -vV named no host:\n{version}"))?;
    Ok(Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(host.trim())
        .join("bin"))
}

/// `name` (`llvm-profdata`, `llvm-nm`) from the toolchain's `llvm-tools` component; installs the
/// component if needed.
pub fn llvm_tool(name: &str) -> Result<PathBuf, String> {
    let tool = host_tools_dir()?.join(name);
    if !tool.exists() {
        eprintln!("xtask: installing rustup's llvm-tools (for {name})");
        process::run(Command::new("rustup").args(["component", "add", "llvm-tools"])).map_err(
            |error| {
                format!("{error}\nHint: the release build needs `rustup component add llvm-tools`")
            },
        )?;
    }
    if tool.exists() {
        Ok(tool)
    } else {
        Err(format!(
            "{} is missing after installing llvm-tools\nHint: `rustup component add llvm-tools` \
             for the toolchain `rustc` runs",
            tool.display()
        ))
    }
}
