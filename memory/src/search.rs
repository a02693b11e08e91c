//! The search index of one memory scope (an agent and an owner): BM25 over
//! the words of each memory's text and tags, through an inverted index
//! (word → the memories holding it), and, when the query has an embedding,
//! the cosine similarity of every stored vector added to the normalized
//! keyword score. Plain in-memory data built from decrypted records; it is
//! never written anywhere. No I/O.

use std::collections::HashMap;

use crate::MemoryRecord;

/// BM25's term-frequency saturation.
pub const K1: f32 = 1.2;
/// BM25's document-length normalization.
pub const B: f32 = 0.75;
/// Characters of a word that are indexed; the rest of a longer one is not.
const MAX_WORD_CHARS: usize = 64;

/// The words of `text` as the index knows them: lowercased runs of
/// letters and digits (any script), of two characters or more.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut chars = 0usize;
    for c in text.chars().chain(std::iter::once(' ')) {
        if c.is_alphanumeric() {
            if chars < MAX_WORD_CHARS {
                word.extend(c.to_lowercase());
            }
            chars += 1;
            continue;
        }
        if chars >= 2 {
            out.push(std::mem::take(&mut word));
        } else {
            word.clear();
        }
        chars = 0;
    }
    out
}

/// `v` scaled to length 1, or `None` for a vector of no length (or one
/// holding something that is not a number).
pub fn unit(v: &[f32]) -> Option<Vec<f32>> {
    let norm = dot(v, v).sqrt();
    (norm.is_finite() && norm > 0.0).then(|| v.iter().map(|x| x / norm).collect())
}

/// The dot product of two vectors of one length, in eight lanes (which
/// the compiler keeps in SIMD registers: a float sum in one lane cannot be
/// reordered, and would be four times slower).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_rest) = a.as_chunks::<8>();
    let (b8, b_rest) = b.as_chunks::<8>();
    let mut lanes = [0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for (x, y) in a_rest.iter().zip(b_rest) {
        sum += x * y;
    }
    sum
}

/// One indexed memory.
struct Doc {
    /// The record, without its vector (kept unit-length in `vector`).
    record: MemoryRecord,
    /// The embedding scaled to length 1.
    vector: Option<Vec<f32>>,
    /// Its distinct words and how often each occurs.
    terms: Vec<(u32, u32)>,
}

/// A memory a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The memory (without its vector).
    pub record: MemoryRecord,
    /// The ranking score: `keyword` plus `cosine` when there is one.
    pub score: f32,
    /// BM25 divided by the best BM25 among the results' candidates (0 to
    /// 1; 0 when no query word is in it).
    pub keyword: f32,
    /// Cosine similarity to the query's embedding, when both have one.
    pub cosine: Option<f32>,
}

/// The index of one scope. Its `Debug` shows sizes, never texts.
#[derive(Default)]
pub struct ScopeIndex {
    /// Memories by doc number; `None` where one was removed.
    docs: Vec<Option<Doc>>,
    /// Each doc's length in words (0 for a free number), read in the hot
    /// loop of a search.
    lens: Vec<u32>,
    /// Doc numbers free for reuse.
    free: Vec<u32>,
    /// Doc number by memory id.
    by_id: HashMap<String, u32>,
    /// Term number by word.
    vocab: HashMap<String, u32>,
    /// The postings of each term: (doc, occurrences).
    postings: Vec<Vec<(u32, u32)>>,
    /// The words of all memories.
    total_len: u64,
}

impl std::fmt::Debug for ScopeIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeIndex")
            .field("memories", &self.len())
            .field("words", &self.vocab.len())
            .finish()
    }
}

impl ScopeIndex {
    /// An index of `records`.
    pub fn from_records(records: impl IntoIterator<Item = MemoryRecord>) -> Self {
        let mut index = Self::default();
        for r in records {
            index.insert(r);
        }
        index
    }

    /// How many memories it holds.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Whether it holds the memory `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// Add `record` (replacing one of the same id).
    pub fn insert(&mut self, mut record: MemoryRecord) {
        self.remove(&record.id);
        let vector = record.vector.take().as_deref().and_then(unit);
        let mut counts: HashMap<u32, u32> = HashMap::new();
        let mut len = 0u32;
        let words = tokens(&record.text)
            .into_iter()
            .chain(record.tags.iter().flat_map(|t| tokens(t)));
        for word in words {
            let next = u32::try_from(self.postings.len()).unwrap_or(u32::MAX);
            let term = *self.vocab.entry(word).or_insert(next);
            if term == next {
                self.postings.push(Vec::new());
            }
            *counts.entry(term).or_insert(0) += 1;
            len = len.saturating_add(1);
        }
        let doc = match self.free.pop() {
            Some(d) => d,
            None => {
                self.docs.push(None);
                self.lens.push(0);
                u32::try_from(self.docs.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let terms: Vec<(u32, u32)> = counts.into_iter().collect();
        for &(term, tf) in &terms {
            self.postings[term as usize].push((doc, tf));
        }
        self.total_len += u64::from(len);
        self.lens[doc as usize] = len;
        self.by_id.insert(record.id.clone(), doc);
        self.docs[doc as usize] = Some(Doc {
            record,
            vector,
            terms,
        });
    }

    /// Remove the memory `id`; false when it is not here.
    pub fn remove(&mut self, id: &str) -> bool {
        let Some(doc) = self.by_id.remove(id) else {
            return false;
        };
        let Some(d) = self.docs[doc as usize].take() else {
            return false;
        };
        for &(term, _) in &d.terms {
            let list = &mut self.postings[term as usize];
            if let Some(at) = list.iter().position(|&(x, _)| x == doc) {
                list.swap_remove(at);
            }
        }
        self.total_len -= u64::from(self.lens[doc as usize]);
        self.lens[doc as usize] = 0;
        self.free.push(doc);
        true
    }

    /// The BM25 score of each doc holding a word of `query` (indexed by
    /// doc number; 0 for the others), and which docs those are.
    fn keyword_scores(&self, query: &str) -> (Vec<f32>, Vec<u32>) {
        let mut scores = vec![0f32; self.docs.len()];
        let mut touched = Vec::new();
        let n = self.len() as f32;
        let avg = (self.total_len as f32 / n.max(1.0)).max(1.0);
        let mut terms: Vec<u32> = tokens(query)
            .iter()
            .filter_map(|w| self.vocab.get(w).copied())
            .collect();
        terms.sort_unstable();
        terms.dedup();
        for term in terms {
            let list = &self.postings[term as usize];
            if list.is_empty() {
                continue;
            }
            let df = list.len() as f32;
            // Always above 0: a word in every memory still counts a little.
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(doc, tf) in list {
                let tf = tf as f32;
                let len = self.lens[doc as usize] as f32;
                let s = idf * tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * len / avg));
                let slot = &mut scores[doc as usize];
                if *slot == 0.0 {
                    touched.push(doc);
                }
                *slot += s;
            }
        }
        (scores, touched)
    }

    /// The at most `limit` memories that best match `query` (and its
    /// embedding, when given), best first; among equal scores the newer
    /// first. With a vector, every memory with a vector of its length is a
    /// candidate, not only those sharing a word with the query: a memory
    /// counts when it shares a word or points the same way (cosine > 0).
    pub fn search(&self, query: &str, vector: Option<&[f32]>, limit: usize) -> Vec<Hit> {
        if limit == 0 || self.is_empty() {
            return Vec::new();
        }
        let (scores, touched) = self.keyword_scores(query);
        let best = touched
            .iter()
            .map(|&d| scores[d as usize])
            .fold(0f32, f32::max);
        let keyword = |doc: u32| {
            if best > 0.0 {
                scores[doc as usize] / best
            } else {
                0.0
            }
        };
        // (score, keyword, cosine, doc)
        let mut found: Vec<(f32, f32, Option<f32>, u32)> = Vec::new();
        match vector.and_then(unit) {
            None => {
                found.extend(touched.iter().map(|&d| {
                    let k = keyword(d);
                    (k, k, None, d)
                }));
            }
            Some(q) => {
                for (i, doc) in self.docs.iter().enumerate() {
                    let Some(doc) = doc else { continue };
                    let d = u32::try_from(i).unwrap_or(u32::MAX);
                    let k = keyword(d);
                    let cosine = doc
                        .vector
                        .as_deref()
                        .filter(|v| v.len() == q.len())
                        .map(|v| dot(v, &q));
                    if k > 0.0 || cosine.is_some_and(|c| c > 0.0) {
                        let score = k + cosine.unwrap_or(0.0);
                        found.push((score, k, cosine, d));
                    }
                }
            }
        }
        let created = |d: u32| {
            self.docs[d as usize]
                .as_ref()
                .map_or(0, |doc| doc.record.created_at)
        };
        let order = |a: &(f32, f32, Option<f32>, u32), b: &(f32, f32, Option<f32>, u32)| {
            b.0.total_cmp(&a.0)
                .then_with(|| created(b.3).cmp(&created(a.3)))
                .then_with(|| a.3.cmp(&b.3))
        };
        if found.len() > limit {
            // The best `limit` first, in any order; then only they are sorted.
            let _ = found.select_nth_unstable_by(limit - 1, order);
            found.truncate(limit);
        }
        found.sort_unstable_by(order);
        found
            .into_iter()
            .filter_map(|(score, keyword, cosine, d)| {
                let doc = self.docs[d as usize].as_ref()?;
                Some(Hit {
                    record: doc.record.clone(),
                    score,
                    keyword,
                    cosine,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(id: &str, text: &str, created_at: i64) -> MemoryRecord {
        MemoryRecord {
            id: id.into(),
            agent: "main".into(),
            owner: "telegram:1".into(),
            text: text.into(),
            tags: Vec::new(),
            vector: None,
            created_at,
        }
    }

    fn ids(hits: &[Hit]) -> Vec<&str> {
        hits.iter().map(|h| h.record.id.as_str()).collect()
    }

    #[test]
    fn words_are_lowercased_letters_and_digits_of_two_or_more() {
        assert_eq!(
            tokens("Ana's B-day: 3 May, 2026 — Café Ünter"),
            ["ana", "day", "may", "2026", "café", "ünter"]
        );
        assert!(tokens("a b c !").is_empty());
        let long = "x".repeat(200);
        assert_eq!(tokens(&long)[0].len(), MAX_WORD_CHARS);
    }

    #[test]
    fn an_exact_word_ranks_above_unrelated_memories_and_rarer_words_count_more() {
        let index = ScopeIndex::from_records([
            memory("cat", "My cat is called Pixel", 1),
            memory("car", "The car is blue", 2),
            memory("sister", "My sister lives in Oslo", 3),
            memory("dog", "My dog is called Rex", 4),
        ]);
        let hits = index.search("what is my cat called", None, 10);
        assert_eq!(hits[0].record.id, "cat", "{:?}", ids(&hits));
        assert_eq!(hits[0].keyword, 1.0);
        assert!(hits.iter().all(|h| h.score <= hits[0].score));
        // "oslo" is in one memory, "my" in three: the rare word wins.
        let hits = index.search("my oslo", None, 10);
        assert_eq!(hits[0].record.id, "sister", "{:?}", ids(&hits));
        assert_eq!(hits.len(), 3, "only memories sharing a word are found");
        assert!(index.search("zebra", None, 10).is_empty());
        assert_eq!(index.search("my", None, 2).len(), 2, "the limit holds");
        // Equal scores: the newer first.
        assert_eq!(ids(&index.search("called", None, 10)), ["dog", "cat"]);
    }

    #[test]
    fn a_longer_memory_counts_a_word_less_and_tags_are_searched() {
        let mut tagged = memory("tagged", "Meet at noon", 1);
        tagged.tags = vec!["Dentist".into()];
        let index = ScopeIndex::from_records([
            memory("short", "dentist on friday", 2),
            memory(
                "long",
                "the dentist said a great many things about teeth and flossing and diet on friday",
                3,
            ),
            tagged,
        ]);
        let hits = index.search("dentist", None, 10);
        assert_eq!(hits.len(), 3);
        assert!(
            ids(&hits).iter().position(|&i| i == "short")
                < ids(&hits).iter().position(|&i| i == "long"),
            "{:?}",
            ids(&hits)
        );
        assert!(ids(&hits).contains(&"tagged"));
    }

    #[test]
    fn removed_and_replaced_memories_are_not_found() {
        let mut index = ScopeIndex::from_records([
            memory("a", "pizza on fridays", 1),
            memory("b", "pizza with olives", 2),
        ]);
        assert!(index.remove("a"));
        assert!(!index.remove("a"), "gone already");
        assert_eq!(index.len(), 1);
        assert_eq!(ids(&index.search("pizza fridays", None, 10)), ["b"]);
        // Its number is reused by the next memory, which is found alone.
        index.insert(memory("c", "sushi on fridays", 3));
        assert_eq!(ids(&index.search("fridays", None, 10)), ["c"]);
        // The same id again replaces the memory.
        index.insert(memory("c", "ramen on mondays", 4));
        assert!(index.search("sushi", None, 10).is_empty());
        assert_eq!(ids(&index.search("ramen", None, 10)), ["c"]);
        assert_eq!(index.len(), 2);
        assert!(index.remove("b") && index.remove("c"));
        assert!(index.is_empty());
        assert!(index.search("pizza", None, 10).is_empty());
    }

    #[test]
    fn scopes_are_separate_indexes() {
        let ada = ScopeIndex::from_records([memory("1", "Ada likes green tea", 1)]);
        let bob = ScopeIndex::from_records([memory("2", "Bob likes black coffee", 1)]);
        assert_eq!(ids(&ada.search("likes tea coffee", None, 10)), ["1"]);
        assert_eq!(ids(&bob.search("likes tea coffee", None, 10)), ["2"]);
        assert!(ada.search("coffee", None, 10).is_empty());
    }

    #[test]
    fn vectors_find_related_memories_without_shared_words() {
        fn with(id: &str, text: &str, v: &[f32]) -> MemoryRecord {
            let mut m = memory(id, text, 1);
            m.vector = Some(v.to_vec());
            m
        }
        let index = ScopeIndex::from_records([
            with("dish", "Favourite dish: lasagne", &[2.0, 0.0, 0.0]),
            with("car", "The car needs tyres", &[0.0, 1.0, 0.0]),
            with("cello", "Plays the cello", &[0.0, 0.0, 1.0]),
            with("stale", "Made with another model", &[1.0, 0.0]),
            memory("plain", "Shopping on Sundays", 1),
        ]);
        let q: [f32; 3] = [0.8, 0.6, 0.0];
        // No word in common with the dish, which points the same way.
        let hits = index.search("what food do I enjoy", Some(q.as_slice()), 10);
        assert_eq!(ids(&hits), ["dish", "car"], "{hits:?}");
        assert!((hits[0].cosine.unwrap() - 0.8).abs() < 1e-5);
        assert_eq!(hits[0].keyword, 0.0);
        // The cello is orthogonal (not related); "stale" has another
        // length (another model) and is not compared.
        // A shared word counts as much as the best keyword match does.
        let hits = index.search("sundays", Some(q.as_slice()), 10);
        assert_eq!(ids(&hits), ["plain", "dish", "car"], "{hits:?}");
        assert_eq!((hits[0].keyword, hits[0].cosine), (1.0, None));
        // Without the query's vector, only shared words count.
        assert!(index.search("what food do I enjoy", None, 10).is_empty());
        assert_eq!(unit(&[0.0, 0.0]), None);
        assert!(hits[0].record.vector.is_none(), "vectors stay in the index");
    }

    #[test]
    fn the_dot_product_of_long_vectors_is_exact_enough() {
        let a: Vec<f32> = (0..1027).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..1027).map(|i| (i % 5) as f32 * 0.5).collect();
        let slow: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!(
            (dot(&a, &b) - slow).abs() < 1e-2,
            "{} vs {slow}",
            dot(&a, &b)
        );
    }
}
