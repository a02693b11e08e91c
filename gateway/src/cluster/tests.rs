use super::fanout::{Assembler, split};
use super::*;

#[test]
fn a_dead_holders_leases_are_free_within_lease_secs_and_the_holder_lets_go_first() {
    for secs in [3, 15, 300] {
        let t = Timing::new(secs);
        let lease = Duration::from_secs(secs);
        // Its last beat was at most a term ago when its leases end; another
        // replica asks every beat.
        assert!(t.term + t.beat < lease, "{secs}: {t:?}");
        // A replica that cannot beat stops its listeners before its term
        // could end, and keeps them across one failed beat.
        assert!(t.fence() < t.term && t.fence() > t.beat, "{secs}: {t:?}");
    }
}

#[test]
fn a_batch_too_long_for_one_notice_goes_in_parts_and_comes_together() {
    let text = "é€😀 ".repeat(4000); // multi-byte, 44 000 bytes
    let json = serde_json::to_string(&text).unwrap();
    let notices = split("replica-a", 7, &json);
    assert!(notices.len() > 5);
    assert!(
        notices
            .iter()
            .all(|n| n.len() <= switchboard_memory::MAX_NOTICE)
    );
    let mut parts = Assembler::default();
    // Out of order, interleaved with a one-part batch of another replica.
    let mut got = None;
    for (i, n) in notices.iter().enumerate().rev() {
        if i == 2 {
            let other = split("replica-b", 1, "[]");
            assert_eq!(
                parts.take(&other[0]),
                Some(("replica-b".into(), "[]".into()))
            );
        }
        if let Some(whole) = parts.take(n) {
            assert!(got.is_none());
            got = Some(whole);
        }
    }
    assert_eq!(got, Some(("replica-a".into(), json)));
}

#[test]
fn a_notice_that_is_not_one_is_dropped() {
    let mut parts = Assembler::default();
    for bad in [
        "",
        "a",
        "a\nx\n0\n1\n[]",
        "a\n1\n3\n2\n[]",
        "a\n1\n0\n0\n[]",
    ] {
        assert_eq!(parts.take(bad), None, "{bad:?}");
    }
}
