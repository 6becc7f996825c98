//! The `tweetpipe` binary: everything lives in the library; this only hands over.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    tweetpipe::cli::main()
}

/// glibc's malloc gives a thread that meets another in an arena an arena of
/// its own, up to eight per core, and an arena keeps the memory its thread
/// freed. The runtime's threads (plugin workers, the sink's blocking writes,
/// the spool writer) each grew one to about 5 MiB: a million-post run ended
/// at 123 MiB, of which the arenas held over 40. Two arenas keep the peak at
/// about 90 MiB on the same run at the same speed. `MALLOC_ARENA_MAX` in the
/// environment still decides when it is set.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only sets one of the allocator's tunables, and it runs
    // before any other thread exists; a refusal (return value 0) leaves the
    // default in place, which is correct, only larger.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
