//! CPU and memory of this process (or another) from `/proc`, for the benchmarks' reports.

/// CPU and memory of this process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cpu_secs: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
}

impl Sample {
    /// Now; `clk_tck` is `getconf CLK_TCK` (the unit of `/proc/*/stat` times).
    pub fn now(clk_tck: f64) -> Self {
        let (user, sys) = cpu_ticks("/proc/self/stat").unwrap_or((0, 0));
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Self { cpu_secs: (user + sys) as f64 / clk_tck, rss_kib: kib("VmRSS:"), hwm_kib: kib("VmHWM:") }
    }
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_secs_of(pid: u32, clk_tck: f64) -> Option<f64> {
    let (user, sys) = cpu_ticks(&format!("/proc/{pid}/stat"))?;
    Some((user + sys) as f64 / clk_tck)
}

/// `(utime, stime)` in clock ticks from a `/proc/<pid>/stat` file (fields 14 and 15; the command
/// name in field 2 may hold spaces, so counting starts after its closing parenthesis).
fn cpu_ticks(path: &str) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?))
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_some_memory_and_reads_its_own_cpu() {
        let s = Sample::now(100.0);
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
        assert!(cpu_secs_of(std::process::id(), 100.0).is_some());
        assert_eq!(cpu_secs_of(u32::MAX, 100.0), None);
    }
}
