//! A link's share of the handler threads: at most `NET_CONN_THREADS` of the other side's
//! synchronous calls run on threads at once; the rest wait here, in order, and each
//! thread that finishes one of the link's calls takes the link's next. Other links'
//! calls meanwhile go to the threads as usual, so one caller with hundreds of slow calls
//! cannot make everyone else wait for a thread.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::Link;
use crate::sync::lock;

/// A handler run, with its reply.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

#[derive(Default)]
pub(super) struct Share {
    /// Calls of this link on threads now, or handed to the threads.
    running: AtomicUsize,
    /// Calls waiting for the link's share, oldest first.
    held: Mutex<VecDeque<Job>>,
}

impl Link {
    /// Hands `job` to `submit` (the handler threads) if the link has fewer than `limit`
    /// there; otherwise it waits for one of them to end. `submit` must run the job and
    /// then [`Link::thread_done`] on the same thread.
    pub(crate) fn on_thread(&self, limit: usize, job: Job, submit: impl FnOnce(Job)) {
        let share = &self.share;
        if share.running.fetch_add(1, Ordering::AcqRel) < limit {
            return submit(job);
        }
        // Over the share: wait, unless every call on a thread ended meanwhile (then
        // nobody would take it).
        let mut held = lock(&share.held);
        held.push_back(job);
        let running = share.running.fetch_sub(1, Ordering::AcqRel) - 1;
        if running < limit {
            if let Some(job) = held.pop_front() {
                share.running.fetch_add(1, Ordering::AcqRel);
                drop(held);
                submit(job);
            }
        }
    }

    /// A job of the link's share ended on this thread: the link's next waiting call, if
    /// any, to run here in its place.
    pub(crate) fn thread_done(&self) -> Option<Job> {
        let share = &self.share;
        let mut held = lock(&share.held);
        match held.pop_front() {
            Some(job) => Some(job),
            None => {
                share.running.fetch_sub(1, Ordering::AcqRel);
                None
            }
        }
    }
}
