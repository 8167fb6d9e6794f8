//! CPU time and memory of threads and processes, read from `/proc` (Linux).
//!
//! CPU times are in clock ticks of `USER_HZ`, which is 100 on every Linux
//! ABI we run on (the kernel exports it as a constant, not a tunable).

use std::fs;

/// Linux `USER_HZ`.
const TICKS_PER_SECOND: f64 = 100.0;

/// `utime + stime` of a `stat` file's contents, in seconds.
fn stat_cpu(stat: &str) -> Option<f64> {
    // Fields after the `(comm)`, which may itself contain spaces.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_ascii_whitespace();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// CPU seconds of this process's threads whose name starts with `prefix`
/// (plus the main thread when `main` is true).
pub fn threads_cpu(prefix: &str, main: bool) -> f64 {
    let pid = std::process::id().to_string();
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for entry in dir.flatten() {
        let path = entry.path();
        let comm = fs::read_to_string(path.join("comm")).unwrap_or_default();
        let is_main = entry.file_name().to_str() == Some(pid.as_str());
        if (comm.trim_end().starts_with(prefix) || (main && is_main))
            && let Some(cpu) = fs::read_to_string(path.join("stat"))
                .ok()
                .and_then(|s| stat_cpu(&s))
        {
            total += cpu;
        }
    }
    total
}

/// CPU seconds of process `pid` (all its threads).
pub fn process_cpu(pid: u32) -> f64 {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| stat_cpu(&s))
        .unwrap_or(0.0)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `RssAnon`, ...), in bytes.
pub fn status_kb(pid: Option<u32>, field: &str) -> u64 {
    let path = match pid {
        Some(p) => format!("/proc/{p}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(field)?.strip_prefix(':')?;
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_comm() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(stat_cpu(stat), Some(3.0));
    }

    #[test]
    fn reads_own_rss() {
        assert!(status_kb(None, "VmRSS") > 0);
    }
}
