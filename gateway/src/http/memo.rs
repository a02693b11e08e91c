//! Recent answers to chat completion requests that carried an
//! `Idempotency-Key`, so a repeat gets the very body the first request got
//! (same id, creation time and usage). Bounded; what it no longer holds is
//! rebuilt from the stored answer (its usage is then not known).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use switchboard_channel::TokenUsage;

/// Answers kept.
const CAPACITY: usize = 256;
/// Longer answers are not kept here (the store has them).
const MAX_TEXT_BYTES: usize = 64 * 1024;

/// One answer as the client was given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The completion id (`chatcmpl-…`).
    pub id: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// The agent that answered.
    pub model: String,
    /// The whole answer.
    pub text: String,
    /// Tokens, when the model reported them.
    pub usage: Option<TokenUsage>,
}

#[derive(Debug, Default)]
struct Kept {
    by_key: HashMap<String, Arc<Answer>>,
    order: VecDeque<String>,
}

/// Recent answers by idempotency key.
#[derive(Debug, Default)]
pub struct AnswerMemo {
    kept: Mutex<Kept>,
}

impl AnswerMemo {
    /// Nothing kept yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The answer given to `key`, if still kept.
    pub fn get(&self, key: &str) -> Option<Arc<Answer>> {
        self.kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_key
            .get(key)
            .cloned()
    }

    /// Keep the answer to `key`; the first one kept stays (the requests of
    /// one key all got the same answer), the oldest goes when full.
    pub fn remember(&self, key: &str, answer: Answer) {
        if answer.text.len() > MAX_TEXT_BYTES {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.by_key.contains_key(key) {
            return;
        }
        kept.by_key.insert(key.to_string(), Arc::new(answer));
        kept.order.push_back(key.to_string());
        while kept.order.len() > CAPACITY {
            if let Some(old) = kept.order.pop_front() {
                kept.by_key.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(text: &str) -> Answer {
        Answer {
            id: "chatcmpl-x".into(),
            created: 1,
            model: "main".into(),
            text: text.into(),
            usage: None,
        }
    }

    #[test]
    fn the_first_answer_stays_and_the_oldest_goes_when_full() {
        let memo = AnswerMemo::new();
        memo.remember("k", answer("first"));
        memo.remember("k", answer("second"));
        assert_eq!(memo.get("k").unwrap().text, "first");
        for i in 0..CAPACITY {
            memo.remember(&format!("other-{i}"), answer("x"));
        }
        assert!(memo.get("k").is_none());
        assert!(memo.get(&format!("other-{}", CAPACITY - 1)).is_some());
    }
}
