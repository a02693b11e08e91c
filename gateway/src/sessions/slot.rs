//! The run slot a turn holds: one of the `max_concurrent_runs` permits. A
//! turn gives it back while it waits for a person (an approval request can
//! wait minutes) and takes one again when the answer comes, so waiting turns
//! do not keep other sessions from running.

use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One turn's hold on the concurrent-run cap.
#[derive(Debug)]
pub struct RunSlot {
    runs: Arc<Semaphore>,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    permit: Option<OwnedSemaphorePermit>,
    /// Waits in progress (a step's gated calls wait side by side).
    paused: usize,
    /// The turn is over: take no permit again.
    finished: bool,
}

impl RunSlot {
    /// A slot holding `permit`, taken from `runs`.
    pub fn new(runs: Arc<Semaphore>, permit: OwnedSemaphorePermit) -> Arc<Self> {
        Arc::new(Self {
            runs,
            state: Mutex::new(SlotState {
                permit: Some(permit),
                paused: 0,
                finished: false,
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Give the permit back while waiting for a person; call
    /// [`Pause::resume`] when the answer comes. While several waits overlap
    /// the permit stays given back until the last one resumes.
    pub fn pause(self: &Arc<Self>) -> Pause {
        let released = {
            let mut s = self.state();
            s.paused += 1;
            s.permit.take()
        };
        drop(released);
        Pause {
            slot: self.clone(),
            resumed: false,
        }
    }

    /// The turn is over: give the permit back for good.
    pub fn finish(&self) {
        let released = {
            let mut s = self.state();
            s.finished = true;
            s.permit.take()
        };
        drop(released);
    }

    /// Whether the slot holds a permit now.
    pub fn holds_permit(&self) -> bool {
        self.state().permit.is_some()
    }

    /// Whether the last wait is over and the turn needs a permit again.
    fn needs_permit(s: &SlotState) -> bool {
        s.paused == 0 && s.permit.is_none() && !s.finished
    }
}

/// A wait in progress; the permit is given back meanwhile.
#[derive(Debug)]
#[must_use = "resume the pause when the wait is over"]
pub struct Pause {
    slot: Arc<RunSlot>,
    resumed: bool,
}

impl Pause {
    /// The wait is over: when it was the last, wait for a free permit and
    /// hold it again (unless the turn finished meanwhile).
    pub async fn resume(mut self) {
        self.resumed = true;
        let slot = self.slot.clone();
        let needed = {
            let mut s = slot.state();
            s.paused = s.paused.saturating_sub(1);
            RunSlot::needs_permit(&s)
        };
        if !needed {
            return;
        }
        let Ok(permit) = slot.runs.clone().acquire_owned().await else {
            return; // the cap is closed: the gateway is stopping
        };
        let mut s = slot.state();
        if RunSlot::needs_permit(&s) {
            s.permit = Some(permit);
        }
        // Otherwise another wait began meanwhile, or the turn finished:
        // the permit is given back as it drops here.
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        if !self.resumed {
            // Abandoned (the turn was cancelled): the turn ends; take no
            // permit again.
            let mut s = self.slot.state();
            s.paused = s.paused.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    async fn slot(cap: usize) -> (Arc<Semaphore>, Arc<RunSlot>) {
        let runs = Arc::new(Semaphore::new(cap));
        let permit = runs.clone().acquire_owned().await.unwrap();
        (runs.clone(), RunSlot::new(runs, permit))
    }

    #[tokio::test]
    async fn a_waiting_turn_gives_its_slot_to_others_and_takes_one_after() {
        let (runs, slot) = slot(1).await;
        assert_eq!(runs.available_permits(), 0);
        let pause = slot.pause();
        assert_eq!(runs.available_permits(), 1, "given back while waiting");
        assert!(!slot.holds_permit());
        // Another session runs meanwhile; the waiting turn waits for it.
        let other = runs.clone().acquire_owned().await.unwrap();
        let mut resume = Box::pin(pause.resume());
        assert!(
            resume.as_mut().now_or_never().is_none(),
            "no free slot: the turn waits for one"
        );
        drop(other);
        resume.await;
        assert!(slot.holds_permit());
        assert_eq!(runs.available_permits(), 0);
        slot.finish();
        assert_eq!(runs.available_permits(), 1, "the turn is over");
    }

    #[tokio::test]
    async fn overlapping_waits_resume_once_and_a_finished_turn_takes_nothing() {
        let (runs, slot) = slot(2).await;
        let a = slot.pause();
        let b = slot.pause();
        assert_eq!(runs.available_permits(), 2);
        a.resume().await;
        assert!(!slot.holds_permit(), "one call still waits");
        b.resume().await;
        assert!(slot.holds_permit());
        assert_eq!(runs.available_permits(), 1);

        let c = slot.pause();
        drop(c); // cancelled while waiting
        slot.finish();
        assert_eq!(runs.available_permits(), 2);
        let d = slot.pause();
        d.resume().await;
        assert!(!slot.holds_permit(), "a finished turn takes no slot");
        assert_eq!(runs.available_permits(), 2);
    }
}
