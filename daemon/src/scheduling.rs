//! How the kernel schedules the daemon's threads: as a batch workload by
//! default, so a thread handing posts to another does not stop it mid-batch.
//!
//! Under the default policy (`SCHED_OTHER`) every wake-up of a stage (the
//! source publishing, the spool committing, the sink taking rows) may preempt
//! the worker running the plugin chain. On one core a run of the shipped
//! chain was switched about 46,000 times for 200,000 posts, and the chain
//! cost twice as much time end to end as the same instructions in one thread.
//! `SCHED_BATCH` (see `sched(7)`) keeps the nice value and the share of CPU
//! but does not let a woken thread preempt a running one, so each stage runs
//! until it has to wait: about 10,000 switches for the same run.

use serde::Deserialize;

/// `[process] scheduling`: the policy the daemon's threads run under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduling {
    /// `SCHED_BATCH`: throughput first; wake-ups do not preempt.
    #[default]
    Batch,
    /// The policy the process was started with, unchanged.
    Inherit,
}

/// Why the policy could not be set.
#[derive(Debug, thiserror::Error)]
#[error("cannot switch to SCHED_BATCH ({0}); running under the inherited policy")]
pub struct SchedulingError(#[source] std::io::Error);

/// Puts the calling thread under `scheduling`. Threads it starts afterwards
/// inherit the policy, so this runs before the runtime's threads exist.
pub fn apply(scheduling: Scheduling) -> Result<(), SchedulingError> {
    match scheduling {
        Scheduling::Inherit => Ok(()),
        Scheduling::Batch => set_batch(),
    }
}

#[cfg(target_os = "linux")]
fn set_batch() -> Result<(), SchedulingError> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the call's duration; pid 0 is
    // the calling thread. Switching from SCHED_OTHER to SCHED_BATCH needs no
    // privilege; a refusal is reported and changes nothing.
    #[allow(unsafe_code)]
    let result = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if result == 0 {
        Ok(())
    } else {
        Err(SchedulingError(std::io::Error::last_os_error()))
    }
}

#[cfg(not(target_os = "linux"))]
fn set_batch() -> Result<(), SchedulingError> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn policy() -> libc::c_int {
        // SAFETY: reads the calling thread's policy; no memory is passed.
        #[allow(unsafe_code)]
        unsafe {
            libc::sched_getscheduler(0)
        }
    }

    #[test]
    fn batch_holds_for_the_thread_and_the_threads_it_starts() {
        let (own, started) = std::thread::spawn(|| {
            apply(Scheduling::Batch).expect("SCHED_BATCH needs no privilege");
            let own = policy();
            let started = std::thread::spawn(policy).join().unwrap();
            (own, started)
        })
        .join()
        .unwrap();
        assert_eq!(own, libc::SCHED_BATCH);
        assert_eq!(started, libc::SCHED_BATCH);
    }

    #[test]
    fn inherit_leaves_the_policy_alone() {
        let (before, after) = std::thread::spawn(|| {
            let before = policy();
            apply(Scheduling::Inherit).unwrap();
            (before, policy())
        })
        .join()
        .unwrap();
        assert_eq!(before, after);
    }
}
