//! A session actor's mailbox: jobs handed to it, bounded, and a wake-up.
//!
//! Lighter than a channel (a tokio channel keeps about 600 bytes even
//! when empty): every idle actor keeps one, and a gateway holds an actor
//! for every session spoken to within `sessions.actor_idle_secs`.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// Why a job was not put in the mailbox; it is handed back.
#[derive(Debug)]
pub enum Refused<T> {
    /// It holds as many as it may.
    Full(T),
    /// Its actor has left.
    Closed(T),
}

/// One actor's waiting jobs. Many may send; one (the actor) receives.
#[derive(Debug)]
pub struct Mailbox<T> {
    state: Mutex<State<T>>,
    /// Woken for each job put in (a wake-up with no one waiting is kept
    /// for the next wait, so none is lost).
    ready: Notify,
    capacity: usize,
}

#[derive(Debug)]
struct State<T> {
    jobs: VecDeque<T>,
    closed: bool,
}

impl<T> Mailbox<T> {
    /// An open mailbox holding at most `capacity` jobs (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
            }),
            ready: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put `job` in, unless the mailbox is full or closed.
    pub fn send(&self, job: T) -> Result<(), Refused<T>> {
        let mut s = self.lock();
        if s.closed {
            return Err(Refused::Closed(job));
        }
        if s.jobs.len() >= self.capacity {
            return Err(Refused::Full(job));
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, if one waits.
    pub fn try_recv(&self) -> Option<T> {
        let mut s = self.lock();
        let job = s.jobs.pop_front();
        if s.jobs.is_empty() {
            // An idle actor keeps no room.
            s.jobs = VecDeque::new();
        }
        job
    }

    /// The next job, waiting for one; `None` once the mailbox is closed
    /// and empty.
    pub async fn recv(&self) -> Option<T> {
        loop {
            if let Some(job) = self.try_recv() {
                return Some(job);
            }
            if self.lock().closed {
                return None;
            }
            self.ready.notified().await;
        }
    }

    /// Take no more jobs; the next waiting one if one came first (then the
    /// mailbox stays open).
    pub fn close_if_empty(&self) -> Option<T> {
        let mut s = self.lock();
        match s.jobs.pop_front() {
            Some(job) => Some(job),
            None => {
                s.closed = true;
                None
            }
        }
    }

    /// Take no more jobs and drop those waiting.
    pub fn close(&self) {
        let waiting = {
            let mut s = self.lock();
            s.closed = true;
            std::mem::take(&mut s.jobs)
        };
        drop(waiting);
        self.ready.notify_one();
    }

    /// Whether it takes no more jobs.
    #[cfg(test)]
    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures::FutureExt as _;

    use super::*;

    #[test]
    fn a_full_mailbox_hands_the_job_back_and_takes_it_once_there_is_room() {
        let m = Mailbox::new(2);
        m.send(1).unwrap();
        m.send(2).unwrap();
        assert!(matches!(m.send(3), Err(Refused::Full(3))));
        assert_eq!(m.try_recv(), Some(1));
        m.send(3).unwrap();
        assert_eq!(m.try_recv(), Some(2));
        assert_eq!(m.try_recv(), Some(3));
        assert_eq!(m.try_recv(), None);
    }

    #[tokio::test]
    async fn a_waiting_actor_wakes_for_a_job_sent_from_another_task() {
        let m = Arc::new(Mailbox::new(4));
        let mut waiting = Box::pin(m.recv());
        assert!(waiting.as_mut().now_or_never().is_none(), "nothing yet");
        let sender = m.clone();
        tokio::spawn(async move { sender.send(7).unwrap() })
            .await
            .unwrap();
        assert_eq!(waiting.await, Some(7));
        // A job sent before the wait began is not missed either.
        m.send(8).unwrap();
        assert_eq!(m.recv().await, Some(8));
    }

    #[test]
    fn a_mailbox_closes_only_when_empty_and_then_refuses() {
        let m = Mailbox::new(4);
        m.send(1).unwrap();
        assert_eq!(m.close_if_empty(), Some(1), "a job came first: stays open");
        assert!(!m.is_closed());
        assert_eq!(m.close_if_empty(), None);
        assert!(m.is_closed());
        assert!(matches!(m.send(2), Err(Refused::Closed(2))));
        assert_eq!(m.recv().now_or_never(), Some(None));
    }

    #[test]
    fn closing_drops_what_waits_and_ends_the_wait() {
        let job = Arc::new(());
        let m = Mailbox::new(4);
        m.send(job.clone()).unwrap();
        let mut waiting = Box::pin(m.recv());
        m.close();
        assert_eq!(Arc::strong_count(&job), 1, "the waiting job is dropped");
        assert_eq!(waiting.as_mut().now_or_never(), Some(None));
        assert!(m.send(job).is_err());
    }

    #[test]
    fn an_emptied_mailbox_keeps_no_room() {
        let m = Mailbox::new(4);
        m.send(1).unwrap();
        m.send(2).unwrap();
        m.try_recv();
        m.try_recv();
        assert_eq!(m.lock().jobs.capacity(), 0);
    }
}
