//! Pairing codes for unknown DM senders: plain logic, no I/O.
//!
//! An unknown sender under the `pairing` policy gets one reply with an
//! 8-character code, valid for an hour; an operator approves it and the sender
//! joins the allowlist. At most [`MAX_PENDING`] requests wait per channel
//! account, so a flood of strangers cannot fill the operator's queue.

use rand::Rng;

use switchboard_memory::PairingRequest;

/// Characters of a pairing code: no `0`/`O` and no `1`/`I`, which people
/// mistake for each other.
pub const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of a pairing code.
pub const CODE_LEN: usize = 8;
/// How long a code is valid, in milliseconds.
pub const VALID_MS: i64 = 60 * 60 * 1000;
/// Requests that may wait per channel account.
pub const MAX_PENDING: usize = 3;

/// A fresh random code.
pub fn generate_code(rng: &mut impl Rng) -> String {
    (0..CODE_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Normalize what an operator typed: case and surrounding space do not
/// matter.
pub fn normalize_code(typed: &str) -> String {
    typed.trim().to_ascii_uppercase()
}

/// What to do with a message from an unknown sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingDecision {
    /// The sender already holds a live code: say nothing more.
    AlreadyPending,
    /// The account already has the most pending requests: say nothing.
    QueueFull,
    /// Issue a new code, valid until `expires_at`.
    Issue {
        /// The new code.
        code: String,
        /// When it stops being valid, ms since the epoch.
        expires_at: i64,
    },
}

/// Decide for `sender_id` given the account's requests (`pending`, which may
/// include expired ones) at time `now`.
pub fn decide(
    pending: &[PairingRequest],
    sender_id: &str,
    now: i64,
    rng: &mut impl Rng,
) -> PairingDecision {
    let live: Vec<_> = pending.iter().filter(|r| r.expires_at > now).collect();
    if live.iter().any(|r| r.sender_id == sender_id) {
        return PairingDecision::AlreadyPending;
    }
    if live.len() >= MAX_PENDING {
        return PairingDecision::QueueFull;
    }
    PairingDecision::Issue {
        code: generate_code(rng),
        expires_at: now + VALID_MS,
    }
}

/// The one reply an unknown sender gets.
pub fn code_message(channel: &str, code: &str) -> String {
    format!(
        "Hi! I don't know you yet, so I can't answer. My operator can let you in with:\n\n\
         switchboard pairing approve {channel} {code}\n\n\
         (pairing code {code}, valid for 1 hour)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn request(sender: &str, expires_at: i64) -> PairingRequest {
        PairingRequest {
            channel: "telegram".into(),
            account: "default".into(),
            sender_id: sender.into(),
            sender_name: None,
            chat_id: sender.into(),
            code: "ABCDEFGH".into(),
            created_at: expires_at - VALID_MS,
            expires_at,
        }
    }

    #[test]
    fn codes_use_the_unambiguous_alphabet() {
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..500 {
            let code = generate_code(&mut rng);
            assert_eq!(code.len(), 8);
            assert!(
                code.chars().all(|c| ALPHABET.contains(&(c as u8))),
                "{code}"
            );
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
        }
        assert_eq!(normalize_code(" abcd2345 "), "ABCD2345");
    }

    #[test]
    fn one_code_per_sender_and_at_most_three_pending() {
        let mut rng = StdRng::seed_from_u64(1);
        let now = 1_000_000;
        let PairingDecision::Issue { expires_at, .. } = decide(&[], "a", now, &mut rng) else {
            panic!("a first message gets a code")
        };
        assert_eq!(expires_at, now + VALID_MS, "valid for one hour");
        let pending = vec![request("a", now + 10)];
        assert_eq!(
            decide(&pending, "a", now, &mut rng),
            PairingDecision::AlreadyPending
        );
        let full = vec![
            request("a", now + 10),
            request("b", now + 10),
            request("c", now + 10),
        ];
        assert_eq!(
            decide(&full, "d", now, &mut rng),
            PairingDecision::QueueFull
        );
        // Expired requests neither block their sender nor fill the queue.
        assert!(matches!(
            decide(&full, "a", now + 10, &mut rng),
            PairingDecision::Issue { .. }
        ));
        assert!(matches!(
            decide(&full, "d", now + 10, &mut rng),
            PairingDecision::Issue { .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_expires_after_an_hour_of_paused_time() {
        let start = tokio::time::Instant::now();
        let mut rng = StdRng::seed_from_u64(2);
        let now_ms = |s: tokio::time::Instant| s.duration_since(start).as_millis() as i64;
        let PairingDecision::Issue { code, expires_at } = decide(&[], "a", now_ms(start), &mut rng)
        else {
            panic!("issue")
        };
        let mut req = request("a", expires_at);
        req.code = code;
        tokio::time::advance(std::time::Duration::from_secs(3599)).await;
        let pending = vec![req];
        assert_eq!(
            decide(&pending, "a", now_ms(tokio::time::Instant::now()), &mut rng),
            PairingDecision::AlreadyPending
        );
        tokio::time::advance(std::time::Duration::from_secs(1)).await;
        assert!(matches!(
            decide(&pending, "a", now_ms(tokio::time::Instant::now()), &mut rng),
            PairingDecision::Issue { .. }
        ));
    }
}
