//! Escape attempts against the real sandbox: the real binary, the real kernel. Each test is one
//! attack that must fail for the attacker, asserting the evidence a user cares about (the errno,
//! the secret that does not appear, the exit status), with a positive control where one makes
//! sense so that a weakened sandbox makes the test fail rather than pass vacuously.
//!
//! Run as root, then again unprivileged (see `support`):
//! `BUREAU_TEST_SANDBOX_UID=… BUREAU_TEST_SANDBOX_GID=… cargo test --test sandbox_escape`.

mod support;

use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::os::unix::process::CommandExt;
use std::path::Path;

use support::*;

/// Options that keep the default sandbox but share the host network.
const HOST_NET: &[&str] = &["--net", "host"];

// ---------------------------------------------------------------------------------------------
// Filesystem
// ---------------------------------------------------------------------------------------------

#[test]
fn read_etc_shadow_fails() {
    let output = sandbox_sh(
        &[],
        "cat /etc/shadow; echo shadow=$?; ls /etc; echo etc=$?; \
         head -c 4 /usr/lib/os-release && echo control=$?",
    );
    let out = stdout(&output);
    assert!(!out.contains("root:"), "{}", describe(&output));
    assert_line(&output, "shadow=1");
    assert_line(&output, "etc=2");
    assert!(
        stderr(&output).contains("/etc/shadow: No such file or directory"),
        "{}",
        describe(&output)
    );
    // Control: reading a file that is mounted works.
    assert!(out.contains("control=0"), "{}", describe(&output));
}

#[test]
fn host_secret_outside_the_mounts_is_unreachable_by_path() {
    let shared = SharedDir::new();
    let secret = "bureau-host-secret-3f1c";
    let file = shared.file("secret.txt", &format!("{secret}\n"));
    let file = file.to_str().expect("utf-8");
    let script = format!(
        "cat {file}; echo direct=$?; cat /proc/1/root{file}; echo via_proc=$?; \
         ls {dir}; echo dir=$?",
        dir = shared.str()
    );
    let output = sandbox_sh(&[], &script);
    assert!(!stdout(&output).contains(secret), "{}", describe(&output));
    assert_line(&output, "direct=1");
    assert_line(&output, "via_proc=1");
    assert_line(&output, "dir=2");
    // Control: the same probe finds the secret once its directory is mounted.
    let output = sandbox_sh(&["--ro", shared.str()], &script);
    assert!(stdout(&output).contains(secret), "{}", describe(&output));
    assert_line(&output, "direct=0");
}

#[test]
fn write_outside_the_rw_bind_fails() {
    let shared = SharedDir::new();
    let read_only = shared.dir("ro");
    let writable = shared.dir("rw");
    let (ro, rw) = (
        read_only.to_str().expect("utf-8"),
        writable.to_str().expect("utf-8"),
    );
    let script =
        format!("echo evil > {ro}/planted; echo ro=$?; echo fine > {rw}/written; echo rw=$?");
    let output = sandbox_sh(&["--ro", ro, "--rw", rw], &script);
    assert_line(&output, "ro=1");
    assert_line(&output, "rw=0");
    assert!(
        stderr(&output).contains("Read-only file system"),
        "{}",
        describe(&output)
    );
    assert!(
        !read_only.join("planted").exists(),
        "the ro bind was written"
    );
    assert_eq!(
        std::fs::read_to_string(writable.join("written")).expect("rw control"),
        "fine\n"
    );
}

#[test]
fn write_to_usr_fails() {
    let marker = format!("/usr/bureau-escape-{}", std::process::id());
    let script = format!(
        "touch {marker}; echo usr=$?; rm -f /usr/bin/python3; echo rm=$?; \
         touch /tmp/allowed; echo tmp=$?"
    );
    let output = sandbox_sh(&[], &script);
    assert_line(&output, "usr=1");
    assert_line(&output, "rm=1");
    assert_line(&output, "tmp=0");
    assert!(
        !Path::new(&marker).exists(),
        "{marker} appeared on the host"
    );
    assert!(Path::new("/usr/bin/python3").exists());
}

#[test]
fn write_to_root_fails() {
    let output = sandbox_sh(
        &[],
        "mkdir /evil; echo mkdir=$?; touch /evil-file; echo touch=$?; \
         ln -s /tmp /evil-link; echo ln=$?; mkdir /tmp/fine; echo control=$?",
    );
    assert_line(&output, "mkdir=1");
    assert_line(&output, "touch=1");
    assert_line(&output, "ln=1");
    assert_line(&output, "control=0");
    assert!(
        stderr(&output).contains("Read-only file system"),
        "{}",
        describe(&output)
    );
}

#[test]
fn dotdot_does_not_leave_the_root() {
    let output = sandbox_py(
        &[],
        r#"
print("same_listing", sorted(os.listdir("/../..")) == sorted(os.listdir("/")))
print("same_inode", os.stat("/..").st_ino == os.stat("/").st_ino)
os.chdir("/tmp")
for _ in range(20):
    os.chdir("..")
print("cwd", os.getcwd(), sorted(os.listdir(".")) == sorted(os.listdir("/")))
attempt("shadow", open, "/../../../etc/shadow")
attempt("control", open, "/../../usr/lib/os-release")
"#,
    );
    assert_line(&output, "same_listing True");
    assert_line(&output, "same_inode True");
    assert_line(&output, "cwd / True");
    assert_line(&output, "shadow ENOENT");
    assert_line(&output, "control OK");
}

#[test]
fn proc_root_links_do_not_leave_the_sandbox() {
    let output = sandbox_py(
        &[],
        r#"
attempt("self_root", open, "/proc/self/root/etc/shadow")
attempt("init_root", open, "/proc/1/root/etc/shadow")
attempt("init_cwd", os.listdir, "/proc/1/cwd/etc")
print("self_root_is_root", sorted(os.listdir("/proc/self/root")) == sorted(os.listdir("/")))
attempt("control", open, "/proc/self/root/usr/lib/os-release")
"#,
    );
    assert_line(&output, "self_root ENOENT");
    let out = stdout(&output);
    // The init is not dumpable: its links are refused; were they followed, they'd be our root.
    assert!(
        out.contains("init_root EACCES") || out.contains("init_root ENOENT"),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("init_cwd EACCES") || out.contains("init_cwd ENOENT"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "self_root_is_root True");
    assert_line(&output, "control OK");
}

#[test]
fn symlinked_bind_source_is_refused() {
    let shared = SharedDir::new();
    let real = shared.dir("real");
    std::fs::create_dir(real.join("sub")).expect("mkdir sub");
    shared.give(&real.join("sub"));
    let link = shared.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    shared.give(&link);
    let link = link.to_str().expect("utf-8");

    let output = sandbox(&["--ro", link, "--", "true"]);
    assert_eq!(code(&output), 125, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("symlink"), "{message}");
    assert!(message.contains(link), "{message}");

    // A symlink in a parent component is refused as well.
    let through = format!("{link}/sub");
    let output = sandbox(&["--ro", &through, "--", "true"]);
    assert_eq!(code(&output), 125, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("symlink"), "{message}");
    assert!(message.contains(&through), "{message}");

    // Control: the real path binds.
    let real = real.to_str().expect("utf-8");
    assert_success(&sandbox(&["--ro", real, "--", "ls", real]));
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

#[test]
fn host_pids_are_invisible() {
    let host_pid = std::process::id();
    let output = sandbox_py(
        &[],
        &format!(
            r#"
pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
print("pids", pids)
print("host_pid_visible", os.path.exists("/proc/{host_pid}"))
print("own_pid", os.getpid())
"#
        ),
    );
    assert_success(&output);
    assert_line(&output, "host_pid_visible False");
    // Only the init (1), the command (2) and whatever the command started.
    assert_line(&output, "own_pid 2");
    let pids_line = stdout(&output)
        .lines()
        .find(|line| line.starts_with("pids "))
        .map(str::to_owned)
        .expect("pids line");
    assert!(
        pids_line.starts_with("pids [1, 2") && !pids_line.contains(&host_pid.to_string()),
        "{pids_line}"
    );
}

#[test]
fn signal_to_host_pid_fails() {
    let host_pid = std::process::id();
    let output = sandbox_py(
        &[],
        &format!(
            r#"
attempt("host", os.kill, {host_pid}, 0)
attempt("host_term", os.kill, {host_pid}, 15)
attempt("self", os.kill, os.getpid(), 0)
"#
        ),
    );
    assert_line(&output, "host ESRCH");
    assert_line(&output, "host_term ESRCH");
    assert_line(&output, "self OK");
}

#[test]
fn ptrace_attach_to_init_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
sc("attach_init", {ptrace}, 16, 1, 0, 0)      # PTRACE_ATTACH
sc("seize_init", {ptrace}, 0x4206, 1, 0, 0)   # PTRACE_SEIZE
sc("traceme", {ptrace}, 0, 0, 0, 0)           # PTRACE_TRACEME
sc("control", {getpid})
"#,
            ptrace = libc::SYS_ptrace,
            getpid = libc::SYS_getpid,
        ),
    );
    assert_line(&output, "attach_init EPERM");
    assert_line(&output, "seize_init EPERM");
    assert_line(&output, "traceme EPERM");
    assert_line(&output, "control OK 2");
}

#[test]
fn process_vm_readv_is_denied() {
    // Reading one's own memory is always allowed by the kernel: EPERM there is the filter.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
class IoVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
source = ctypes.create_string_buffer(b"secret", 16)
target = ctypes.create_string_buffer(16)
local = IoVec(ctypes.cast(target, ctypes.c_void_p), 16)
remote = IoVec(ctypes.cast(source, ctypes.c_void_p), 16)
sc("readv_self", {readv}, os.getpid(), ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
sc("readv_init", {readv}, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
sc("writev_init", {writev}, 1, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("copied", target.value)
"#,
            readv = libc::SYS_process_vm_readv,
            writev = libc::SYS_process_vm_writev,
        ),
    );
    assert_line(&output, "readv_self EPERM");
    assert_line(&output, "readv_init EPERM");
    assert_line(&output, "writev_init EPERM");
    assert_line(&output, "copied b''");
}

#[test]
fn init_environment_and_memory_are_unreadable() {
    // The init is a copy of the supervisor: its memory holds the caller's environment.
    let secret = "bureau-canary-init-7d2e";
    let mut command = sandbox_command(&py(r#"
for name in ("environ", "mem", "fd/0"):
    attempt(name, open, "/proc/1/" + name, "rb")
attempt("control", open, "/proc/self/environ", "rb")
"#));
    command.env("BUREAU_CANARY_SECRET", secret);
    let output = output_of(command);
    assert!(!stdout(&output).contains(secret), "{}", describe(&output));
    assert_line(&output, "environ EACCES");
    assert_line(&output, "mem EACCES");
    assert_line(&output, "fd/0 EACCES");
    assert_line(&output, "control OK");
}

#[test]
fn fork_bomb_is_held_by_pids_max() {
    let bomb = r#"
r, w = os.pipe()
forked, failure = 0, None
for _ in range(500):
    try:
        pid = os.fork()
    except OSError as error:
        failure = err_name(error.errno)
        break
    if pid == 0:
        os.close(w)
        os.read(r, 1)  # EOF when the parent exits: no child outlives the bomb
        os._exit(0)
    forked += 1
print("forked", forked, failure, flush=True)
"#;
    let output = sandbox_py(&["--pids-max", "32"], bomb);
    if !bureau_is_root() && code(&output) == 125 {
        // No cgroup this user may write: the sandbox must refuse to run without the limit.
        assert!(
            stderr(&output).contains("pids_max"),
            "{}",
            describe(&output)
        );
        assert!(!stdout(&output).contains("forked"), "{}", describe(&output));
        return;
    }
    assert_success(&output);
    let line = stdout(&output)
        .lines()
        .find(|line| line.starts_with("forked "))
        .map(str::to_owned)
        .expect("forked line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    let forked: u32 = fields[1].parse().expect("count");
    // 32 tasks in all, the init and the bomb included.
    assert!((1..=30).contains(&forked), "{line}");
    assert_eq!(fields[2], "EAGAIN", "{line}");
    // The host is unaffected and the next sandbox runs.
    assert_success(&sandbox(&["--", "true"]));
}

#[test]
fn memory_hog_is_killed_by_memory_max() {
    let hog = r#"
print("allocating", flush=True)
chunks = [bytearray(16 << 20) for _ in range(32)]  # 512 MiB, touched (bytearray zeroes)
print("allocated", sum(map(len, chunks)) >> 20, flush=True)
"#;
    let output = sandbox_py(&["--memory-max", "64M"], hog);
    if !bureau_is_root() && code(&output) == 125 {
        assert!(
            stderr(&output).contains("memory_max"),
            "{}",
            describe(&output)
        );
        assert!(
            !stdout(&output).contains("allocating"),
            "{}",
            describe(&output)
        );
        return;
    }
    assert_eq!(
        code(&output),
        137,
        "killed by SIGKILL\n{}",
        describe(&output)
    );
    assert_line(&output, "allocating");
    assert!(
        !stdout(&output).contains("allocated"),
        "{}",
        describe(&output)
    );
    // Control: the same sandbox with an allocation under the limit; and the host is unaffected.
    let output = sandbox_py(
        &["--memory-max", "64M"],
        "x = bytearray(8 << 20); print('allocated', len(x) >> 20)",
    );
    assert_line(&output, "allocated 8");
}

// ---------------------------------------------------------------------------------------------
// Kernel interfaces behind seccomp
// ---------------------------------------------------------------------------------------------

#[test]
fn mount_tmpfs_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
import subprocess
result = subprocess.run(["mount", "-t", "tmpfs", "none", "/tmp"], capture_output=True)
print("mount_binary", result.returncode)
sc("mount_syscall", {mount}, b"none", b"/tmp", b"tmpfs", 0, 0)
sc("bind_syscall", {mount}, b"/usr", b"/tmp", 0, 4096, 0)  # MS_BIND
sc("fsopen", {fsopen}, b"tmpfs", 0)
sc("open_tree", {open_tree}, -100, b"/usr", 1)  # OPEN_TREE_CLONE
tmp_mounts = [l for l in open("/proc/self/mountinfo") if l.split()[4] == "/tmp"]
print("tmp_mounts", len(tmp_mounts))
"#,
            mount = libc::SYS_mount,
            fsopen = libc::SYS_fsopen,
            open_tree = libc::SYS_open_tree,
        ),
    );
    let out = stdout(&output);
    assert!(
        out.lines()
            .any(|line| line.starts_with("mount_binary ") && line != "mount_binary 0"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "mount_syscall EPERM");
    assert_line(&output, "bind_syscall EPERM");
    assert_line(&output, "fsopen EPERM");
    assert_line(&output, "open_tree EPERM");
    assert_line(&output, "tmp_mounts 1");
}

#[test]
fn umount_and_pivot_root_are_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
sc("umount_usr", {umount2}, b"/usr", 2)  # MNT_DETACH
os.chdir("/tmp")
sc("pivot_root", {pivot_root}, b".", b".")
sc("move_mount", {move_mount}, -100, b"/usr", -100, b"/tmp", 0)
print("usr_still_there", os.path.exists("/usr/bin/python3"))
"#,
            umount2 = libc::SYS_umount2,
            pivot_root = libc::SYS_pivot_root,
            move_mount = libc::SYS_move_mount,
        ),
    );
    assert_line(&output, "umount_usr EPERM");
    assert_line(&output, "pivot_root EPERM");
    assert_line(&output, "move_mount EPERM");
    assert_line(&output, "usr_still_there True");
}

#[test]
fn new_user_namespace_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
import subprocess
result = subprocess.run(["unshare", "-U", "true"], capture_output=True, text=True)
print("unshare_binary", result.returncode)
sys.stderr.write(result.stderr)
sc("unshare_user", {unshare}, {newuser})
sc("unshare_mount", {unshare}, {newns})
sc("unshare_net", {unshare}, {newnet})
sc("control", {getpid})
"#,
            unshare = libc::SYS_unshare,
            newuser = libc::CLONE_NEWUSER,
            newns = libc::CLONE_NEWNS,
            newnet = libc::CLONE_NEWNET,
            getpid = libc::SYS_getpid,
        ),
    );
    assert_line(&output, "unshare_binary 1");
    assert!(
        stderr(&output).contains("Operation not permitted"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "unshare_user EPERM");
    assert_line(&output, "unshare_mount EPERM");
    assert_line(&output, "unshare_net EPERM");
    assert_line(&output, "control OK 2");
}

#[test]
fn clone_with_namespace_flags_is_denied() {
    let flags = [
        ("NEWNET", libc::CLONE_NEWNET),
        ("NEWUSER", libc::CLONE_NEWUSER),
        ("NEWNS", libc::CLONE_NEWNS),
        ("NEWPID", libc::CLONE_NEWPID),
        ("NEWIPC", libc::CLONE_NEWIPC),
        ("NEWUTS", libc::CLONE_NEWUTS),
        ("NEWCGROUP", libc::CLONE_NEWCGROUP),
    ];
    let attempts: String = flags
        .iter()
        .map(|(name, flag)| format!("clone_child(\"{name}\", {flag} | 17)\n"))
        .collect();
    let output = sandbox_py(
        &[],
        &format!(
            r#"
def clone_child(label, flags):
    # A raw clone with a NULL stack behaves like fork; a child leaves at once.
    ret = libc.syscall(ctypes.c_long({clone}), ctypes.c_ulong(flags), 0, 0, 0, 0)
    if ret == 0:
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
        print(label, "OK", flush=True)
    else:
        print(label, err_name(ctypes.get_errno()), flush=True)
{attempts}
clone_child("control", 17)  # SIGCHLD only: a plain fork
"#,
            clone = libc::SYS_clone,
        ),
    );
    for (name, _) in flags {
        assert_line(&output, &format!("{name} EPERM"));
    }
    assert_line(&output, "control OK");
}

#[test]
fn clone3_returns_enosys() {
    // clone3's flags live in memory seccomp cannot read: refused as "not implemented", so libc
    // falls back to clone, whose flags are checked.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
args = (ctypes.c_uint64 * 11)()
args[0] = {newuser}  # flags
args[4] = 17          # exit_signal = SIGCHLD
sc("clone3_newuser", {clone3}, ctypes.byref(args), ctypes.sizeof(args))
args[0] = 0
sc("clone3_plain", {clone3}, ctypes.byref(args), ctypes.sizeof(args))
pid = os.fork()  # libc's fork still works (through clone)
if pid == 0:
    os._exit(7)
print("fork_control", os.waitpid(pid, 0)[1] >> 8)
"#,
            clone3 = libc::SYS_clone3,
            newuser = libc::CLONE_NEWUSER,
        ),
    );
    assert_line(&output, "clone3_newuser ENOSYS");
    assert_line(&output, "clone3_plain ENOSYS");
    assert_line(&output, "fork_control 7");
}

#[test]
fn setns_into_init_namespaces_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
for owner in ("1", "self"):
    for name in ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"):
        try:
            fd = os.open(f"/proc/{{owner}}/ns/{{name}}", os.O_RDONLY)
        except OSError as error:
            print(f"{{owner}}/{{name}} open {{err_name(error.errno)}}")
            continue
        sc(f"{{owner}}/{{name}}", {setns}, fd, 0)
        os.close(fd)
"#,
            setns = libc::SYS_setns,
        ),
    );
    let out = stdout(&output);
    for name in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time"] {
        // Our own namespaces are the init's: the filter refuses joining any of them.
        assert_line(&output, &format!("self/{name} EPERM"));
        // The init's links are refused outright (it is not dumpable), or joining is.
        assert!(
            out.lines()
                .any(|line| line == format!("1/{name} EPERM")
                    || line == format!("1/{name} open EACCES")),
            "1/{name}\n{}",
            describe(&output)
        );
    }
}

#[test]
fn keyctl_is_denied() {
    let output = sandbox_py(
        &[],
        // KEYCTL_GET_KEYRING_ID of the session keyring, creating it: works without the filter.
        &format!(
            "sc('keyctl', {keyctl}, 0, -3, 1)\nsc('control', {getpid})",
            keyctl = libc::SYS_keyctl,
            getpid = libc::SYS_getpid
        ),
    );
    assert_line(&output, "keyctl EPERM");
    assert_line(&output, "control OK 2");
}

#[test]
fn add_key_and_request_key_are_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
sc("add_key", {add_key}, b"user", b"bureau-test", b"secret", 6, -2)  # process keyring
sc("request_key", {request_key}, b"user", b"bureau-test", 0, 0)
"#,
            add_key = libc::SYS_add_key,
            request_key = libc::SYS_request_key,
        ),
    );
    assert_line(&output, "add_key EPERM");
    assert_line(&output, "request_key EPERM");
}

#[test]
fn bpf_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32 * 4)(2, 4, 4, 1), 16)  # an array map, 1 entry
sc("bpf_map_create", {bpf}, 0, attr, 128)
sc("bpf_prog_load", {bpf}, 5, attr, 128)
"#,
            bpf = libc::SYS_bpf,
        ),
    );
    assert_line(&output, "bpf_map_create EPERM");
    assert_line(&output, "bpf_prog_load EPERM");
}

#[test]
fn perf_event_open_is_denied() {
    // A user-space-only software counter on oneself: allowed by perf_event_paranoid ≤ 2, so
    // EPERM here is the filter.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
attr = ctypes.create_string_buffer(128)
ctypes.memmove(attr, (ctypes.c_uint32 * 2)(1, 128), 8)           # PERF_TYPE_SOFTWARE, size
ctypes.memmove(ctypes.addressof(attr) + 40, (ctypes.c_uint64 * 1)(0b1100001), 8)  # disabled, exclude_kernel, exclude_hv
sc("perf_event_open", {perf}, attr, 0, -1, -1, 0)
"#,
            perf = libc::SYS_perf_event_open,
        ),
    );
    assert_line(&output, "perf_event_open EPERM");
}

#[test]
fn userfaultfd_is_denied() {
    // UFFD_USER_MODE_ONLY is allowed to everyone by the kernel: EPERM here is the filter.
    let output = sandbox_py(
        &[],
        &format!(
            "sc('userfaultfd', {uffd}, 0o2000000 | 1)\nsc('control', {getpid})",
            uffd = libc::SYS_userfaultfd,
            getpid = libc::SYS_getpid
        ),
    );
    assert_line(&output, "userfaultfd EPERM");
    assert_line(&output, "control OK 2");
}

#[test]
fn io_uring_setup_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
params = ctypes.create_string_buffer(120)
sc("io_uring_setup", {setup}, 4, params)
sc("io_uring_enter", {enter}, 0, 0, 0, 0, 0, 0)
sc("io_uring_register", {register}, 0, 0, 0, 0)
"#,
            setup = libc::SYS_io_uring_setup,
            enter = libc::SYS_io_uring_enter,
            register = libc::SYS_io_uring_register,
        ),
    );
    assert_line(&output, "io_uring_setup EPERM");
    assert_line(&output, "io_uring_enter EPERM");
    assert_line(&output, "io_uring_register EPERM");
}

#[test]
fn tiocsti_terminal_injection_is_denied() {
    // stdin is /dev/null: without the filter TIOCSTI would fail with ENOTTY, as the control
    // (another tty ioctl) does. The kernel reads `cmd` as 32 bits, so high bits must not help.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
char = ctypes.c_char_p(b"x")
sc("tiocsti", {ioctl}, 0, {tiocsti}, char)
sc("tiocsti_high_bits", {ioctl}, 0, 0xffffffff00000000 | {tiocsti}, char)
sc("tioclinux", {ioctl}, 0, {tioclinux}, char)
winsize = ctypes.create_string_buffer(8)
sc("control", {ioctl}, 0, {tiocgwinsz}, winsize)
"#,
            ioctl = libc::SYS_ioctl,
            tiocsti = libc::TIOCSTI,
            tioclinux = libc::TIOCLINUX,
            tiocgwinsz = libc::TIOCGWINSZ,
        ),
    );
    assert_line(&output, "tiocsti EPERM");
    assert_line(&output, "tiocsti_high_bits EPERM");
    assert_line(&output, "tioclinux EPERM");
    assert_line(&output, "control ENOTTY");
}

#[test]
fn chroot_is_denied() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
sc("chroot", {chroot}, b"/tmp")
import subprocess
print("chroot_binary", subprocess.run(["chroot", "/tmp", "/usr/bin/true"], capture_output=True).returncode)
"#,
            chroot = libc::SYS_chroot,
        ),
    );
    assert_line(&output, "chroot EPERM");
    assert!(
        !stdout(&output).contains("chroot_binary 0"),
        "{}",
        describe(&output)
    );
}

#[test]
fn open_by_handle_at_is_denied() {
    // The "shocker" escape: a file handle names a host inode whatever the mount namespace.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
handle = ctypes.create_string_buffer(128)
ctypes.memmove(handle, (ctypes.c_uint32 * 1)(120), 4)  # handle_bytes
mount_id = ctypes.c_int(0)
sc("name_to_handle_at", {name_to_handle}, -100, b"/usr", handle, ctypes.byref(mount_id), 0)
ctypes.memmove(handle, (ctypes.c_uint32 * 3)(8, 1, 2), 12)  # an ext4 root-ish handle
sc("open_by_handle_at", {open_by_handle}, os.open("/usr", os.O_RDONLY), handle, 0)
"#,
            name_to_handle = libc::SYS_name_to_handle_at,
            open_by_handle = libc::SYS_open_by_handle_at,
        ),
    );
    assert_line(&output, "name_to_handle_at EPERM");
    assert_line(&output, "open_by_handle_at EPERM");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn x32_syscall_abi_kills_the_process() {
    // The x32 ABI (bit 30 of the syscall number) shares x86_64's audit arch: killed outright.
    let output = sandbox_py(
        &[],
        &format!(
            r#"
print("before", flush=True)
libc.syscall(ctypes.c_long(0x40000000 | {getpid}))
print("survived", flush=True)
"#,
            getpid = libc::SYS_getpid,
        ),
    );
    assert_line(&output, "before");
    assert!(
        !stdout(&output).contains("survived"),
        "{}",
        describe(&output)
    );
    assert_eq!(code(&output), 128 + libc::SIGSYS, "{}", describe(&output));
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_int80_syscall_abi_kills_the_process() {
    // `int 0x80` from a 64-bit process enters the i386 syscall table, where the filters' numbers
    // mean other syscalls: every filter kills a foreign architecture.
    let output = sandbox_py(
        &[],
        r#"
import mmap
code = bytes([0xb8, 0x14, 0, 0, 0, 0xcd, 0x80, 0xc3])  # mov eax, 20 (getpid); int 0x80; ret
page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print("before", flush=True)
print("int80_getpid", function(), flush=True)
"#,
    );
    assert_line(&output, "before");
    assert!(
        !stdout(&output).contains("int80_getpid"),
        "{}",
        describe(&output)
    );
    assert_eq!(code(&output), 128 + libc::SIGSYS, "{}", describe(&output));
}

#[test]
fn kill_minus_one_does_not_reach_host_processes() {
    // A host process of the sandbox's own host user: the target a `kill -9 -1` would hit.
    let mut victim = std::process::Command::new("/usr/bin/sleep");
    victim.arg("30");
    if let Some((uid, gid)) = sandbox_user() {
        victim.uid(uid).gid(gid);
    }
    let mut victim = victim.spawn().expect("start the host victim");
    let victim_fd = pidfd_open(victim.id());
    let output = sandbox_py(
        &[],
        r#"
attempt("kill_all", os.kill, -1, 9)
attempt("kill_init", os.kill, 1, 9)
print("survived", flush=True)
"#,
    );
    let victim_alive = !wait_for_exit(&victim_fd, std::time::Duration::ZERO);
    pidfd_kill(&victim_fd, libc::SIGKILL);
    victim.wait().expect("reap the victim");
    assert!(
        victim_alive,
        "a host process died from the sandbox's kill -1"
    );
    // Nothing else in the sandbox to kill: ESRCH; the init ignores signals from inside.
    assert_line(&output, "kill_all ESRCH");
    assert_line(&output, "kill_init OK");
    assert_line(&output, "survived");
    assert_success(&output);
}

// ---------------------------------------------------------------------------------------------
// Network
// ---------------------------------------------------------------------------------------------

#[test]
fn packet_and_non_route_netlink_sockets_are_refused() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
attempt("packet", socket.socket, socket.AF_PACKET, socket.SOCK_RAW, 0)
attempt("netlink_audit", socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 9)
attempt("netlink_kobject", socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 15)
attempt("alg", socket.socket, 38, socket.SOCK_SEQPACKET, 0)
attempt("vsock", socket.socket, 40, socket.SOCK_STREAM, 0)
sc("packet_high_bits", {socket}, (1 << 32) | 17, 3, 0)
pair = (ctypes.c_int * 2)()
sc("socketpair_packet", {socketpair}, 17, 3, 0, pair)
attempt("unix", socket.socket, socket.AF_UNIX, socket.SOCK_STREAM)
attempt("netlink_route", socket.socket, socket.AF_NETLINK, socket.SOCK_RAW, 0)
attempt("inet", socket.socket, socket.AF_INET, socket.SOCK_STREAM)
"#,
            socket = libc::SYS_socket,
            socketpair = libc::SYS_socketpair,
        ),
    );
    for refused in [
        "packet",
        "netlink_audit",
        "netlink_kobject",
        "alg",
        "vsock",
        "packet_high_bits",
        "socketpair_packet",
    ] {
        assert_line(&output, &format!("{refused} EAFNOSUPPORT"));
    }
    for allowed in ["unix", "netlink_route", "inet"] {
        assert_line(&output, &format!("{allowed} OK"));
    }
}

fn connect_script(port: u16) -> String {
    format!(
        r#"
s = socket.socket()
s.settimeout(5)
attempt("connect", s.connect, ("127.0.0.1", {port}))
"#
    )
}

/// Whether the host listener has a connection waiting.
fn accepted(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).expect("nonblocking");
    match listener.accept() {
        Ok(_) => true,
        Err(error) if error.kind() == ErrorKind::WouldBlock => false,
        Err(error) => panic!("accept: {error}"),
    }
}

#[test]
fn tcp_connect_to_host_listener_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let output = sandbox_py(&[], &connect_script(port));
    // Its own network namespace (only a down loopback), and landlock allows no TCP connect.
    assert_line(&output, "connect EACCES");
    assert!(!accepted(&listener), "the host listener got a connection");
}

#[test]
fn tcp_connect_on_host_network_needs_a_landlock_port_rule() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    // Sharing the host network, landlock is the only guard on TCP: denied without a rule.
    let output = sandbox_py(HOST_NET, &connect_script(port));
    assert_line(&output, "connect EACCES");
    assert!(!accepted(&listener), "the host listener got a connection");

    // Control: a spec allowing exactly this port connects.
    let shared = SharedDir::new();
    let printed = sandbox(&["--net", "host", "--print-spec", "--", "true"]);
    assert_success(&printed);
    let mut spec: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("spec json");
    spec["landlock"]["tcp_connect"] = serde_json::json!([port]);
    let spec_file = shared.file("spec.json", &spec.to_string());
    let spec_file = spec_file.to_str().expect("utf-8");
    let output = sandbox_py(&["--spec", spec_file], &connect_script(port));
    assert_line(&output, "connect OK");
    assert!(accepted(&listener), "the allowed connection did not arrive");
    // Another port is still denied under the same spec.
    let other = TcpListener::bind("127.0.0.1:0").expect("listen");
    let other_port = other.local_addr().expect("addr").port();
    let output = sandbox_py(&["--spec", spec_file], &connect_script(other_port));
    assert_line(&output, "connect EACCES");
}

#[test]
fn mptcp_socket_cannot_bypass_landlock_tcp_rules() {
    // Landlock's TCP rules only see IPPROTO_TCP sockets: an MPTCP socket (which falls back to
    // plain TCP on the wire) would connect to any port of the host network.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let output = sandbox_py(
        HOST_NET,
        &format!(
            r#"
attempt("mptcp", socket.socket, socket.AF_INET, socket.SOCK_STREAM, 262)
attempt("mptcp6", socket.socket, socket.AF_INET6, socket.SOCK_STREAM, 262)
tcp = attempt("tcp_socket", socket.socket, socket.AF_INET, socket.SOCK_STREAM, 6)
attempt("tcp_connect", tcp.connect, ("127.0.0.1", {port}))
"#
        ),
    );
    assert_line(&output, "mptcp EAFNOSUPPORT");
    assert_line(&output, "mptcp6 EAFNOSUPPORT");
    assert_line(&output, "tcp_socket OK");
    assert_line(&output, "tcp_connect EACCES");
    assert!(!accepted(&listener), "the host listener got a connection");
}

#[test]
fn tcp_fast_open_cannot_bypass_landlock_tcp_rules() {
    // A fast-open send connects inside sendmsg, past landlock's connect check.
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let output = sandbox_py(
        HOST_NET,
        &format!(
            r#"
target = ("127.0.0.1", {port})
attempt("sendto", socket.socket().sendto, b"escaped", socket.MSG_FASTOPEN, target)
attempt("sendmsg", socket.socket().sendmsg, [b"escaped"], [], socket.MSG_FASTOPEN, target)
def fast_open_connect():
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, 30, 1)  # TCP_FASTOPEN_CONNECT: connect() is checked
    s.connect(target)
attempt("fastopen_connect", fast_open_connect)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("udp_sendto", u.sendto, b"plain", 0, ("127.0.0.1", 9))
"#
        ),
    );
    assert_line(&output, "sendto EPERM");
    assert_line(&output, "sendmsg EPERM");
    assert_line(&output, "fastopen_connect EACCES");
    // Control: sendto without the flag is untouched.
    assert_line(&output, "udp_sendto OK");
    assert!(!accepted(&listener), "the host listener got a connection");
}

#[test]
fn udp_to_host_socket_never_arrives() {
    let receiver = UdpSocket::bind("127.0.0.1:0").expect("udp bind");
    receiver.set_nonblocking(true).expect("nonblocking");
    let port = receiver.local_addr().expect("addr").port();
    let script = format!(
        r#"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
attempt("sendto", u.sendto, b"bureau-udp-escape", ("127.0.0.1", {port}))
"#
    );
    let output = sandbox_py(&[], &script);
    assert_success(&output);
    // The sandbox's own loopback is up, so the send succeeds — into the sandbox's network
    // namespace, where nothing listens; the host's 127.0.0.1 is another namespace.
    assert_line(&output, "sendto OK");
    // Loopback delivery happens within sendto: the sandbox has exited, so it would be here.
    let mut buffer = [0u8; 64];
    let received = receiver.recv_from(&mut buffer);
    assert!(
        matches!(&received, Err(error) if error.kind() == ErrorKind::WouldBlock),
        "a datagram arrived: {received:?}"
    );

    // Control: the probe works. With --net host UDP is not confined (landlock has TCP rules
    // only), so the datagram arrives.
    let output = sandbox_py(HOST_NET, &script);
    assert_line(&output, "sendto OK");
    let (length, _) = receiver
        .recv_from(&mut buffer)
        .expect("host-network datagram");
    assert_eq!(&buffer[..length], b"bureau-udp-escape");
}

#[test]
fn abstract_unix_socket_of_host_is_unreachable() {
    let name = format!("bureau-test-abstract-{}", std::process::id());
    let address = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract address");
    let listener = UnixListener::bind_addr(&address).expect("abstract listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let script = format!(
        r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("connect_host", s.connect, "\0{name}")
own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
own.bind("\0{name}-own")
own.listen(1)
c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("connect_own", c.connect, "\0{name}-own")
"#
    );
    // Default: another network namespace, so another abstract namespace.
    let output = sandbox_py(&[], &script);
    assert_line(&output, "connect_host ECONNREFUSED");
    assert_line(&output, "connect_own OK");
    // Host network: landlock scopes abstract sockets to the sandbox (ABI 6).
    let output = sandbox_py(HOST_NET, &script);
    assert_line(&output, "connect_host EPERM");
    assert_line(&output, "connect_own OK");
    assert!(
        matches!(listener.accept(), Err(error) if error.kind() == ErrorKind::WouldBlock),
        "the host's abstract listener got a connection"
    );
}

#[test]
fn unmounted_unix_socket_path_is_unreachable() {
    let shared = SharedDir::new();
    let path = shared.path().join("host.sock");
    let listener = UnixListener::bind(&path).expect("unix listener");
    listener.set_nonblocking(true).expect("nonblocking");
    shared.give(&path);
    let script = format!(
        r#"
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
attempt("connect", s.connect, "{}")
"#,
        path.display()
    );
    let output = sandbox_py(&[], &script);
    assert_line(&output, "connect ENOENT");
    assert!(
        matches!(listener.accept(), Err(error) if error.kind() == ErrorKind::WouldBlock),
        "the host listener got a connection"
    );
    // Control: a socket inside a mounted directory is reachable (binding it is the grant).
    let output = sandbox_py(&["--ro", shared.str()], &script);
    assert_line(&output, "connect OK");
    assert!(listener.accept().is_ok(), "the mounted socket got nothing");
}

#[test]
fn host_sysv_ipc_is_invisible() {
    let key: libc::key_t = 0x6275_0000 | (std::process::id() as libc::key_t & 0xffff);
    // SAFETY: shmget with IPC_CREAT creates (or finds) a segment; it touches no memory of ours.
    let id = unsafe { libc::shmget(key, 4096, libc::IPC_CREAT | 0o666) };
    assert!(id >= 0, "shmget: {}", std::io::Error::last_os_error());
    let output = sandbox_py(
        &[],
        &format!(
            r#"
ctypes.set_errno(0)
ret = libc.shmget({key}, 0, 0)
print("host_segment", "OK" if ret >= 0 else err_name(ctypes.get_errno()))
own = libc.shmget(0, 4096, 0o1600)  # IPC_PRIVATE, IPC_CREAT
print("own_segment", "OK" if own >= 0 else err_name(ctypes.get_errno()))
"#
        ),
    );
    // SAFETY: removes the segment created above; no memory is attached.
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
    assert_line(&output, "host_segment ENOENT");
    assert_line(&output, "own_segment OK");
}

// ---------------------------------------------------------------------------------------------
// Privileges and identity
// ---------------------------------------------------------------------------------------------

#[test]
fn capabilities_cannot_be_regained() {
    // Through an exec (bash → python), then every way of asking for capabilities back.
    let code = format!(
        r#"
status = dict(line.split(":\t") for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    print(field, status[field].strip())
sc("ambient_raise", {prctl}, 47, 2, 12, 0, 0)   # PR_CAP_AMBIENT_RAISE CAP_NET_ADMIN
sc("bounding_read", {prctl}, 23, 21, 0, 0, 0)  # PR_CAPBSET_READ CAP_SYS_ADMIN -> 0
header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
data = (ctypes.c_uint32 * 6)(*([0xffffffff] * 6))
sc("capset_all", {capset}, header, data)
sc("securebits", {prctl}, 27, 0, 0, 0, 0)      # PR_GET_SECUREBITS
sc("securebits_clear", {prctl}, 28, 0, 0, 0, 0)
"#,
        prctl = libc::SYS_prctl,
        capset = libc::SYS_capset,
    );
    let mut args: Vec<String> = vec!["--".into(), "/usr/bin/bash".into(), "-c".into()];
    args.push("exec python3 -c \"$0\"".into());
    args.push(py(&code).remove(2));
    let output = sandbox(&args);
    for field in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_line(&output, &format!("{field} 0000000000000000"));
    }
    assert_line(&output, "ambient_raise EPERM");
    assert_line(&output, "bounding_read OK 0");
    assert_line(&output, "capset_all EPERM");
    // NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE, each locked; KEEP_CAPS locked off.
    assert_line(&output, "securebits OK 239");
    assert_line(&output, "securebits_clear EPERM");
}

#[test]
fn setuid_binary_does_not_elevate() {
    let shared = SharedDir::new();
    let copy = shared.path().join("id-setuid");
    let mut script = String::from(
        "grep NoNewPrivs /proc/self/status; \
         grep ' /usr ' /proc/self/mountinfo | grep -q nosuid && echo usr_nosuid; \
         echo plain=$(/usr/bin/id -u); \
         su -c true root; echo su=$?; ",
    );
    let mut options = Vec::new();
    if running_as_root() {
        // A setuid copy of `id` owned by a user other than the sandbox's: were the bit honoured,
        // `id -u` would print its owner.
        std::fs::copy("/usr/bin/id", &copy).expect("copy id");
        let owner = if bureau_is_root() { 65534 } else { 0 };
        std::os::unix::fs::chown(&copy, Some(owner), Some(owner)).expect("chown");
        chmod(&copy, 0o4755);
        script.push_str(&format!("echo setuid=$({} -u)", copy.display()));
        options.extend(["--ro", shared.str()]);
    }
    let output = sandbox_sh(&options, &script);
    assert_line(&output, "NoNewPrivs:\t1");
    assert_line(&output, "usr_nosuid");
    assert!(
        !stdout(&output).contains("su=0"),
        "su succeeded\n{}",
        describe(&output)
    );
    if running_as_root() {
        let plain = stdout(&output)
            .lines()
            .find_map(|line| line.strip_prefix("plain=").map(str::to_owned))
            .expect("plain id");
        assert_line(&output, &format!("setuid={plain}"));
    }
}

#[test]
fn hostname_change_does_not_reach_the_host() {
    let before = host_hostname();
    let output = sandbox_py(
        &[],
        r#"
import socket
print("hostname", socket.gethostname())
attempt("sethostname", socket.sethostname, "evil")
attempt("proc_write", lambda: open("/proc/sys/kernel/hostname", "w").write("evil"))
print("after", socket.gethostname())
"#,
    );
    assert_line(&output, "hostname sandbox");
    assert_line(&output, "sethostname EPERM");
    assert!(
        stdout(&output)
            .lines()
            .any(|line| line == "proc_write EACCES" || line == "proc_write EPERM"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "after sandbox");
    assert_eq!(host_hostname(), before);
    // Control: --hostname sets it (at setup, before the capabilities go).
    let output = sandbox(&["--hostname", "agent-7", "--", "hostname"]);
    assert_eq!(stdout(&output).trim(), "agent-7", "{}", describe(&output));
    assert_eq!(host_hostname(), before);
}

#[test]
fn environment_is_cleared() {
    let secret = "bureau-canary-env-91ab";
    let mut command = sandbox_command(&["--env", "VISIBLE=yes", "--", "/usr/bin/env"]);
    command
        .env("BUREAU_CANARY_SECRET", secret)
        .env("HOME", "/root");
    let output = output_of(command);
    assert_success(&output);
    assert!(!stdout(&output).contains(secret), "{}", describe(&output));
    let out = stdout(&output);
    let mut names: Vec<&str> = out
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["PATH", "VISIBLE"], "{}", describe(&output));
    assert_line(&output, "VISIBLE=yes");
}

#[test]
fn only_stdio_descriptors_are_inherited() {
    // A descriptor the caller leaks (no CLOEXEC) onto a file only root may read.
    let shared = SharedDir::new();
    let secret_path = shared.path().join("root-only");
    std::fs::write(&secret_path, "bureau-leaked-fd-secret").expect("write secret");
    chmod(&secret_path, 0o600);
    let secret = std::fs::File::open(&secret_path).expect("open secret");
    let secret_fd = secret.as_raw_fd();
    let mut command = sandbox_command(&py(r#"
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
# listdir's own directory descriptor is closed again by the time we look at the list:
print("fds", [fd for fd in fds if os.path.exists(f"/proc/self/fd/{fd}")])
attempt("read_fd_7", os.read, 7, 100)
print("init_fds", sorted(os.listdir("/proc/1/fd")) if os.access("/proc/1/fd", os.R_OK) else "denied")
"#));
    let leak = move || {
        // SAFETY: dup2 only duplicates a descriptor; the copy (fd 7) has no CLOEXEC, like a leak.
        if unsafe { libc::dup2(secret_fd, 7) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs between fork and exec and only calls dup2, which is
    // async-signal-safe.
    unsafe { command.pre_exec(leak) };
    let output = output_of(command);
    drop(secret);
    assert!(
        !stdout(&output).contains("bureau-leaked-fd-secret"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "fds [0, 1, 2]");
    assert_line(&output, "read_fd_7 EBADF");
    let out = stdout(&output);
    assert!(
        out.contains("init_fds ['0', '1', '2']") || out.contains("init_fds denied"),
        "{}",
        describe(&output)
    );
}

// ---------------------------------------------------------------------------------------------
// /proc, /dev and the kernel
// ---------------------------------------------------------------------------------------------

#[test]
fn proc_sys_and_sysrq_trigger_are_not_writable() {
    let output = sandbox_py(
        &[],
        r#"
for path in ("/proc/sys/kernel/hostname", "/proc/sys/kernel/core_pattern",
             "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"):
    attempt(path, lambda: open(path, "w").write("b"))
attempt("/proc/self/oom_score_adj", lambda: open("/proc/self/oom_score_adj", "w").write("-1000"))
attempt("control_read", lambda: open("/proc/sys/kernel/hostname").read())
"#,
    );
    let out = stdout(&output);
    for path in [
        "/proc/sys/kernel/hostname",
        "/proc/sys/kernel/core_pattern",
        "/proc/sys/vm/drop_caches",
        "/proc/sysrq-trigger",
        "/proc/self/oom_score_adj",
    ] {
        let line = out
            .lines()
            .find(|line| line.starts_with(&format!("{path} ")))
            .unwrap_or_else(|| panic!("no line for {path}\n{}", describe(&output)));
        // EACCES (landlock / permissions), EPERM, or ENOENT where this kernel has no such file.
        assert!(
            line.ends_with(" EACCES") || line.ends_with(" EPERM") || line.ends_with(" ENOENT"),
            "{line}\n{}",
            describe(&output)
        );
        if Path::new(path).exists() && path != "/proc/self/oom_score_adj" {
            assert!(!line.ends_with(" ENOENT"), "{line}");
        }
    }
    assert_line(&output, "control_read OK");
}

#[test]
fn dangerous_device_nodes_are_absent() {
    let output = sandbox_py(
        &[],
        r#"
print("dev", sorted(os.listdir("/dev")))
for node in ("sda", "vda", "nvme0n1", "mem", "kmem", "port", "kmsg", "fuse", "net/tun"):
    attempt(node, open, "/dev/" + node, "rb")
attempt("mknod_mem", os.mknod, "/tmp/mem", 0o600 | 0o020000, os.makedev(1, 1))
attempt("mknod_in_dev", os.mknod, "/dev/mem", 0o600 | 0o020000, os.makedev(1, 1))
attempt("null", lambda: open("/dev/null", "w").write("x"))
print("zero", open("/dev/zero", "rb").read(4))
"#,
    );
    assert_line(
        &output,
        "dev ['fd', 'full', 'null', 'pts', 'random', 'shm', 'stderr', 'stdin', 'stdout', \
         'tty', 'urandom', 'zero']",
    );
    for node in [
        "sda", "vda", "nvme0n1", "mem", "kmem", "port", "kmsg", "fuse", "net/tun",
    ] {
        assert_line(&output, &format!("{node} ENOENT"));
    }
    assert_line(&output, "mknod_mem EPERM");
    let out = stdout(&output);
    assert!(
        out.contains("mknod_in_dev EROFS") || out.contains("mknod_in_dev EPERM"),
        "{}",
        describe(&output)
    );
    assert_line(&output, "null OK");
    assert_line(&output, "zero b'\\x00\\x00\\x00\\x00'");
}

#[test]
fn kernel_log_is_unreadable() {
    let output = sandbox_py(
        &[],
        &format!(
            r#"
attempt("kmsg", open, "/dev/kmsg", "rb")
buffer = ctypes.create_string_buffer(4096)
sc("syslog_read_all", {syslog}, 3, buffer, 4096)
sc("syslog_size", {syslog}, 10, 0, 0)
import subprocess
result = subprocess.run(["dmesg"], capture_output=True)
print("dmesg", result.returncode, len(result.stdout))
"#,
            syslog = libc::SYS_syslog,
        ),
    );
    assert_line(&output, "kmsg ENOENT");
    assert_line(&output, "syslog_read_all EPERM");
    assert_line(&output, "syslog_size EPERM");
    assert_line(&output, "dmesg 1 0");
}

#[test]
fn kcore_and_kallsyms_leak_no_addresses() {
    let output = sandbox_py(
        &[],
        r#"
attempt("kcore", lambda: open("/proc/kcore", "rb").read(16))
try:
    lines = open("/proc/kallsyms").read().splitlines()
    nonzero = [l for l in lines if int(l.split()[0], 16) != 0]
    print("kallsyms", len(lines) > 0, "nonzero", len(nonzero))
except OSError as error:
    print("kallsyms", err_name(error.errno))
"#,
    );
    let out = stdout(&output);
    assert!(
        ["kcore EPERM", "kcore EACCES", "kcore ENOENT"]
            .iter()
            .any(|line| out.lines().any(|candidate| candidate == *line)),
        "{}",
        describe(&output)
    );
    assert!(
        out.contains("kallsyms True nonzero 0") || out.contains("kallsyms EACCES"),
        "{}",
        describe(&output)
    );
}
