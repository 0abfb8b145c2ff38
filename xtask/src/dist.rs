//! `cargo xtask dist`: the single static file that is copied to a new host.
//!
//! Builds `bureau` for x86_64-unknown-linux-musl (the binary selects mimalloc as its allocator on
//! musl) with profile-guided optimisation (`pgo.rs`) and a code layout from the same profile
//! (`layout.rs`), writes `dist/bureau` and its applet symlinks (through `bureau install`, so the
//! symlink logic exists once), refuses a result that is dynamically linked, and prints its size.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::process::{self, find_on_path, workspace_root};
use crate::{layout, pgo};

const TARGET: &str = "x86_64-unknown-linux-musl";

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!(
            "dist takes no arguments (got {unknown:?}); it always builds {TARGET} in release mode"
        ));
    }
    let root = workspace_root();
    ensure_musl_toolchain()?;

    let started = Instant::now();
    let profile = pgo::profile(&root, TARGET)?;
    let (linker_variable, linker) = layout::linker(&root, TARGET, &profile)?;
    process::run(
        pgo::release_build(
            &root,
            TARGET,
            // Rustc would assume `cc`-style arguments for a linker named neither `gcc` nor `ld`
            // anyway (the target's default); say it rather than rely on the name.
            &format!("-Cprofile-use={} -Clinker-flavor=gcc", profile.display()),
        )
        .env(linker_variable, linker),
    )?;
    let build_seconds = started.elapsed().as_secs_f64();

    let built = root.join("target").join(TARGET).join("release/bureau");
    println!("{}", layout::check_linked(&profile, &built)?);
    let dist = root.join("dist");
    if dist.exists() {
        fs::remove_dir_all(&dist)
            .map_err(|error| format!("cannot clear {}: {error}", dist.display()))?;
    }
    fs::create_dir_all(&dist)
        .map_err(|error| format!("cannot create {}: {error}", dist.display()))?;
    let binary = dist.join("bureau");
    fs::copy(&built, &binary).map_err(|error| {
        format!(
            "cannot copy {} to {}: {error}",
            built.display(),
            binary.display()
        )
    })?;

    process::run(
        Command::new(&binary)
            .args(["install", "--bin-dir"])
            .arg(&dist)
            .stdout(std::process::Stdio::null()),
    )?;

    check_static(&binary)?;
    let size = fs::metadata(&binary)
        .map_err(|error| format!("cannot stat {}: {error}", binary.display()))?
        .len();
    let version = process::output(Command::new(&binary).arg("--version"))?;
    println!("{}", version.trim_end());
    println!(
        "dist/bureau: statically linked, {:.1} MiB ({size} bytes), built in {build_seconds:.0} s",
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The musl target and a musl C compiler (aws-lc-sys and mimalloc are C) must be present.
/// As root on Debian, installs `musl-tools` itself; otherwise says what to run.
fn ensure_musl_toolchain() -> Result<(), String> {
    let installed = process::output(Command::new("rustup").args(["target", "list", "--installed"]))
        .unwrap_or_default();
    if !installed.lines().any(|line| line.trim() == TARGET) {
        process::run(Command::new("rustup").args(["target", "add", TARGET])).map_err(|error| {
            format!("{error}\nHint: the static build needs `rustup target add {TARGET}`")
        })?;
    }
    if find_on_path("musl-gcc").is_some() {
        return Ok(());
    }
    let is_root = process::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    if is_root && find_on_path("apt-get").is_some() {
        eprintln!("xtask: installing musl-tools (the musl C compiler for aws-lc-sys and mimalloc)");
        return process::run(Command::new("apt-get").args(["install", "-y", "-q", "musl-tools"]));
    }
    Err(
        "the static build needs a musl C compiler (musl-gcc)\nHint: `sudo apt-get install \
         musl-tools`"
            .to_owned(),
    )
}

/// A static executable has no program interpreter (`PT_INTERP`). That is the gate; `file` and
/// `ldd`, when present, are shown for the human reading the output.
fn check_static(binary: &Path) -> Result<(), String> {
    let bytes =
        fs::read(binary).map_err(|error| format!("cannot read {}: {error}", binary.display()))?;
    if has_program_interpreter(&bytes)? {
        return Err(format!(
            "{} is dynamically linked (it has an ELF interpreter)\nHint: build for {TARGET}",
            binary.display()
        ));
    }
    for tool in ["file", "ldd"] {
        if find_on_path(tool).is_some() {
            // ldd exits non-zero for a static binary; its message is what we show.
            let output = Command::new(tool)
                .arg(binary)
                .output()
                .map_err(|error| format!("cannot run {tool}: {error}"))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            println!("{tool}: {}", text.trim());
        }
    }
    Ok(())
}

/// Reads the ELF64 little-endian program headers and reports whether any is `PT_INTERP`.
fn has_program_interpreter(elf: &[u8]) -> Result<bool, String> {
    const PT_INTERP: u32 = 3;
    let read_u16 = |offset: usize| -> Option<u16> {
        Some(u16::from_le_bytes(
            elf.get(offset..offset + 2)?.try_into().ok()?,
        ))
    };
    let read_u32 = |offset: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            elf.get(offset..offset + 4)?.try_into().ok()?,
        ))
    };
    let read_u64 = |offset: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            elf.get(offset..offset + 8)?.try_into().ok()?,
        ))
    };
    let not_elf = || "dist/bureau is not an ELF64 little-endian executable".to_owned();
    if elf.get(0..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(not_elf());
    }
    let header_offset =
        usize::try_from(read_u64(0x20).ok_or_else(not_elf)?).map_err(|_| not_elf())?;
    let entry_size = usize::from(read_u16(0x36).ok_or_else(not_elf)?);
    let entry_count = usize::from(read_u16(0x38).ok_or_else(not_elf)?);
    for index in 0..entry_count {
        let entry_type = read_u32(header_offset + index * entry_size).ok_or_else(not_elf)?;
        if entry_type == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}
