//! Long-term memory tools: `memory_save` and `memory_search`, over a
//! [`MemoryBook`] the gateway provides. Where memories are kept, whose they
//! are (the person, or everyone the agent talks to) and how they are ranked
//! is the book's business; these tools only check the arguments and write
//! the results for the model.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::{Tool, ToolContext, ToolOutput, ToolRegistry};
use crate::ToolSpec;

/// The name of the tool that saves a memory.
pub const SAVE: &str = "memory_save";
/// The name of the tool that searches memories.
pub const SEARCH: &str = "memory_search";

/// The longest text one memory may have, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;
/// The most tags one memory may have.
pub const MAX_TAGS: usize = 16;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 48;
/// How many memories a search returns unless asked for another number.
pub const DEFAULT_LIMIT: usize = 5;
/// The most memories one search returns.
pub const MAX_LIMIT: usize = 20;

/// One memory a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryHit {
    /// The memory's id (what the operator deletes it by).
    pub id: String,
    /// What was saved.
    pub text: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was saved, ms since the epoch.
    pub created_at: i64,
    /// How well it matches, higher is better (comparable within one search).
    pub score: f32,
}

/// Where an agent's memories are kept. Errors are written for the model:
/// what went wrong and what to do.
pub trait MemoryBook: Send + Sync + 'static {
    /// Keep `text` (with `tags`) for the person or agent `ctx` describes;
    /// returns the new memory's id.
    fn save(
        &self,
        ctx: &ToolContext,
        text: String,
        tags: Vec<String>,
    ) -> BoxFuture<'static, Result<String, String>>;

    /// The at most `limit` memories that best match `query`, best first.
    fn search(
        &self,
        ctx: &ToolContext,
        query: String,
        limit: usize,
    ) -> BoxFuture<'static, Result<Vec<MemoryHit>, String>>;
}

impl ToolRegistry {
    /// Add `memory_save` and `memory_search`, keeping memories in `book`.
    pub fn register_memory(&mut self, book: Arc<dyn MemoryBook>) {
        self.register(Arc::new(MemorySave { book: book.clone() }));
        self.register(Arc::new(MemorySearch { book }));
    }
}

/// `memory_save`: keep a fact for later conversations.
pub struct MemorySave {
    book: Arc<dyn MemoryBook>,
}

/// `memory_search`: find saved facts.
pub struct MemorySearch {
    book: Arc<dyn MemoryBook>,
}

/// How long a save or a search may take (an embeddings call included).
const TIMEOUT: Duration = Duration::from_secs(30);

/// The `tags` argument: absent, or an array of short strings.
fn parse_tags(args: &Value) -> Result<Vec<String>, String> {
    let list = match args.get("tags") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(
                "`tags` must be an array of strings, e.g. [\"family\", \"birthday\"]".into(),
            );
        }
    };
    let mut tags: Vec<String> = Vec::with_capacity(list.len());
    for tag in list {
        let Some(tag) = tag.as_str() else {
            return Err("every tag must be a string".into());
        };
        let tag = tag.trim();
        if tag.is_empty() || tags.iter().any(|t| t == tag) {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(format!(
                "the tag `{}…` is too long: a tag is a word or two (at most {MAX_TAG_CHARS} characters)",
                tag.chars().take(20).collect::<String>()
            ));
        }
        tags.push(tag.to_string());
    }
    if tags.len() > MAX_TAGS {
        return Err(format!("at most {MAX_TAGS} tags, please"));
    }
    Ok(tags)
}

/// The `limit` argument: absent (the default) or a number, kept within
/// 1..=[`MAX_LIMIT`].
fn parse_limit(args: &Value) -> Result<usize, String> {
    let n = match args.get("limit") {
        None | Some(Value::Null) => return Ok(DEFAULT_LIMIT),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("`limit` must be a number from 1 to {MAX_LIMIT}"))?,
        Some(_) => return Err(format!("`limit` must be a number from 1 to {MAX_LIMIT}")),
    };
    if !n.is_finite() || n < 1.0 {
        return Err(format!("`limit` must be a number from 1 to {MAX_LIMIT}"));
    }
    // Truncation is intended: 5.7 results are 5.
    Ok((n as usize).min(MAX_LIMIT))
}

/// A time in ms since the epoch as a UTC date, `2026-03-01`.
fn date(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).map_or_else(
        || "unknown date".into(),
        |t| t.format("%Y-%m-%d").to_string(),
    )
}

/// What a search found, as the model reads it.
fn describe(query: &str, hits: &[MemoryHit]) -> String {
    if hits.is_empty() {
        return format!("No saved memories match \"{query}\".");
    }
    let mut out = format!(
        "{} saved {} for \"{query}\", best match first:",
        hits.len(),
        if hits.len() == 1 {
            "memory"
        } else {
            "memories"
        }
    );
    for (i, h) in hits.iter().enumerate() {
        out.push_str(&format!("\n{}. {}", i + 1, h.text));
        let tags = if h.tags.is_empty() {
            String::new()
        } else {
            format!("tags: {}; ", h.tags.join(", "))
        };
        out.push_str(&format!(
            "\n   ({tags}saved {}; id {})",
            date(h.created_at),
            h.id
        ));
    }
    out
}

impl Tool for MemorySave {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: SAVE.into(),
            description: "Save one fact to remember in later conversations (a preference, a name, a date, a decision). One short sentence per fact.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "text": { "type": "string", "description": "The fact, as a sentence that stands on its own" },
                    "tags": { "type": "array", "items": { "type": "string" }, "description": "Optional labels" }
                },
                "required": ["text"],
                "additionalProperties": false
            }),
        }
    }

    fn timeout(&self) -> Duration {
        TIMEOUT
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let book = self.book.clone();
        Box::pin(async move {
            let text = args
                .get("text")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            if text.is_empty() {
                return ToolOutput::error(
                    "`text` is required: the fact to remember, e.g. {\"text\": \"Ana's birthday is 3 May\"}",
                );
            }
            if text.chars().count() > MAX_TEXT_CHARS {
                return ToolOutput::error(format!(
                    "`text` is too long ({} characters; at most {MAX_TEXT_CHARS}): save one fact at a time, in a sentence or two",
                    text.chars().count()
                ));
            }
            let tags = match parse_tags(&args) {
                Ok(t) => t,
                Err(e) => return ToolOutput::error(e),
            };
            match book.save(&ctx, text.to_string(), tags).await {
                Ok(id) => ToolOutput::ok(format!("Saved (memory {id}).")),
                Err(e) => ToolOutput::error(e),
            }
        })
    }
}

impl Tool for MemorySearch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: SEARCH.into(),
            description: "Search the facts saved with memory_save in earlier conversations. Returns the best matches with their tags and dates.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "Words to look for" },
                    "limit": { "type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "description": "How many results (default 5)" }
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        }
    }

    fn timeout(&self) -> Duration {
        TIMEOUT
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let book = self.book.clone();
        Box::pin(async move {
            let query = args
                .get("query")
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or("");
            if query.is_empty() {
                return ToolOutput::error(
                    "`query` is required: the words to look for, e.g. {\"query\": \"birthday\"}",
                );
            }
            let limit = match parse_limit(&args) {
                Ok(n) => n,
                Err(e) => return ToolOutput::error(e),
            };
            match book.search(&ctx, query.to_string(), limit).await {
                Ok(hits) => ToolOutput::ok(describe(query, &hits)),
                Err(e) => ToolOutput::error(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Keeps what it is given, and finds it all.
    #[derive(Default)]
    struct Notebook {
        saved: Mutex<Vec<(String, String, Vec<String>)>>,
    }

    impl MemoryBook for Notebook {
        fn save(
            &self,
            ctx: &ToolContext,
            text: String,
            tags: Vec<String>,
        ) -> BoxFuture<'static, Result<String, String>> {
            let mut saved = self.saved.lock().unwrap();
            saved.push((ctx.subject.clone(), text, tags));
            let id = format!("m{}", saved.len());
            Box::pin(async move { Ok(id) })
        }

        fn search(
            &self,
            _ctx: &ToolContext,
            _query: String,
            limit: usize,
        ) -> BoxFuture<'static, Result<Vec<MemoryHit>, String>> {
            let hits: Vec<MemoryHit> = self
                .saved
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .take(limit)
                .map(|(i, (_, text, tags))| MemoryHit {
                    id: format!("m{}", i + 1),
                    text: text.clone(),
                    tags: tags.clone(),
                    created_at: 1_772_323_200_000,
                    score: 1.0,
                })
                .collect();
            Box::pin(async move { Ok(hits) })
        }
    }

    fn ctx() -> ToolContext {
        ToolContext {
            agent: "main".into(),
            subject: "telegram:42".into(),
            ..ToolContext::default()
        }
    }

    #[tokio::test]
    async fn save_checks_its_arguments_and_search_shows_text_tags_date_and_id() {
        let book = Arc::new(Notebook::default());
        let mut reg = ToolRegistry::default();
        reg.register_memory(book.clone());
        assert_eq!(reg.names(), [SAVE, SEARCH]);
        let tools = reg.select(&super::super::ToolPolicy::default(), &ctx());
        let call = |name: &'static str, args: Value| {
            let tools = tools.clone();
            async move { super::super::run_call(&tools, name, &args.to_string(), ctx()).await }
        };
        let save = |args: Value| call(SAVE, args);

        let out = save(json!({ "text": "  Ana's birthday is 3 May ", "tags": ["family", "family", " dates "] })).await;
        assert!(!out.is_error, "{out:?}");
        assert!(out.content.contains("m1"), "{out:?}");
        assert_eq!(
            book.saved.lock().unwrap()[0],
            (
                "telegram:42".to_string(),
                "Ana's birthday is 3 May".to_string(),
                vec!["family".to_string(), "dates".to_string()]
            )
        );
        for bad in [
            json!({}),
            json!({ "text": "   " }),
            json!({ "text": "x".repeat(MAX_TEXT_CHARS + 1) }),
            json!({ "text": "ok", "tags": "family" }),
            json!({ "text": "ok", "tags": [1] }),
        ] {
            let out = save(bad.clone()).await;
            assert!(out.is_error, "{bad} was accepted");
        }
        assert_eq!(book.saved.lock().unwrap().len(), 1);

        let out = call(SEARCH, json!({ "query": "birthday" })).await;
        assert!(!out.is_error, "{out:?}");
        for part in [
            "Ana's birthday is 3 May",
            "family, dates",
            "2026-03-01",
            "id m1",
        ] {
            assert!(
                out.content.contains(part),
                "{part} missing: {}",
                out.content
            );
        }
        let out = call(SEARCH, json!({ "limit": 3 })).await;
        assert!(out.is_error, "a query is required");
    }

    #[test]
    fn limits_are_kept_in_range() {
        assert_eq!(parse_limit(&json!({})), Ok(DEFAULT_LIMIT));
        assert_eq!(parse_limit(&json!({ "limit": 3 })), Ok(3));
        assert_eq!(parse_limit(&json!({ "limit": "7" })), Ok(7));
        assert_eq!(parse_limit(&json!({ "limit": 500 })), Ok(MAX_LIMIT));
        assert!(parse_limit(&json!({ "limit": 0 })).is_err());
        assert!(parse_limit(&json!({ "limit": "many" })).is_err());
        assert_eq!(describe("x", &[]), "No saved memories match \"x\".");
    }
}
