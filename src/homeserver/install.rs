//! The shared venv holding the pinned Synapse: created once, under a file lock, then found by a
//! stamp file without starting Python.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::process::{output_detail, tail_lines};
use super::{HomeserverError, SYNAPSE_VERSION};

/// Environment variable naming the interpreter that creates the venv (default `python3`).
const PYTHON_ENV: &str = "BUREAU_HOMESERVER_PYTHON";

/// Written into the venv after a verified install; holds [`SYNAPSE_VERSION`].
const STAMP: &str = ".bureau-installed";

/// The venv [`install`] creates under `cache` (one per Synapse version, so a version bump
/// installs beside the old one instead of mutating it).
pub fn venv_dir(cache: &Path) -> PathBuf {
    cache.join(format!("synapse-{SYNAPSE_VERSION}"))
}

/// Installs `matrix-synapse==`[`SYNAPSE_VERSION`] into a venv under `cache` unless it is there
/// already; returns the venv.
///
/// Idempotent and safe to call from many processes at once: the first one installs (25–40 s, a
/// ~40 MB download from PyPI) while the others wait on `cache/install.lock`. After a verified
/// install a stamp file makes later calls a single `stat`.
pub fn install(cache: &Path) -> Result<PathBuf, HomeserverError> {
    let venv = venv_dir(cache);
    if is_stamped(&venv) {
        return Ok(venv);
    }
    let cache_error = |source| HomeserverError::Cache {
        path: cache.to_path_buf(),
        source,
    };
    fs::create_dir_all(cache).map_err(cache_error)?;
    let lock_path = cache.join("install.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(cache_error)?;
    // Blocks while another process installs; released when `lock` is dropped (or that process
    // dies), so a crashed installer never wedges the next one.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|errno| HomeserverError::io("lock", &lock_path, errno.into()))?;
    if is_stamped(&venv) {
        return Ok(venv);
    }
    // Not stamped: maybe an install finished without its stamp; otherwise start over, because a
    // half-made venv (interrupted pip, missing ensurepip) is not worth repairing.
    if installed_version(&venv).as_deref() != Some(SYNAPSE_VERSION) {
        if venv.exists() {
            fs::remove_dir_all(&venv).map_err(|source| {
                HomeserverError::io("remove the incomplete venv", &venv, source)
            })?;
        }
        create_venv(&venv)?;
        pip_install(&venv)?;
        match installed_version(&venv) {
            Some(version) if version == SYNAPSE_VERSION => {}
            found => {
                return Err(HomeserverError::Install {
                    venv,
                    step: "checking `import synapse`".into(),
                    detail: format!(
                        "expected synapse {SYNAPSE_VERSION}, found {}",
                        found.as_deref().unwrap_or("no importable synapse")
                    ),
                    hint: "remove the venv directory and try again".into(),
                });
            }
        }
    }
    write_stamp(&venv)?;
    Ok(venv)
}

fn is_stamped(venv: &Path) -> bool {
    // `is_file` follows the venv's python symlink: if the base interpreter is gone, reinstall.
    venv.join("bin/python").is_file()
        && fs::read_to_string(venv.join(STAMP)).is_ok_and(|stamp| stamp.trim() == SYNAPSE_VERSION)
}

fn installed_version(venv: &Path) -> Option<String> {
    let python = venv.join("bin/python");
    if !python.is_file() {
        return None;
    }
    let output = Command::new(python)
        .args(["-c", "import synapse; print(synapse.__version__)"])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn create_venv(venv: &Path) -> Result<(), HomeserverError> {
    let python = std::env::var(PYTHON_ENV)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| "python3".to_owned());
    let version = Command::new(&python)
        .args([
            "-c",
            "import sys; print('%d.%d' % sys.version_info[:2]); sys.exit(sys.version_info < (3, 10))",
        ])
        .output()
        .map_err(|source| HomeserverError::PythonMissing {
            python: python.clone(),
            source,
        })?;
    if !version.status.success() {
        return Err(HomeserverError::Install {
            venv: venv.to_path_buf(),
            step: format!("checking the version of {python}"),
            detail: format!(
                "{python} is Python {}; Synapse {SYNAPSE_VERSION} needs Python 3.10 or newer",
                String::from_utf8_lossy(&version.stdout).trim()
            ),
            hint: format!("install a newer Python, or set {PYTHON_ENV} to one"),
        });
    }
    let output = Command::new(&python)
        .args(["-m", "venv"])
        .arg(venv)
        .output()
        .map_err(|source| HomeserverError::PythonMissing {
            python: python.clone(),
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    // Leave nothing half-made behind; the next attempt starts clean anyway.
    let _ = fs::remove_dir_all(venv);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("ensurepip") || stderr.contains("No module named venv") {
        return Err(HomeserverError::VenvUnavailable {
            python,
            venv: venv.to_path_buf(),
            stderr: tail_lines(&stderr, 10),
        });
    }
    Err(HomeserverError::Install {
        venv: venv.to_path_buf(),
        step: format!("`{python} -m venv`"),
        detail: output_detail(&output),
        hint: "check that the cache directory is writable and has ~250 MB free".into(),
    })
}

fn pip_install(venv: &Path) -> Result<(), HomeserverError> {
    let spec = format!("matrix-synapse=={SYNAPSE_VERSION}");
    let output = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            &spec,
        ])
        .output()
        .map_err(|source| match source.kind() {
            ErrorKind::NotFound => HomeserverError::Install {
                venv: venv.to_path_buf(),
                step: "running the venv's python".into(),
                detail: source.to_string(),
                hint: "remove the venv directory and try again".into(),
            },
            _ => HomeserverError::io("run pip in", venv, source),
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(HomeserverError::Install {
        venv: venv.to_path_buf(),
        step: format!("`pip install {spec}`"),
        detail: output_detail(&output),
        hint: "the first install downloads ~40 MB from PyPI: check network access (pip honours \
               PIP_INDEX_URL, HTTPS_PROXY and pip.conf)"
            .into(),
    })
}

fn write_stamp(venv: &Path) -> Result<(), HomeserverError> {
    let stamp = venv.join(STAMP);
    let temporary = venv.join(format!("{STAMP}.tmp"));
    fs::write(&temporary, format!("{SYNAPSE_VERSION}\n"))
        .and_then(|()| fs::rename(&temporary, &stamp))
        .map_err(|source| HomeserverError::io("write", stamp, source))
}
