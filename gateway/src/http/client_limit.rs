//! The rate limit of web chat requests that name no `user` (one-off
//! sessions): each would be a new sender to the pipeline's per-sender limit,
//! so they are counted here instead, per client — the bearer token and the
//! client's address — before any work is done for them.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;

/// Checks after which clients that have been quiet are forgotten.
const FORGET_EVERY: u64 = 1024;

/// A per-client limiter of one-off requests.
pub struct ClientLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    checks: AtomicU64,
}

impl std::fmt::Debug for ClientLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimit")
            .field("tracked", &self.limiter.as_ref().map_or(0, |l| l.len()))
            .finish()
    }
}

impl ClientLimit {
    /// A limit at `config`'s rate (the web chat's per-sender limit);
    /// `per_minute = 0` lets everything pass.
    pub fn new(config: RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(config.per_minute).map(|rate| {
            let burst = NonZeroU32::new(config.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst))
        });
        Self {
            limiter,
            checks: AtomicU64::new(0),
        }
    }

    /// Count one request of `client`; over the limit, the whole seconds to
    /// wait before the next one is taken (at least 1).
    pub fn check(&self, client: &str) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        limiter.check_key(&client.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(limiter.clock().now());
            (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
        })
    }
}

/// The key of a client: a fingerprint of its bearer token (the token itself
/// is not kept) and its IP address (not the port: every connection has
/// another), or `unknown` when the server was not told the address.
pub fn client_key(token: Option<&str>, addr: Option<SocketAddr>) -> String {
    let token = token.map_or(0, |t| fingerprint(t.as_bytes()));
    match addr {
        Some(a) => format!("{token:016x}@{}", a.ip()),
        None => format!("{token:016x}@unknown"),
    }
}

/// FNV-1a, 64 bits: a short stable fingerprint (not a secret hash).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_client_past_the_burst_is_told_how_long_to_wait() {
        let limit = ClientLimit::new(RateLimitConfig {
            per_minute: 1,
            burst: 2,
        });
        let me = client_key(Some("tok"), "127.0.0.1:5000".parse().ok());
        let same_host = client_key(Some("tok"), "127.0.0.1:5001".parse().ok());
        assert_eq!(me, same_host, "the port does not make another client");
        assert!(limit.check(&me).is_ok());
        assert!(limit.check(&same_host).is_ok());
        let wait = limit.check(&me).unwrap_err();
        assert!((1..=60).contains(&wait), "{wait}");
        let other = client_key(Some("tok"), "10.0.0.2:5000".parse().ok());
        assert!(limit.check(&other).is_ok(), "another address has its own");
    }

    #[test]
    fn zero_per_minute_turns_it_off() {
        let limit = ClientLimit::new(RateLimitConfig {
            per_minute: 0,
            burst: 1,
        });
        for _ in 0..10 {
            assert!(limit.check("x").is_ok());
        }
    }
}
