//! The process metrics Prometheus users expect (`process_*`) and `liftlab_build_info`, read from `/proc/self` on Linux.
//!
//! The names and units follow the Prometheus client libraries' process collector, so existing
//! dashboards work unchanged. Elsewhere, or when `/proc` cannot be read, the `process_*` series
//! are left out rather than reported as zero.

use std::fmt::Write as _;

/// Clock ticks per second of the times in `/proc/self/stat` (`USER_HZ`): the kernel reports
/// them in this fixed unit to userspace on every architecture liftlab builds for.
const USER_HZ: f64 = 100.0;

/// One gauge or counter sample with its help text.
struct Sample {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    value: f64,
}

/// Appends `liftlab_build_info` and whatever process metrics this platform offers.
pub(crate) fn render(out: &mut String) {
    let _ = writeln!(
        out,
        "# HELP liftlab_build_info The liftlab version serving; always 1.\n# TYPE liftlab_build_info gauge\nliftlab_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    for s in samples() {
        let _ = writeln!(out, "# HELP {} {}", s.name, s.help);
        let _ = writeln!(out, "# TYPE {} {}", s.name, s.kind);
        let _ = writeln!(out, "{} {}", s.name, s.value);
    }
}

#[cfg(target_os = "linux")]
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    let stat = std::fs::read_to_string("/proc/self/stat").ok();
    // Fields after the command name, which is in parentheses and may contain spaces: the
    // first one is field 3 (state), so field N is at index N - 3.
    let fields: Vec<&str> = stat
        .as_deref()
        .and_then(|s| s.rsplit_once(')'))
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        out.push(Sample {
            name: "process_cpu_seconds_total",
            help: "Total user and system CPU time spent in seconds.",
            kind: "counter",
            value: (utime + stime) / USER_HZ,
        });
    }
    if let Some(rss) = status_kib("VmRSS:") {
        out.push(Sample {
            name: "process_resident_memory_bytes",
            help: "Resident memory size in bytes.",
            kind: "gauge",
            value: rss * 1024.0,
        });
    }
    if let Some(vsize) = status_kib("VmSize:") {
        out.push(Sample {
            name: "process_virtual_memory_bytes",
            help: "Virtual memory size in bytes.",
            kind: "gauge",
            value: vsize * 1024.0,
        });
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push(Sample {
            name: "process_open_fds",
            help: "Number of open file descriptors.",
            kind: "gauge",
            value: u32::try_from(fds.count()).map_or(f64::from(u32::MAX), f64::from),
        });
    }
    if let Some(max) = max_open_files() {
        out.push(Sample {
            name: "process_max_fds",
            help: "Maximum number of open file descriptors.",
            kind: "gauge",
            value: max,
        });
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        out.push(Sample {
            name: "process_start_time_seconds",
            help: "Start time of the process since unix epoch in seconds.",
            kind: "gauge",
            value: boot + start / USER_HZ,
        });
    }
    out
}

#[cfg(not(target_os = "linux"))]
fn samples() -> Vec<Sample> {
    Vec::new()
}

/// A `kB` line of `/proc/self/status`, in KiB.
#[cfg(target_os = "linux")]
fn status_kib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// The soft limit on open files, from `/proc/self/limits` (`None` when unlimited).
#[cfg(target_os = "linux")]
fn max_open_files() -> Option<f64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// When the system booted, in seconds since the unix epoch (`btime` of `/proc/stat`).
#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn linux_reports_the_process_series() {
        let mut text = String::new();
        render(&mut text);
        let value = |name: &str| -> f64 {
            let line = text
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing from {text}"));
            line[name.len() + 1..].parse().expect("a number")
        };
        assert!(text.contains(&format!(
            "liftlab_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        assert!(value("process_resident_memory_bytes") > 1024.0 * 1024.0);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        // The test process started before now, and not before the tests were built.
        assert!(
            started <= now + 1.0 && started > now - 86_400.0,
            "{started} vs {now}"
        );
    }
}
