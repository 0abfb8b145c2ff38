//! Code layout of the shipped binary: the functions that run when a proxy or a sandbox starts
//! sit together, so an idle process maps little of the file (used by `cargo xtask dist`).
//!
//! Why: every process on a machine maps the same 12 MiB binary, and the kernel maps 64 KiB
//! around each code page a process first touches. One function that runs among thousands
//! that never do costs 64 KiB of resident memory per process. PGO (`pgo.rs`) alone leaves the
//! functions that run spread out: it moves code it saw run to `.text.hot` and code it saw idle
//! to `.text.unlikely`, but an idle proxy still touched 1.7 MiB of `.text.unlikely` (`#[cold]`
//! functions that do run, small functions inlined while the profile was taken) and std, C and
//! aws-lc code the profile cannot see.
//!
//! How: the release build links through `cargo xtask link`, a wrapper around `cc`. It lists the
//! functions defined in the link's inputs (`llvm-nm`), writes them in the order below to
//! `target/pgo/symbol-order.txt` and links with rust-lld's `--symbol-ordering-file`, which puts
//! those functions first in `.text`, in that order (the link map is `target/pgo/bureau.map`):
//! 1. Rust functions the profile saw run, most-run first;
//! 2. functions with Rust names the profile has no record of: std and core (compiled before our
//!    instrumentation, so their callers cannot be told apart) and libunwind;
//! 3. functions with C names other than aws-lc's: musl, mimalloc, the start-up objects,
//!    compiler-builtins;
//! 4. aws-lc's library constructor and the CPU probe it calls, which run in every process.
//!
//! Everything else (functions the profile saw never run, the rest of aws-lc) follows in the
//! linker's own order. The link also packs relative relocations (`-z pack-relative-relocs`,
//! RELR): a static PIE relocates itself at start, and its 400 KiB relocation table otherwise
//! stays resident in every process; RELR encodes it in 5 KiB. musl applies RELR from 1.2.4 on
//! (rustup's musl targets ship 1.2.5); a binary whose relocations were not applied crashes at
//! its first instruction that uses one, which `dist` would see when it runs the binary.
//!
//! The wrapper records each link it made (`target/pgo/linked`); `dist` refuses a binary it did
//! not link, and a link whose order holds none of the profile's functions fails.
//!
//! Measured with `cargo xtask bench proxy`'s idle proxy (one request, then idle): VmRSS
//! 4.72–4.79 → 3.43 MiB, of which RELR 0.44 MiB; the binary's resident code 3.1 → 2.0 MiB.
//! Throughput and latency did not move (1.05× nginx's req/s, 42 µs added at one connection).
//! Ordering only the functions the profile saw run left an idle proxy at 4.3 MiB: the std and C
//! groups, and the training's one request on its own connection (`bench_proxy::train`), took
//! it the rest of the way.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{process, toolchain};

/// aws-lc's functions that run in every process: its library constructor and the CPU feature
/// probe the constructor calls (aws-lc-sys prefixes exported names with its version).
fn is_aws_lc_startup(name: &str) -> bool {
    name == "do_library_init" || name.ends_with("_OPENSSL_cpuid_setup")
}

/// Writes the wrapper (`target/pgo/layout-cc`) that links with `profile`'s layout and returns
/// the environment variable naming it the release build's linker for `target`, with its value.
pub fn linker(root: &Path, target: &str, profile: &Path) -> Result<(String, PathBuf), String> {
    let variable = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace('-', "_")
    );
    if let Some(chosen) = std::env::var_os(&variable) {
        return Err(format!(
            "{variable} is set ({}), but the release build links through its own wrapper \
             (xtask/src/layout.rs)\nHint: unset {variable} for `cargo xtask dist`",
            chosen.to_string_lossy()
        ));
    }
    // Fail before the build rather than at its last step.
    gcc_ld_dir(&toolchain::host_tools_dir()?)?;
    let xtask = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    let wrapper = root.join("target/pgo/layout-cc");
    let script = format!(
        "#!/bin/sh\n# The release build's linker: `cargo xtask link` (xtask/src/layout.rs).\n\
         exec {} link {} \"$@\"\n",
        shell_quote(&xtask),
        shell_quote(profile)
    );
    fs::write(&wrapper, script)
        .map_err(|error| format!("cannot write {}: {error}", wrapper.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755))
            .map_err(|error| format!("cannot make {} executable: {error}", wrapper.display()))?;
    }
    Ok((variable, wrapper))
}

/// After the release build with `profile`: the binary at `built` is the wrapper's last link
/// (not an older one, nor one made by another linker); returns the wrapper's summary of it.
pub fn check_linked(profile: &Path, built: &Path) -> Result<String, String> {
    let stamp = profile.with_file_name(STAMP);
    if !stamp.is_file() || crate::pgo::is_newer(built, &stamp) {
        return Err(format!(
            "{} was not linked by `cargo xtask link` (no record in {} after it): its code is \
             not laid out\nHint: remove any -Clinker from RUSTFLAGS and run `cargo xtask dist` \
             again",
            built.display(),
            stamp.display()
        ));
    }
    fs::read_to_string(&stamp)
        .map(|summary| summary.trim().to_owned())
        .map_err(|error| format!("cannot read {}: {error}", stamp.display()))
}

/// Where the wrapper records its last link (beside the profile): the summary of its order,
/// written after the link.
const STAMP: &str = "linked";

/// `cargo xtask link PROFILE CC-ARGS…`: orders the functions the link defines (module docs),
/// then runs `cc CC-ARGS…` with rust-lld, the order and RELR.
pub fn link(args: &[String]) -> Result<(), String> {
    let Some((profile, cc_args)) = args.split_first() else {
        return Err("usage: cargo xtask link PROFILE CC-ARGS… (the release build's linker)".into());
    };
    let profile = Path::new(profile);
    let tools = toolchain::host_tools_dir()?;
    let counts = profile_counts(profile)?;
    let expanded = expand_response_files(cc_args)?;
    let functions = defined_functions(&expanded, &profile.with_file_name("nm-inputs"))?;
    let (order, groups) = order(&counts, &functions);
    if groups.ran == 0 {
        return Err(format!(
            "none of the {} functions this link defines is one {} saw run: the profile does \
             not belong to this build\nHint: delete target/pgo and run `cargo xtask dist` again",
            functions.len(),
            profile.display()
        ));
    }
    let order_file = profile.with_file_name("symbol-order.txt");
    let map_file = profile.with_file_name("bureau.map");
    fs::write(&order_file, order.join("\n") + "\n")
        .map_err(|error| format!("cannot write {}: {error}", order_file.display()))?;

    let status = Command::new("cc")
        .args(cc_args)
        .arg("-fuse-ld=lld")
        .arg(format!("-B{}", gcc_ld_dir(&tools)?.display()))
        .arg(format!(
            "-Wl,--symbol-ordering-file={}",
            order_file.display()
        ))
        // The order names every function of every input, and the link leaves many out (archive
        // members nothing uses, sections `--gc-sections` drops): not worth a warning each.
        .arg("-Wl,--no-warn-symbol-ordering")
        .arg("-Wl,-z,pack-relative-relocs")
        // Where each function landed, for checking the layout against an idle process's pages.
        .arg(format!("-Wl,-Map={}", map_file.display()))
        .status()
        .map_err(|error| format!("cannot run cc: {error}"))?;
    if !status.success() {
        return Err(format!("cc (linking with rust-lld) failed: {status}"));
    }
    let stamp = profile.with_file_name(STAMP);
    let summary = format!(
        "layout: {} functions first in .text ({} the profile saw run, {} std and libunwind, \
         {} C, {} aws-lc start-up), RELR relocations",
        order.len(),
        groups.ran,
        groups.unprofiled_rust,
        groups.c,
        groups.aws_lc_startup
    );
    fs::write(&stamp, summary + "\n")
        .map_err(|error| format!("cannot write {}: {error}", stamp.display()))
}

/// A function defined in the link: its symbol and the input (object or archive) it came from.
struct Defined {
    symbol: String,
    input: String,
}

/// How many functions of each group (module docs) the order holds.
#[derive(Debug, Default, PartialEq)]
struct Groups {
    ran: usize,
    unprofiled_rust: usize,
    c: usize,
    aws_lc_startup: usize,
}

/// The link order (module docs) of `functions`, given the profile's `counts` (function name →
/// its highest counter; the profile is merged without `--sparse`, so every function it
/// instrumented is present, those that never ran with 0).
fn order(counts: &HashMap<String, u64>, functions: &[Defined]) -> (Vec<String>, Groups) {
    let mut ran = Vec::new();
    let mut unprofiled_rust = Vec::new();
    let mut c = Vec::new();
    let mut aws_lc_startup = Vec::new();
    for function in functions {
        let symbol = function.symbol.as_str();
        if is_rust(symbol) {
            match counts.get(profile_name(symbol)) {
                Some(&count) if count > 0 => ran.push((count, symbol)),
                Some(_) => {}
                None => unprofiled_rust.push(symbol),
            }
        } else if !function.input.contains("aws_lc") {
            c.push(symbol);
        } else if is_aws_lc_startup(symbol) {
            aws_lc_startup.push(symbol);
        }
    }
    ran.sort_by(|left, right| right.0.cmp(&left.0).then(left.1.cmp(right.1)));
    let mut seen: HashSet<String> = HashSet::new();
    let mut unique = |symbols: Vec<&str>| -> Vec<String> {
        symbols
            .into_iter()
            .filter(|symbol| seen.insert((*symbol).to_owned()))
            .map(str::to_owned)
            .collect()
    };
    let groups = [
        unique(ran.into_iter().map(|(_, symbol)| symbol).collect()),
        unique(unprofiled_rust),
        unique(c),
        unique(aws_lc_startup),
    ];
    let sizes = Groups {
        ran: groups[0].len(),
        unprofiled_rust: groups[1].len(),
        c: groups[2].len(),
        aws_lc_startup: groups[3].len(),
    };
    (groups.concat(), sizes)
}

/// Rust's mangled names (legacy `_ZN…`, v0 `_R…`; libunwind's C++ names look like the legacy
/// ones); the C code linked in has neither.
fn is_rust(symbol: &str) -> bool {
    symbol.starts_with("_ZN") || symbol.starts_with("_R")
}

/// The name the profile knows `symbol` by: ThinLTO renames functions it makes visible across
/// modules to `NAME.llvm.DIGITS` after the profile was taken.
fn profile_name(symbol: &str) -> &str {
    match symbol.rsplit_once(".llvm.") {
        Some((name, digits)) if digits.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => symbol,
    }
}

/// Function name → its highest block count, from `llvm-profdata show --all-functions
/// --counts`. Local functions appear as `MODULE;NAME`; the module is dropped.
fn profile_counts(profile: &Path) -> Result<HashMap<String, u64>, String> {
    let text = process::output(
        Command::new(toolchain::llvm_tool("llvm-profdata")?)
            .args(["show", "--all-functions", "--counts"])
            .arg(profile),
    )?;
    parse_profile_counts(&text)
}

fn parse_profile_counts(text: &str) -> Result<HashMap<String, u64>, String> {
    let mut counts = HashMap::new();
    let mut function: Option<&str> = None;
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix("  ")
            .filter(|rest| !rest.starts_with(' '))
            .and_then(|rest| rest.strip_suffix(':'))
        {
            function = Some(name.rsplit_once(';').map_or(name, |(_, name)| name));
        } else if let Some(list) = line.trim_start().strip_prefix("Block counts: ") {
            let name = function.ok_or_else(|| {
                format!("llvm-profdata printed block counts before a function: {line:?}")
            })?;
            let highest = list
                .trim_matches(|c| c == '[' || c == ']')
                .split(',')
                .filter(|count| !count.trim().is_empty())
                .map(|count| {
                    count.trim().parse::<u64>().map_err(|error| {
                        format!("llvm-profdata printed a count {count:?} for {name}: {error}")
                    })
                })
                .try_fold(0, |highest, count| count.map(|count| highest.max(count)))?;
            let entry = counts.entry(name.to_owned()).or_insert(0);
            *entry = (*entry).max(highest);
        }
    }
    if counts.is_empty() {
        return Err("llvm-profdata listed no functions: is the profile empty?".into());
    }
    Ok(counts)
}

/// Rustc passes a command line too long for the kernel as `@FILE`: one argument per line, with
/// a backslash before each backslash and space (GNU response-file quoting).
fn expand_response_files(args: &[String]) -> Result<Vec<String>, String> {
    let mut expanded = Vec::new();
    for arg in args {
        match arg.strip_prefix('@') {
            Some(file) => {
                let text = fs::read_to_string(file)
                    .map_err(|error| format!("cannot read the linker's {arg}: {error}"))?;
                expanded.extend(text.lines().map(unescape));
            }
            None => expanded.push(arg.clone()),
        }
    }
    Ok(expanded)
}

/// One response-file line without its escapes (`\\` → `\`, `\ ` → ` `).
fn unescape(line: &str) -> String {
    let mut text = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        text.extend(if c == '\\' { chars.next() } else { Some(c) });
    }
    text
}

/// A response-file line for `path` (the quoting `unescape` undoes).
fn escape(path: &Path) -> String {
    let mut text = String::new();
    for c in path.display().to_string().chars() {
        if matches!(c, '\\' | ' ' | '\'' | '"') {
            text.push('\\');
        }
        text.push(c);
    }
    text
}

/// What a link reads, from its arguments: objects and archives named as paths, archives named
/// as libraries (`-lNAME` → `libNAME.a`, `-l:FILE` → `FILE`), and the `-L` directories holding
/// them. Rustc names libraries before their directories.
#[derive(Debug, Default, PartialEq)]
struct LinkInputs {
    paths: Vec<PathBuf>,
    archives: Vec<String>,
    search: Vec<PathBuf>,
}

fn link_inputs(cc_args: &[String]) -> LinkInputs {
    let mut inputs = LinkInputs::default();
    let mut args = cc_args.iter();
    while let Some(arg) = args.next() {
        if arg == "-L" {
            inputs.search.extend(args.next().map(PathBuf::from));
        } else if let Some(dir) = arg.strip_prefix("-L") {
            inputs.search.push(PathBuf::from(dir));
        } else if let Some(library) = arg.strip_prefix("-l") {
            inputs.archives.push(match library.strip_prefix(':') {
                Some(file) => file.to_owned(),
                None => format!("lib{library}.a"),
            });
        } else if [".o", ".a", ".rlib"]
            .iter()
            .any(|suffix| arg.ends_with(suffix))
        {
            inputs.paths.push(PathBuf::from(arg));
        }
    }
    inputs
}

/// The functions (`T`, `t` and weak `W` symbols) defined in the link's objects and archives.
/// Archives named as libraries and found on no `-L` directory are left out (dynamic libraries,
/// which a static link has none of). The inputs reach llvm-nm through `list` (a response file),
/// as they may not fit on a command line.
fn defined_functions(cc_args: &[String], list: &Path) -> Result<Vec<Defined>, String> {
    let LinkInputs {
        mut paths,
        archives,
        search,
    } = link_inputs(cc_args);
    for archive in archives {
        paths.extend(
            search
                .iter()
                .map(|dir| dir.join(&archive))
                .find(|path| path.is_file()),
        );
    }
    let lines: Vec<String> = paths.iter().map(|path| escape(path)).collect();
    fs::write(list, lines.join("\n") + "\n")
        .map_err(|error| format!("cannot write {}: {error}", list.display()))?;
    let listing = process::output(
        Command::new(toolchain::llvm_tool("llvm-nm")?)
            .args(["--defined-only", "--print-file-name", "--no-sort"])
            .arg(format!("@{}", list.display())),
    )?;
    Ok(parse_nm(&listing))
}

/// `llvm-nm --print-file-name` lines: `INPUT[:MEMBER]: ADDRESS TYPE NAME`.
fn parse_nm(listing: &str) -> Vec<Defined> {
    listing
        .lines()
        .filter_map(|line| {
            let (input, rest) = line.rsplit_once(": ")?;
            let mut fields = rest.split_whitespace();
            let (_address, kind, symbol) = (fields.next()?, fields.next()?, fields.next()?);
            matches!(kind, "T" | "t" | "W").then(|| Defined {
                symbol: symbol.to_owned(),
                input: input.to_owned(),
            })
        })
        .collect()
}

/// The directory among the toolchain's `tools` holding `ld.lld` for `cc -fuse-ld=lld` (rust-lld
/// behind a wrapper).
fn gcc_ld_dir(tools: &Path) -> Result<PathBuf, String> {
    let dir = tools.join("gcc-ld");
    if dir.join("ld.lld").is_file() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is missing: the release build links with the toolchain's rust-lld\nHint: \
             reinstall the toolchain with rustup (rust-lld ships with it)",
            dir.join("ld.lld").display()
        ))
    }
}

/// `path` in single quotes for sh.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defined(symbol: &str, input: &str) -> Defined {
        Defined {
            symbol: symbol.into(),
            input: input.into(),
        }
    }

    #[test]
    fn functions_that_ran_come_first_most_run_first_then_unprofiled_rust_then_c() {
        let counts = HashMap::from([
            ("_ZN4warm17hE".to_owned(), 10),
            ("_ZN3hot17hE".to_owned(), 500),
            ("_ZN4idle17hE".to_owned(), 0),
        ]);
        let functions = [
            defined("memcpy", "libc.a:memcpy.lo"),
            defined("_ZN4idle17hE", "bureau.o"),
            defined("_ZN4warm17hE.llvm.123", "bureau.o"),
            defined(
                "_RNvNtCs1_3std2io5stdin",
                "bureau.std-1a2b.std.cgu.0.rcgu.o",
            ),
            defined("aws_lc_0_47_0_BN_mul", "libaws_lc_sys.rlib:bn.o"),
            defined(
                "aws_lc_0_47_0_OPENSSL_cpuid_setup",
                "libaws_lc_sys.rlib:cpu.o",
            ),
            defined("_ZN3hot17hE", "bureau.o"),
            defined("memcpy", "libc.a:memcpy.lo"),
        ];
        let (order, groups) = order(&counts, &functions);
        assert_eq!(
            order,
            [
                "_ZN3hot17hE",
                "_ZN4warm17hE.llvm.123",
                "_RNvNtCs1_3std2io5stdin",
                "memcpy",
                "aws_lc_0_47_0_OPENSSL_cpuid_setup",
            ]
        );
        assert_eq!(
            groups,
            Groups {
                ran: 2,
                unprofiled_rust: 1,
                c: 1,
                aws_lc_startup: 1
            }
        );
    }

    #[test]
    fn profile_names_drop_the_module_and_keep_the_highest_count() {
        let text = [
            "Counters:",
            "  main:",
            "    Hash: 0x1",
            "    Counters: 1",
            "    Block counts: [7]",
            "  a.rs;_ZN1f17hE:",
            "    Hash: 0x2",
            "    Counters: 3",
            "    Block counts: [0, 42, 3]",
            "  b.rs;_ZN1f17hE:",
            "    Hash: 0x3",
            "    Counters: 1",
            "    Block counts: [5]",
            "Instrumentation level: IR",
            "Functions shown: 3",
        ]
        .join("\n");
        let counts = parse_profile_counts(&text).unwrap();
        assert_eq!(counts["main"], 7);
        assert_eq!(counts["_ZN1f17hE"], 42);
        assert_eq!(counts.len(), 2);
    }

    #[test]
    fn thinlto_suffixes_are_dropped_only_when_numeric() {
        assert_eq!(profile_name("_ZN1f17hE.llvm.8812"), "_ZN1f17hE");
        assert_eq!(profile_name("_ZN1f17hE"), "_ZN1f17hE");
        assert_eq!(profile_name("x.llvm.abc"), "x.llvm.abc");
    }

    #[test]
    fn link_arguments_give_objects_archives_and_directories() {
        let args: Vec<String> = [
            "/t/crt1.o",
            "-nostartfiles",
            "/t/deps/bureau.rcgu.o",
            "/t/libaws.rlib",
            "-Wl,-Bstatic",
            "-lunwind",
            "-l:libspecial.a",
            "-L",
            "/t/self contained",
            "-L/t/lib",
            "-o",
            "/t/bureau",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            link_inputs(&args),
            LinkInputs {
                paths: ["/t/crt1.o", "/t/deps/bureau.rcgu.o", "/t/libaws.rlib"]
                    .map(PathBuf::from)
                    .into(),
                archives: vec!["libunwind.a".into(), "libspecial.a".into()],
                search: vec!["/t/self contained".into(), "/t/lib".into()],
            }
        );
    }

    #[test]
    fn response_file_escapes_round_trip() {
        assert_eq!(
            unescape(r"/t/self\ contained/libc.a"),
            "/t/self contained/libc.a"
        );
        assert_eq!(unescape(r"a\\b"), r"a\b");
        let path = Path::new(r"/t/it's a\dir/x.o");
        assert_eq!(unescape(&escape(path)), path.display().to_string());
    }

    #[test]
    fn nm_lines_give_functions_and_their_input() {
        let listing = "/t/libc.a:memcpy.lo: 0000000000000000 T memcpy\n\
                       /t/x.o: 0000000000000010 r .Lanon\n\
                       /t/x.o: 0000000000000020 t _ZN1f17hE.llvm.1\n\
                       /t/a: b/y.o: 0000000000000030 W weak_function\n\
                       /t/x.o: 0000000000000040 D data\n";
        let functions = parse_nm(listing);
        assert_eq!(functions.len(), 3);
        assert_eq!(functions[2].input, "/t/a: b/y.o");
        assert_eq!(functions[2].symbol, "weak_function");
        assert_eq!(functions[0].input, "/t/libc.a:memcpy.lo");
        assert_eq!(functions[1].symbol, "_ZN1f17hE.llvm.1");
    }
}
