//! The `tweetpipe` binary: everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    tweetpipe::cli::main()
}

/// glibc's malloc gives a thread that meets another in an arena an arena of
/// its own, up to eight per core, and an arena keeps the memory its thread
/// freed. The runtime's threads (plugin workers, the sink's blocking writes,
/// the spool writer) each grew one to about 5 MiB: a million-post run on one
/// core ended at 123 MiB, of which the arenas held over 40. On one core no two
/// threads allocate at once, and two arenas keep that run near 90 MiB at the
/// same speed. On more cores the busy threads do run at once: one arena per
/// core made two workers on two cores 10-15 % slower, four per core is as
/// fast as glibc's eight and holds about 15 MiB less.
/// `MALLOC_ARENA_MAX` in the environment still decides when it is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // The cores this process may run on (its CPU affinity, as `taskset` sets).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let arenas = if cores == 1 {
        2
    } else {
        cores.saturating_mul(4)
    };
    let arenas = libc::c_int::try_from(arenas).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt only sets one of the allocator's tunables, and it runs
    // before any other thread exists; a refusal (return value 0) leaves the
    // default in place, which is correct, only larger.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
