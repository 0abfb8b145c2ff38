//! The host's figures for `m.bureau.machine_info` (inventory, at start) and
//! `m.bureau.machine_status` (heartbeat), read from `/proc`.
//!
//! Invariant: a figure that cannot be read is reported as 0 or empty, never an error — a
//! heartbeat is better late-accurate than missing.

use crate::schema::{MachineInfo, MachineStatus};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A `/proc/meminfo` field in bytes (`MemTotal`, `MemAvailable`, …).
fn meminfo_bytes(meminfo: &str, field: &str) -> u64 {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Busy and total jiffies over all CPUs (`/proc/stat`'s `cpu` line).
fn cpu_jiffies(stat: &str) -> (u64, u64) {
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|value| value.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    // idle + iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// The inventory published once at start.
pub fn machine_info() -> MachineInfo {
    let cpuinfo = read("/proc/cpuinfo");
    MachineInfo {
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu_model: cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default(),
        cpu_count: std::thread::available_parallelism()
            .map_or(0, |count| u32::try_from(count.get()).unwrap_or(u32::MAX)),
        memory_bytes: meminfo_bytes(&read("/proc/meminfo"), "MemTotal"),
        bureau_version: env!("CARGO_PKG_VERSION").to_owned(),
        labels: Default::default(),
    }
}

/// CPU counters at the last heartbeat: busy and total jiffies.
pub type CpuSample = (u64, u64);

/// A heartbeat without principals (the daemon adds them). CPU use is measured since
/// `previous`, which is updated (the first heartbeat measures since boot).
pub fn machine_status(previous: &mut CpuSample) -> MachineStatus {
    let (busy_before, total_before) = *previous;
    let (busy_after, total_after) = cpu_jiffies(&read("/proc/stat"));
    *previous = (busy_after, total_after);
    let cpu_percent = (busy_after.saturating_sub(busy_before) * 100)
        .checked_div(total_after.saturating_sub(total_before))
        .map_or(0, |percent| u32::try_from(percent).unwrap_or(100));
    let meminfo = read("/proc/meminfo");
    let total = meminfo_bytes(&meminfo, "MemTotal");
    MachineStatus {
        reported_at: crate::schema::now_ms(),
        cpu_percent,
        memory_used_bytes: total.saturating_sub(meminfo_bytes(&meminfo, "MemAvailable")),
        memory_total_bytes: total,
        principals: Vec::new(),
        bureau_version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_come_from_proc() {
        assert_eq!(
            meminfo_bytes("MemTotal:  2048 kB\nMemFree: 1 kB\n", "MemTotal"),
            2048 * 1024
        );
        assert_eq!(meminfo_bytes("", "MemTotal"), 0);
        assert_eq!(
            cpu_jiffies("cpu  10 0 10 70 10 0 0 0 0 0\ncpu0 …"),
            (20, 100)
        );
        let info = machine_info();
        assert!(info.cpu_count > 0 && info.memory_bytes > 0 && !info.kernel.is_empty());
        let mut sample = (0, 0);
        let status = machine_status(&mut sample);
        assert!(sample.1 > 0);
        assert!(status.memory_total_bytes >= status.memory_used_bytes);
        assert!(status.cpu_percent <= 100);
    }
}
