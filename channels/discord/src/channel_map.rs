//! What the adapter knows of channel kinds (which ids are threads, and of
//! which channel), bounded: the least recently used entries go first when
//! it is full. A forgotten channel is looked up again when a message comes
//! from it, so forgetting costs one REST call, never a wrong route.

use std::collections::{BTreeMap, HashMap};

/// How many channels are remembered by default: far more than the active
/// channels of the guilds one bot is in, and a few MB at most.
pub const CAPACITY: usize = 10_000;

/// Channel id → its parent when it is a thread (`None`: a channel).
#[derive(Debug)]
pub struct ChannelMap {
    capacity: usize,
    /// id → (parent, when last used).
    entries: HashMap<String, (Option<String>, u64)>,
    /// When last used → id: the oldest first.
    by_use: BTreeMap<u64, String>,
    clock: u64,
}

impl Default for ChannelMap {
    fn default() -> Self {
        Self::new(CAPACITY)
    }
}

impl ChannelMap {
    /// An empty map holding at most `capacity` channels (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// What is known of `id`: `Some(parent)` when known (`Some(None)` for
    /// a channel that is not a thread); it counts as a use.
    pub fn get(&mut self, id: &str) -> Option<Option<String>> {
        let now = self.tick();
        let (parent, used) = self.entries.get_mut(id)?;
        self.by_use.remove(used);
        *used = now;
        self.by_use.insert(now, id.to_string());
        Some(parent.clone())
    }

    /// Remember `id` with its parent (`None` for a channel), forgetting
    /// the least recently used channel when full.
    pub fn insert(&mut self, id: String, parent: Option<String>) {
        let now = self.tick();
        if let Some((_, used)) = self.entries.get(&id) {
            self.by_use.remove(used);
        }
        self.by_use.insert(now, id.clone());
        self.entries.insert(id, (parent, now));
        while self.entries.len() > self.capacity {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
    }

    /// How many channels are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_channel_is_forgotten_first() {
        let mut map = ChannelMap::new(2);
        map.insert("a".into(), None);
        map.insert("b".into(), Some("a".into()));
        // `a` is used, so `b` is the oldest when `c` comes.
        assert_eq!(map.get("a"), Some(None));
        map.insert("c".into(), None);
        assert_eq!(map.len(), 2);
        assert_eq!(map.get("b"), None);
        assert_eq!(map.get("a"), Some(None));
        assert_eq!(map.get("c"), Some(None));
    }

    #[test]
    fn inserting_again_replaces_and_never_grows_past_the_cap() {
        let mut map = ChannelMap::new(3);
        for i in 0..100 {
            map.insert(format!("t{}", i % 5), Some(format!("p{i}")));
            assert!(map.len() <= 3);
        }
        assert_eq!(map.get("t4"), Some(Some("p99".into())));
        assert_eq!(map.by_use.len(), map.entries.len());
    }
}
