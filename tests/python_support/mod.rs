//! Python clients nobody here wrote, for interop tests: one venv per PyPI package under
//! `bureau::homeserver::cache_dir()`, created and filled on first use under a file lock (so
//! concurrent test binaries install it once), and reinstalled when the pinned version is not
//! the one installed.

use std::path::PathBuf;
use std::process::Command;

/// The Python of a venv holding `package==version` (importable as `module`).
pub fn python_with(package: &str, version: &str, module: &str) -> PathBuf {
    let cache = bureau::homeserver::cache_dir();
    let venv = cache.join(format!("{package}-venv"));
    let python = venv.join("bin/python");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let lock =
        std::fs::File::create(cache.join(format!(".{package}-install.lock"))).expect("lock file");
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    let check = format!(
        "import {module}; from importlib.metadata import version; \
         assert version({package:?}) == {version:?}"
    );
    let ready = Command::new(&python)
        .args(["-c", &check])
        .output()
        .is_ok_and(|output| output.status.success());
    if !ready {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(
            status.success(),
            "creating the {package} venv failed (python3-venv missing?)"
        );
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}"))
            .status()
            .expect("pip install");
        assert!(
            status.success(),
            "installing {package}=={version} from PyPI failed"
        );
    }
    python
}
