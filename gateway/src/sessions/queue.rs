//! What a session does with messages that arrive while it is busy: the queue
//! modes as plain logic.

use std::collections::VecDeque;

use crate::config::QueueMode;

/// Something the queue can batch: commands always run alone.
pub trait Batchable {
    /// Whether this item is a command (`/new`, `/reset`, `/status`).
    fn is_command(&self) -> bool;
}

/// The outcome of offering an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer<T> {
    /// Queued behind the running turn.
    Queued,
    /// Queued, and the running turn must be cancelled (`interrupt` mode).
    Interrupt,
    /// The queue is full; the item is handed back to be refused.
    Full(T),
}

/// A session's waiting messages, bounded.
#[derive(Debug)]
pub struct TurnQueue<T> {
    mode: QueueMode,
    capacity: usize,
    items: VecDeque<T>,
}

impl<T: Batchable> TurnQueue<T> {
    /// An empty queue holding at most `capacity` items.
    pub fn new(mode: QueueMode, capacity: usize) -> Self {
        Self {
            mode,
            capacity: capacity.max(1),
            items: VecDeque::new(),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Offer an item; `running` says whether a turn is in flight.
    pub fn offer(&mut self, item: T, running: bool) -> Offer<T> {
        if self.items.len() >= self.capacity {
            return Offer::Full(item);
        }
        self.items.push_back(item);
        if running && self.mode == QueueMode::Interrupt {
            Offer::Interrupt
        } else {
            Offer::Queued
        }
    }

    /// The items the next turn answers: one under `followup`; under
    /// `collect` and `interrupt` every message waiting up to the next
    /// command. A command is always a batch of its own.
    pub fn next_batch(&mut self) -> Vec<T> {
        let Some(first) = self.items.pop_front() else {
            return Vec::new();
        };
        let mut batch = vec![first];
        if batch[0].is_command() || self.mode == QueueMode::Followup {
            self.release_if_empty();
            return batch;
        }
        while self.items.front().is_some_and(|i| !i.is_command()) {
            batch.extend(self.items.pop_front());
        }
        self.release_if_empty();
        batch
    }

    /// An emptied queue gives its room back: an idle session (its actor
    /// may wait minutes for the next message) holds none.
    fn release_if_empty(&mut self) {
        if self.items.is_empty() {
            self.items = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct M(&'static str);
    impl Batchable for M {
        fn is_command(&self) -> bool {
            self.0.starts_with('/')
        }
    }

    fn drain(q: &mut TurnQueue<M>) -> Vec<Vec<&'static str>> {
        let mut out = Vec::new();
        while !q.is_empty() {
            out.push(q.next_batch().into_iter().map(|m| m.0).collect());
        }
        out
    }

    #[test]
    fn followup_answers_each_in_order() {
        let mut q = TurnQueue::new(QueueMode::Followup, 8);
        for m in ["a", "b", "c"] {
            assert_eq!(q.offer(M(m), true), Offer::Queued);
        }
        assert_eq!(drain(&mut q), vec![vec!["a"], vec!["b"], vec!["c"]]);
    }

    #[test]
    fn collect_batches_up_to_a_command() {
        let mut q = TurnQueue::new(QueueMode::Collect, 8);
        for m in ["a", "b", "/new", "c", "d"] {
            assert_eq!(q.offer(M(m), true), Offer::Queued);
        }
        assert_eq!(
            drain(&mut q),
            vec![vec!["a", "b"], vec!["/new"], vec!["c", "d"]]
        );
    }

    #[test]
    fn interrupt_signals_only_while_running() {
        let mut q = TurnQueue::new(QueueMode::Interrupt, 8);
        assert_eq!(q.offer(M("a"), false), Offer::Queued);
        assert_eq!(q.offer(M("b"), true), Offer::Interrupt);
        assert_eq!(drain(&mut q), vec![vec!["a", "b"]]);
    }

    #[test]
    fn an_emptied_queue_keeps_no_room() {
        for mode in [QueueMode::Followup, QueueMode::Collect] {
            let mut q = TurnQueue::new(mode, 8);
            q.offer(M("a"), false);
            q.offer(M("b"), true);
            drain(&mut q);
            assert_eq!(q.items.capacity(), 0, "{mode:?}");
        }
    }

    #[test]
    fn a_full_queue_hands_the_item_back() {
        let mut q = TurnQueue::new(QueueMode::Followup, 2);
        assert_eq!(q.offer(M("a"), true), Offer::Queued);
        assert_eq!(q.offer(M("b"), true), Offer::Queued);
        assert_eq!(q.offer(M("c"), true), Offer::Full(M("c")));
        assert_eq!(q.len(), 2);
    }
}
