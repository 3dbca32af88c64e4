//! The thread's own CPU clock, for the CPU-time probes of the stats and domain crates
//! (`examples/<crate>_cpu_time.rs` in each), which stay fair when other jobs share the cores.

/// The thread's user + system CPU time in clock ticks, if the platform exposes it.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Microseconds per clock tick (the kernel's USER_HZ is 100 on Linux).
const TICK_MICROS: f64 = 10_000.0;

/// Runs `f` a tenth of `calls` times to warm up, then `calls` times on the thread's CPU clock:
/// the CPU microseconds per call and the clock ticks counted, or `None` without such a clock.
pub fn micros_per_call(calls: u32, mut f: impl FnMut()) -> Option<(f64, f64)> {
    for _ in 0..calls / 10 {
        f();
    }
    let start = cpu_ticks()?;
    for _ in 0..calls {
        f();
    }
    let ticks = cpu_ticks().unwrap_or(start).saturating_sub(start);
    let ticks = f64::from(u32::try_from(ticks).unwrap_or(u32::MAX));
    Some((ticks * TICK_MICROS / f64::from(calls), ticks))
}
