//! Socket paths: where a principal's sockets live under the run directory, and the length bound
//! that follows from it.
//!
//! Invariant: a localpart accepted for a run directory yields socket paths that fit in
//! `sun_path` (108 bytes, including the NUL terminator), so `bind`/`connect` never fail (or,
//! worse, silently truncate) because of a long name.

use std::path::{Path, PathBuf};

use super::localpart::Localpart;

/// The run directory sockets live under unless the operator chooses another.
///
/// Example: `proxy_socket_path(Path::new(DEFAULT_RUN_DIR), &pm)` →
/// `/run/bureau/acme/fleet/prod/agent/pm.proxy.sock`.
pub const DEFAULT_RUN_DIR: &str = "/run/bureau";

/// Size of `sockaddr_un.sun_path` on Linux, including the NUL terminator.
///
/// Example: a socket path of 107 bytes fits; one of 108 bytes does not.
pub const SUN_PATH_LEN: usize = 108;

/// Suffix of a principal's credential-proxy socket.
///
/// Example: localpart `acme/agent/pm` → `<run-dir>/acme/agent/pm.proxy.sock`.
pub const PROXY_SOCKET_SUFFIX: &str = ".proxy.sock";

/// Suffix of a principal's admin socket (the longest suffix, so it sets the length bound).
///
/// Example: localpart `acme/agent/pm` → `<run-dir>/acme/agent/pm.admin.sock`.
pub const ADMIN_SOCKET_SUFFIX: &str = ".admin.sock";

/// The longest suffix any socket path gets; the length bound is computed from it.
const LONGEST_SOCKET_SUFFIX_LEN: usize = if ADMIN_SOCKET_SUFFIX.len() > PROXY_SOCKET_SUFFIX.len() {
    ADMIN_SOCKET_SUFFIX.len()
} else {
    PROXY_SOCKET_SUFFIX.len()
};

/// The longest localpart whose socket paths fit in `sun_path` under `run_dir`:
/// `108 - 1 (NUL) - len(run_dir) - 1 ('/') - len(".admin.sock")`, or 0 if `run_dir` is so long
/// that nothing fits.
///
/// Example: `max_localpart_len(Path::new("/run/bureau"))` → `84`.
///
/// ```
/// use std::path::Path;
/// use bureau::naming::max_localpart_len;
///
/// assert_eq!(max_localpart_len(Path::new("/run/bureau")), 84);
/// assert_eq!(max_localpart_len(Path::new(&"/x".repeat(100))), 0);
/// ```
pub fn max_localpart_len(run_dir: &Path) -> usize {
    SUN_PATH_LEN
        .saturating_sub(1)
        .saturating_sub(run_dir.as_os_str().len())
        .saturating_sub(1)
        .saturating_sub(LONGEST_SOCKET_SUFFIX_LEN)
}

/// The principal's credential-proxy socket: `<run_dir>/<localpart>.proxy.sock`.
///
/// The path fits in `sun_path` when `localpart` was parsed for this `run_dir`
/// ([`Localpart::parse`] for [`DEFAULT_RUN_DIR`], [`Localpart::parse_for_run_dir`] otherwise).
///
/// Example: (`/run/bureau`, `acme/fleet/prod/agent/pm`) →
/// `/run/bureau/acme/fleet/prod/agent/pm.proxy.sock`.
///
/// ```
/// use std::path::Path;
/// use bureau::naming::{Localpart, proxy_socket_path};
///
/// let pm = Localpart::parse("acme/fleet/prod/agent/pm")?;
/// assert_eq!(
///     proxy_socket_path(Path::new("/run/bureau"), &pm),
///     Path::new("/run/bureau/acme/fleet/prod/agent/pm.proxy.sock"),
/// );
/// # Ok::<(), bureau::naming::NameError>(())
/// ```
pub fn proxy_socket_path(run_dir: &Path, localpart: &Localpart) -> PathBuf {
    run_dir.join(format!("{localpart}{PROXY_SOCKET_SUFFIX}"))
}

/// The principal's admin socket: `<run_dir>/<localpart>.admin.sock`.
///
/// The path fits in `sun_path` when `localpart` was parsed for this `run_dir`.
///
/// Example: (`/run/bureau`, `acme/fleet/prod/agent/pm`) →
/// `/run/bureau/acme/fleet/prod/agent/pm.admin.sock`.
///
/// ```
/// use std::path::Path;
/// use bureau::naming::{Localpart, admin_socket_path};
///
/// let pm = Localpart::parse("acme/fleet/prod/agent/pm")?;
/// assert_eq!(
///     admin_socket_path(Path::new("/run/bureau"), &pm),
///     Path::new("/run/bureau/acme/fleet/prod/agent/pm.admin.sock"),
/// );
/// # Ok::<(), bureau::naming::NameError>(())
/// ```
pub fn admin_socket_path(run_dir: &Path, localpart: &Localpart) -> PathBuf {
    run_dir.join(format!("{localpart}{ADMIN_SOCKET_SUFFIX}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_run_dir_allows_84_bytes() {
        assert_eq!(max_localpart_len(Path::new(DEFAULT_RUN_DIR)), 84);
    }

    #[test]
    fn max_len_saturates_for_a_huge_run_dir() {
        let huge = "/r".repeat(60);
        assert_eq!(max_localpart_len(Path::new(&huge)), 0);
    }

    #[test]
    fn max_len_grows_as_the_run_dir_shrinks() {
        assert_eq!(max_localpart_len(Path::new("/run")), 91);
        assert_eq!(max_localpart_len(Path::new("/tmp/a/very/long/run/dir")), 71);
    }

    #[test]
    fn socket_paths_put_the_localpart_under_the_run_dir() {
        let pm = Localpart::parse("acme/fleet/prod/agent/pm").unwrap();
        let run_dir = Path::new(DEFAULT_RUN_DIR);
        assert_eq!(
            proxy_socket_path(run_dir, &pm),
            Path::new("/run/bureau/acme/fleet/prod/agent/pm.proxy.sock")
        );
        assert_eq!(
            admin_socket_path(run_dir, &pm),
            Path::new("/run/bureau/acme/fleet/prod/agent/pm.admin.sock")
        );
    }

    #[test]
    fn longest_localpart_admin_socket_fits_in_sun_path() {
        let run_dir = Path::new(DEFAULT_RUN_DIR);
        let name = format!("acme/{}", "a".repeat(84 - "acme/".len()));
        let localpart = Localpart::parse(&name).unwrap();
        let admin = admin_socket_path(run_dir, &localpart);
        let proxy = proxy_socket_path(run_dir, &localpart);
        assert_eq!(admin.as_os_str().len(), 107);
        assert!(
            admin.as_os_str().len() < SUN_PATH_LEN,
            "needs room for the NUL"
        );
        assert!(proxy.as_os_str().len() < SUN_PATH_LEN);

        let one_more = format!("{name}a");
        assert!(Localpart::parse(&one_more).is_err());
    }

    #[test]
    fn custom_run_dir_bound_is_exact() {
        let run_dir = Path::new("/var/lib/bureau/run");
        let limit = max_localpart_len(run_dir);
        let longest = Localpart::parse_for_run_dir(&"b".repeat(limit), run_dir).unwrap();
        assert_eq!(
            admin_socket_path(run_dir, &longest).as_os_str().len(),
            SUN_PATH_LEN - 1
        );
        assert!(Localpart::parse_for_run_dir(&"b".repeat(limit + 1), run_dir).is_err());
    }
}
