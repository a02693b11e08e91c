//! Failed authentications, limited per client address (governor) with a
//! global ceiling, without a lockout anyone can trigger.
//!
//! - An address with more than `per_minute` failures gets `429` with
//!   `Retry-After` until its quota refills; its credentials are not even
//!   compared meanwhile.
//! - Past `global_per_minute` failures from everywhere, an address that
//!   failed recently is refused before comparing too, so guessing from many
//!   addresses stays slow; an address with no recent failure is still
//!   heard, so someone else's failures never lock out a client that has
//!   the right token.
//!
//! The client's address is the peer's, or, when the peer is one of
//! `gateway.trusted_proxies`, the last address in `X-Forwarded-For` that is
//! not a trusted proxy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::Clock;
use governor::{Quota, RateLimiter};

use crate::pipeline::ratelimit::TokioClock;

type Keyed = RateLimiter<
    IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<IpAddr>,
    TokioClock,
    governor::middleware::NoOpMiddleware<Instant>,
>;
type Direct = RateLimiter<
    governor::state::NotKeyed,
    governor::state::InMemoryState,
    TokioClock,
    governor::middleware::NoOpMiddleware<Instant>,
>;

/// How long an address counts as having failed recently.
const RECENT: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most (the oldest are forgotten first).
const MAX_TRACKED: usize = 100_000;

/// The throttle of failed authentications.
pub struct AuthThrottle {
    per_address: Option<Keyed>,
    global: Option<Direct>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Addresses refused until then.
    blocked: HashMap<IpAddr, Instant>,
    /// When each address last failed.
    failed: HashMap<IpAddr, Instant>,
    /// Until when the global ceiling is passed.
    global_until: Option<Instant>,
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("AuthThrottle")
            .field("blocked", &s.blocked.len())
            .field("failed", &s.failed.len())
            .finish()
    }
}

fn now() -> Instant {
    TokioClock.now()
}

impl AuthThrottle {
    /// At most `per_minute` failures per address and `global_per_minute`
    /// from everywhere (0: no limit).
    pub fn new(per_minute: u32, global_per_minute: u32) -> Self {
        Self {
            per_address: NonZeroU32::new(per_minute)
                .map(|n| RateLimiter::new(Quota::per_minute(n), Default::default(), TokioClock)),
            global: NonZeroU32::new(global_per_minute)
                .map(|n| RateLimiter::new(Quota::per_minute(n), Default::default(), TokioClock)),
            state: Mutex::new(State::default()),
        }
    }

    /// Before comparing a credential from `client`: `Err(wait)` when it
    /// must be refused now, to try again after `wait`.
    pub fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        let now = now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&until) = s.blocked.get(&client) {
            if until > now {
                return Err(until - now);
            }
            s.blocked.remove(&client);
        }
        if let Some(until) = s.global_until.filter(|u| *u > now) {
            let recent = s
                .failed
                .get(&client)
                .is_some_and(|t| now.duration_since(*t) < RECENT);
            if recent {
                return Err(until - now);
            }
        }
        Ok(())
    }

    /// A credential from `client` was wrong.
    pub fn failed(&self, client: IpAddr) {
        let now = now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.failed.insert(client, now);
        if let Some(limiter) = &self.per_address
            && let Err(not_until) = limiter.check_key(&client)
        {
            let wait = not_until.wait_time_from(now);
            s.blocked
                .insert(client, now + wait.max(Duration::from_secs(1)));
        }
        if let Some(global) = &self.global
            && let Err(not_until) = global.check()
        {
            let wait = not_until.wait_time_from(now).max(Duration::from_secs(1));
            s.global_until = Some(now + wait);
            tracing::warn!(
                "failed sign-ins from many addresses: addresses that failed recently are refused for {} s",
                wait.as_secs().max(1)
            );
        }
        if s.failed.len() > MAX_TRACKED {
            s.failed.retain(|_, t| now.duration_since(*t) < RECENT);
            s.blocked.retain(|_, until| *until > now);
            if let Some(l) = &self.per_address {
                l.retain_recent();
            }
        }
    }
}

/// `Retry-After` seconds for `wait`: whole seconds, at least 1.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

/// One trusted proxy: an address or a network in CIDR notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `"10.0.0.0/8"`, `"::1"`, `"192.168.1.5"`; an error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or a network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        // An IPv4 address written as IPv6 (`::ffff:10.1.1.1`) is IPv4.
        if let IpAddr::V6(v6) = addr
            && let Some(v4) = v6.to_ipv4_mapped()
            && prefix >= 96
        {
            return Ok(Self {
                addr: IpAddr::V4(v4),
                prefix: prefix - 96,
            });
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client of a request from `peer` with `forwarded` (the
/// `X-Forwarded-For` header's value): the peer, unless it is a trusted
/// proxy; then the right-most forwarded address that is not one.
pub fn client_address(peer: SocketAddr, forwarded: Option<&str>, trusted: &[Net]) -> IpAddr {
    let peer = peer.ip();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(chain) = forwarded else { return peer };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // A hop we cannot read: stop at the last one we could.
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn an_address_is_refused_after_its_failures_and_heard_again_later() {
        let t = AuthThrottle::new(3, 0);
        let a = ip("203.0.113.5");
        for _ in 0..3 {
            assert!(t.admit(a).is_ok());
            t.failed(a);
        }
        assert!(t.admit(a).is_ok(), "three failures are within the quota");
        t.failed(a);
        let wait = t.admit(a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Someone else is not affected.
        assert!(t.admit(ip("198.51.100.7")).is_ok());
        tokio::time::advance(wait + Duration::from_millis(1)).await;
        assert!(t.admit(a).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_global_ceiling_refuses_recent_failures_only() {
        let t = AuthThrottle::new(100, 5);
        for i in 0..6 {
            let a = ip(&format!("203.0.113.{i}"));
            assert!(t.admit(a).is_ok());
            t.failed(a);
        }
        assert!(
            t.admit(ip("203.0.113.1")).is_err(),
            "a recent failure is refused"
        );
        assert!(
            t.admit(ip("198.51.100.7")).is_ok(),
            "an address that never failed is still heard"
        );
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let trusted = [
            Net::parse("10.0.0.0/8").unwrap(),
            Net::parse("127.0.0.1").unwrap(),
        ];
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(
            client_address(peer, Some("198.51.100.7, 10.1.2.3"), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(peer, Some("6.6.6.6, 198.51.100.7"), &trusted),
            ip("198.51.100.7"),
            "a client cannot pick its address by prepending to the chain"
        );
        let stranger: SocketAddr = "192.0.2.9:5000".parse().unwrap();
        assert_eq!(
            client_address(stranger, Some("198.51.100.7"), &trusted),
            ip("192.0.2.9"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(client_address(peer, None, &trusted), ip("127.0.0.1"));
        assert!(Net::parse("10.0.0.0/33").is_err());
        assert!(
            Net::parse("::ffff:10.1.1.1")
                .unwrap()
                .contains(ip("10.1.1.1"))
        );
        assert!(
            Net::parse("10.0.0.0/8")
                .unwrap()
                .contains(ip("::ffff:10.9.9.9"))
        );
    }
}
