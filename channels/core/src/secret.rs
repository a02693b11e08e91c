//! Comparing a presented secret (a bearer token, a webhook's secret
//! header) with the real one. It lives here, at the bottom of the
//! dependency graph, so the channel adapters and the gateway share the one
//! comparison instead of each writing its own.

use subtle::ConstantTimeEq;

/// Whether `presented` equals `expected`, in time that does not depend on
/// where they first differ (`subtle`), so an attacker cannot find the
/// secret byte by byte from response times. Only the length may show.
///
/// An empty `expected` matches nothing: a secret that was never set is not
/// the empty string.
pub fn secret_eq(presented: impl AsRef<[u8]>, expected: impl AsRef<[u8]>) -> bool {
    let (presented, expected) = (presented.as_ref(), expected.as_ref());
    !expected.is_empty() && bool::from(presented.ct_eq(expected))
}

#[cfg(test)]
mod tests {
    use super::secret_eq;

    #[test]
    fn equal_only_when_every_byte_and_the_length_agree() {
        assert!(secret_eq("abc", "abc"));
        assert!(secret_eq(b"abc".as_slice(), "abc"));
        assert!(!secret_eq("abd", "abc"));
        assert!(!secret_eq("bbc", "abc"));
        assert!(!secret_eq("ab", "abc"));
        assert!(!secret_eq("abcd", "abc"));
        assert!(!secret_eq("", "abc"));
    }

    #[test]
    fn an_unset_secret_matches_nothing() {
        assert!(!secret_eq("", ""));
        assert!(!secret_eq("anything", ""));
    }
}
