//! Installing the applet symlinks (`bureau install`).
//!
//! Invariant: all or nothing, and never clobber. Every link is checked before any is written; a
//! path that holds something Bureau did not install (a regular file, or a symlink to another
//! program) stops the whole install with an error naming it. Each link is written by creating a
//! temporary symlink and renaming it over the old one, so a link is never missing midway.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What happened to one link.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkAction {
    /// The link did not exist and was created.
    Created,
    /// A link of ours pointed elsewhere (an older install) and now points at this binary.
    Replaced,
    /// The link already pointed at this binary.
    Unchanged,
    /// The path is the binary itself (installing into the binary's own directory).
    IsBinary,
}

/// One link and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkOutcome {
    pub path: PathBuf,
    pub target: PathBuf,
    pub action: LinkAction,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot find the running binary: {0}\nHint: run `bureau install` by its full path")]
    CurrentExe(#[source] io::Error),
    #[error("cannot create the directory {path}: {source}\nHint: check that you may write there")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", describe_conflicts(.conflicts))]
    NotOurs { conflicts: Vec<Conflict> },
    #[error("cannot write the link {path}: {source}")]
    WriteLink {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot inspect {path}: {source}")]
    Inspect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn describe_conflicts(conflicts: &[Conflict]) -> String {
    let mut text = String::new();
    for conflict in conflicts {
        text.push_str(&format!(
            "refusing to replace {}: it is {} that bureau did not install\n",
            conflict.path.display(),
            conflict.what
        ));
    }
    text.push_str("Hint: move it aside, or install into another directory; nothing was changed");
    text
}

/// A path that holds something that is not ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: PathBuf,
    /// "a regular file", "a directory", "a symlink to /usr/bin/python3", …
    pub what: String,
}

/// The name the binary is installed under; the applets link to it.
pub const BINARY_NAME: &str = "bureau";

/// Installs `bureau` and `bureau-<name>` for each of `applet_names` into `bin_dir`, pointing at
/// `binary`. When `binary` already lives in `bin_dir` the applet links are relative
/// (`bureau-sandbox -> bureau`), so the directory can be moved or copied as a whole; otherwise
/// `bin_dir/bureau` is a link to the binary's absolute path and the applets link to it.
///
/// Example: `install_links("/usr/local/bin", "/opt/bureau/bureau", &["sandbox"])` creates
/// `/usr/local/bin/bureau -> /opt/bureau/bureau` and `/usr/local/bin/bureau-sandbox -> bureau`.
pub fn install_links(
    bin_dir: &Path,
    binary: &Path,
    applet_names: &[&str],
) -> Result<Vec<LinkOutcome>, InstallError> {
    fs::create_dir_all(bin_dir).map_err(|source| InstallError::CreateDir {
        path: bin_dir.to_owned(),
        source,
    })?;
    let binary = fs::canonicalize(binary).map_err(InstallError::CurrentExe)?;
    let binary_identity = FileIdentity::of(&binary)?;

    let mut planned = Vec::new();
    let main_path = bin_dir.join(BINARY_NAME);
    let main_is_binary = FileIdentity::of(&main_path).ok() == Some(binary_identity);
    if !main_is_binary {
        planned.push((main_path, binary.clone()));
    }
    for name in applet_names {
        planned.push((
            bin_dir.join(format!("{BINARY_NAME}-{name}")),
            PathBuf::from(BINARY_NAME),
        ));
    }

    // Check everything first: nothing is written if anything is in the way.
    let mut decisions = Vec::new();
    let mut conflicts = Vec::new();
    if main_is_binary {
        decisions.push(LinkOutcome {
            path: bin_dir.join(BINARY_NAME),
            target: binary.clone(),
            action: LinkAction::IsBinary,
        });
    }
    for (path, target) in planned {
        match decide(&path, &target, binary_identity)? {
            Ok(action) => decisions.push(LinkOutcome {
                path,
                target,
                action,
            }),
            Err(what) => conflicts.push(Conflict { path, what }),
        }
    }
    if !conflicts.is_empty() {
        return Err(InstallError::NotOurs { conflicts });
    }

    for outcome in &decisions {
        if matches!(outcome.action, LinkAction::Created | LinkAction::Replaced) {
            write_link(&outcome.path, &outcome.target)?;
        }
    }
    Ok(decisions)
}

/// Device and inode: two paths name the same file when these are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    device: u64,
    inode: u64,
}

impl FileIdentity {
    fn of(path: &Path) -> Result<Self, InstallError> {
        let metadata = fs::metadata(path).map_err(|source| InstallError::Inspect {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            device: metadata.dev(),
            inode: metadata.ino(),
        })
    }
}

/// What to do at `path`: `Ok(action)`, or `Err(description)` when something not ours is there.
///
/// A symlink is ours when it already points at the binary (directly or through another link),
/// or when its target's file name is `bureau` (an install of an older binary, possibly gone).
fn decide(
    path: &Path,
    target: &Path,
    binary: FileIdentity,
) -> Result<Result<LinkAction, String>, InstallError> {
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Ok(Ok(LinkAction::Created));
        }
        Err(source) => {
            return Err(InstallError::Inspect {
                path: path.to_owned(),
                source,
            });
        }
    };
    if !metadata.file_type().is_symlink() {
        let what = if metadata.is_dir() {
            "a directory"
        } else {
            "a regular file"
        };
        return Ok(Err(what.to_owned()));
    }
    let existing = fs::read_link(path).map_err(|source| InstallError::Inspect {
        path: path.to_owned(),
        source,
    })?;
    if existing == target {
        return Ok(Ok(LinkAction::Unchanged));
    }
    let points_at_binary = FileIdentity::of(path).ok() == Some(binary);
    let names_bureau = existing.file_name().is_some_and(|name| name == BINARY_NAME);
    if points_at_binary || names_bureau {
        Ok(Ok(LinkAction::Replaced))
    } else {
        Ok(Err(format!("a symlink to {}", existing.display())))
    }
}

/// Atomically points `path` at `target`: a temporary link beside it, renamed over it.
fn write_link(path: &Path, target: &Path) -> Result<(), InstallError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let wrap = |source| InstallError::WriteLink {
        path: path.to_owned(),
        source,
    };
    // A stale temporary from a crashed install is ours to remove.
    match fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(wrap(error)),
    }
    std::os::unix::fs::symlink(target, &temporary).map_err(wrap)?;
    fs::rename(&temporary, path).map_err(|error| {
        let _ = fs::remove_file(&temporary);
        wrap(error)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_binary(dir: &Path) -> PathBuf {
        let binary = dir.join("bureau");
        fs::write(&binary, b"not really an executable").expect("write fake binary");
        binary
    }

    #[test]
    fn installs_relative_links_beside_the_binary_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = fake_binary(dir.path());

        let first = install_links(dir.path(), &binary, &["sandbox", "proxy"]).expect("install");
        let actions: Vec<_> = first.iter().map(|o| o.action.clone()).collect();
        assert_eq!(
            actions,
            [
                LinkAction::IsBinary,
                LinkAction::Created,
                LinkAction::Created
            ]
        );
        assert_eq!(
            fs::read_link(dir.path().join("bureau-sandbox")).expect("link"),
            PathBuf::from("bureau")
        );

        let second = install_links(dir.path(), &binary, &["sandbox", "proxy"]).expect("again");
        assert!(
            second[1..]
                .iter()
                .all(|outcome| outcome.action == LinkAction::Unchanged)
        );
    }

    #[test]
    fn installs_into_another_directory_through_a_link_to_the_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = fake_binary(dir.path());
        let bin_dir = dir.path().join("prefix/bin");

        install_links(&bin_dir, &binary, &["doctor"]).expect("install");
        let main_target = fs::read_link(bin_dir.join("bureau")).expect("main link");
        assert_eq!(main_target, fs::canonicalize(&binary).expect("canonical"));
        assert_eq!(
            fs::read(bin_dir.join("bureau-doctor")).expect("follows to the binary"),
            b"not really an executable"
        );
    }

    #[test]
    fn refuses_to_replace_a_file_that_is_not_ours_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = fake_binary(dir.path());
        let foreign = dir.path().join("bureau-proxy");
        fs::write(&foreign, b"someone else's").expect("write");

        let error = install_links(dir.path(), &binary, &["sandbox", "proxy"])
            .expect_err("must refuse a foreign file");
        let message = error.to_string();
        assert!(message.contains("bureau-proxy"), "{message}");
        assert!(message.contains("regular file"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
        // All or nothing: the sandbox link, checked before the conflict, was not written.
        assert!(fs::symlink_metadata(dir.path().join("bureau-sandbox")).is_err());
        assert_eq!(fs::read(&foreign).expect("kept"), b"someone else's");
    }

    #[test]
    fn refuses_a_symlink_to_another_program_but_replaces_an_old_install() {
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = fake_binary(dir.path());
        let bin_dir = dir.path().join("bin");
        fs::create_dir(&bin_dir).expect("mkdir");

        std::os::unix::fs::symlink("/usr/bin/python3", bin_dir.join("bureau-bridge"))
            .expect("foreign link");
        let error = install_links(&bin_dir, &binary, &["bridge"]).expect_err("foreign symlink");
        assert!(error.to_string().contains("/usr/bin/python3"), "{error}");

        fs::remove_file(bin_dir.join("bureau-bridge")).expect("rm");
        std::os::unix::fs::symlink("/old/place/bureau", bin_dir.join("bureau"))
            .expect("old install");
        let outcomes = install_links(&bin_dir, &binary, &["bridge"]).expect("replace old");
        assert_eq!(outcomes[0].action, LinkAction::Replaced);
    }
}
