//! Token hygiene: what makes a configured token too weak to start with,
//! how a good one is made (`switchboard token new`), and the digest the
//! gateway keeps of a token it only needs to check.

use base64::Engine as _;
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

/// The shortest token accepted, in characters.
pub const MIN_LEN: usize = 32;

/// Tokens our documentation shows, and placeholders people paste; none is
/// accepted, whatever its length.
const EXAMPLES: &[&str] = &[
    "change-me",
    "changeme",
    "replace-me",
    "your-token",
    "your-token-here",
    "your_token_here",
    "example",
    "placeholder",
    "secret:",
    "xxxxxxxx",
    "0123456789abcdef0123456789abcdef",
    "test-token-0123456789abcdef",
];

/// Why `token` is too weak to guard the gateway, if it is: shorter than
/// [`MIN_LEN`], of little variety (repeats, a word), or an example.
pub fn weakness(token: &str) -> Option<String> {
    let t = token.trim();
    let lower = t.to_ascii_lowercase();
    if let Some(e) = EXAMPLES.iter().find(|e| lower.contains(*e)) {
        return Some(format!(
            "it contains `{e}`, a placeholder or an example from the documentation"
        ));
    }
    let len = t.chars().count();
    if len < MIN_LEN {
        return Some(format!(
            "it is {len} characters long; a token needs at least {MIN_LEN} random characters"
        ));
    }
    let per_char = shannon_bits_per_char(t);
    let bits = per_char * len as f64;
    // A random token's characters are spread evenly: 32 hex digits give
    // about 115 bits by this estimate, 40 random digits about 130; words
    // and repeats fall far below.
    if per_char < 2.5 || bits < 100.0 {
        return Some(format!(
            "it has too little variety (about {bits:.0} bits by the spread of its characters; a random token has 100 or more): it looks typed, not random"
        ));
    }
    None
}

/// The empirical Shannon entropy of `s`, in bits per character.
fn shannon_bits_per_char(s: &str) -> f64 {
    let mut counts = std::collections::HashMap::new();
    let mut n = 0usize;
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .values()
        .map(|&k| {
            let p = k as f64 / n as f64;
            -p * p.log2()
        })
        .sum()
}

/// A new random token: 32 random bytes, URL-safe base64 (43 characters).
pub fn generate() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// What the gateway keeps of a token it only checks: its SHA-256 digest,
/// compared in constant time.
#[derive(Clone)]
pub struct TokenDigest([u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(<redacted>)")
    }
}

impl TokenDigest {
    /// The digest of `token`.
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Whether `presented` is the token.
    pub fn matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq as _;
        let other: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        self.0.ct_eq(&other).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_named_and_generated_ones_pass() {
        assert!(weakness("short").unwrap().contains("5 characters"));
        assert!(
            weakness("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
                .unwrap()
                .contains("variety")
        );
        assert!(
            weakness("passwordpasswordpasswordpassword")
                .unwrap()
                .contains("variety")
        );
        assert!(
            weakness("change-me-change-me-change-me-change-me")
                .unwrap()
                .contains("example")
        );
        for _ in 0..100 {
            let t = generate();
            assert_eq!(t.len(), 43);
            assert_eq!(weakness(&t), None, "{t}");
        }
        // The generated control token's shape (48 hex digits) passes.
        assert_eq!(
            weakness("3f9a1c0e7b2d4856a9e1f03c7d5b2a184e6f90c3b7d1a2e5"),
            None
        );
    }

    #[test]
    fn a_digest_matches_its_token_only() {
        let d = TokenDigest::of("sbt-3f9a1c0e7b2d4856a9e1f03c7d5b2a18");
        assert!(d.matches("sbt-3f9a1c0e7b2d4856a9e1f03c7d5b2a18"));
        assert!(!d.matches("sbt-3f9a1c0e7b2d4856a9e1f03c7d5b2a19"));
        assert!(!format!("{d:?}").contains("3f9a"));
    }
}
