//! The per-sender inbound rate limit (governor), with one polite notice per
//! window when a sender exceeds it.
//!
//! Time comes from tokio's clock, so tests run it with paused time.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{Quota, RateLimiter};

use crate::config::RateLimitConfig;

/// governor's clock, read from tokio's (which tests can pause and advance).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

type Keyed = RateLimiter<
    String,
    governor::state::keyed::DefaultKeyedStateStore<String>,
    TokioClock,
    governor::middleware::NoOpMiddleware<Instant>,
>;

impl std::fmt::Debug for RateGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateGate")
            .field("tracked", &self.tracked())
            .finish()
    }
}

/// The verdict on one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateVerdict {
    /// Within the limit.
    Pass,
    /// Over the limit, and the sender has not been told in this window:
    /// tell them once.
    LimitedNotify,
    /// Over the limit and already told: drop silently.
    Limited,
}

/// A per-sender limiter for one channel account.
pub struct RateGate {
    limiter: Option<Keyed>,
    window: Duration,
    notified: Mutex<HashMap<String, Instant>>,
}

impl RateGate {
    /// A gate with `config`'s rate; `per_minute = 0` lets everything pass.
    pub fn new(config: RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(config.per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::new(
                Quota::per_minute(rate).allow_burst(burst),
                Default::default(),
                TokioClock,
            )
        });
        Self {
            limiter,
            window: Duration::from_secs(60),
            notified: Mutex::new(HashMap::new()),
        }
    }

    /// Count one message from `sender`.
    pub fn check(&self, sender: &str) -> RateVerdict {
        let Some(limiter) = &self.limiter else {
            return RateVerdict::Pass;
        };
        if limiter.check_key(&sender.to_string()).is_ok() {
            return RateVerdict::Pass;
        }
        let now = TokioClock.now();
        let mut notified = self.notified.lock().unwrap_or_else(|e| e.into_inner());
        match notified.get(sender) {
            Some(at) if now.duration_since(*at) < self.window => RateVerdict::Limited,
            _ => {
                notified.insert(sender.to_string(), now);
                RateVerdict::LimitedNotify
            }
        }
    }

    /// Forget senders that have been quiet, so memory stays bounded.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = TokioClock.now();
        let window = self.window;
        self.notified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, at| now.duration_since(*at) < window);
    }

    /// Senders currently tracked (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.limiter.as_ref().map_or(0, Keyed::len)
    }
}

/// The notice a limited sender gets once per window.
pub const NOTICE: &str = "You're sending messages faster than I can take them. Please wait a minute; messages sent meanwhile are not answered.";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_one_notice_per_window() {
        let gate = RateGate::new(RateLimitConfig {
            per_minute: 6,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(gate.check("a"), RateVerdict::Pass);
        }
        assert_eq!(gate.check("a"), RateVerdict::LimitedNotify);
        assert_eq!(gate.check("a"), RateVerdict::Limited);
        // Another sender is not starved by the chatty one.
        assert_eq!(gate.check("b"), RateVerdict::Pass);
        // One message per 10 s replenishes.
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(gate.check("a"), RateVerdict::Pass);
        assert_eq!(
            gate.check("a"),
            RateVerdict::Limited,
            "told already in this window"
        );
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert_eq!(gate.check("a"), RateVerdict::Pass);
        }
        assert_eq!(
            gate.check("a"),
            RateVerdict::LimitedNotify,
            "a new window gets a new notice"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_rate_means_no_limit_and_idle_senders_are_forgotten() {
        let open = RateGate::new(RateLimitConfig {
            per_minute: 0,
            burst: 0,
        });
        for _ in 0..100 {
            assert_eq!(open.check("a"), RateVerdict::Pass);
        }
        let gate = RateGate::new(RateLimitConfig {
            per_minute: 60,
            burst: 1,
        });
        for i in 0..50 {
            gate.check(&format!("s{i}"));
        }
        assert_eq!(gate.tracked(), 50);
        tokio::time::advance(Duration::from_secs(5)).await;
        gate.forget_idle();
        assert_eq!(gate.tracked(), 0);
    }
}
