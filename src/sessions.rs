//! How many backends are running a statement right now, from pgstat's backend status: what
//! `mobileclip.threads = 0` divides the cores by. One backend alone is fastest with a thread
//! per core; several embedding at once are fastest with one each (together they keep the
//! cores busy, and more threads than cores only switch). Measured: BENCHMARKS.md, "Many
//! sessions through SQL".

use pgrx::pg_sys;

/// Client backends and parallel workers whose state is `active`, this one included (so at
/// least 1). pgstat copies the status array once per transaction, so a long statement keeps
/// the count it started with; with `track_activities = off` no state is known and this is 1.
pub fn running_backends() -> usize {
    let mut n = 1;
    // SAFETY: called from a SQL function (a transaction is open, as the pgstat snapshot
    // needs); the entries returned live until the end of the transaction and are only read.
    unsafe {
        let me = pg_sys::MyProcPid;
        let total = pg_sys::pgstat_fetch_stat_numbackends();
        for i in 1..=total {
            let e = pg_sys::pgstat_fetch_stat_local_beentry(i);
            if e.is_null() {
                continue;
            }
            let st = &(*e).backendStatus;
            let kind = st.st_backendType;
            if st.st_procpid != me
                && st.st_state == pg_sys::BackendState::STATE_RUNNING
                && (kind == pg_sys::BackendType::B_BACKEND || kind == pg_sys::BackendType::B_BG_WORKER)
            {
                n += 1;
            }
        }
    }
    n
}
