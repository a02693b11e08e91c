//! Long-term memory through the real binary: what a person saves is found
//! in their later sessions and never in another person's; the agent gets
//! to save what matters before compaction drops it; embeddings from an
//! OpenAI-compatible `/v1/embeddings` rank a related memory first without
//! a word in common; recalled memories reach the system prompt; and the
//! operator lists, searches, exports and deletes them.

use serde_json::{Value, json};
use switchboard_tests::fake_openai::{FakeOpenAi, tool_answer};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};

/// A gateway whose `main` agent (the default tools, so the memory tools
/// too) asks the fake model; `agent` continues `[agents.main]`.
async fn setup(agent: &str) -> (FakeOpenAi, Gateway, tempfile::TempDir) {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{agent}\n[channels.webchat.rate_limit]\nper_minute = 0\n");
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), &extra)).await;
    (fake, gw, dir)
}

/// What the assistant answers `user` in the web chat.
async fn answer(gw: &Gateway, user: &str, text: &str) -> String {
    let (status, v) = gw.chat(user, text).await;
    assert_eq!(status, 200, "{v}");
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The last tool result the model was given.
fn last_tool_result(fake: &FakeOpenAi) -> String {
    fake.seen()
        .iter()
        .rev()
        .find_map(|r| {
            let (role, content) = r.messages().last()?.clone();
            (role == "tool").then_some(content)
        })
        .expect("a tool result went to the model")
}

fn save(text: &str) -> String {
    format!("use tool memory_save {}", json!({ "text": text }))
}

fn search(query: &str) -> String {
    format!("use tool memory_search {}", json!({ "query": query }))
}

/// The texts of `GET /api/memory?…`.
async fn listed(gw: &Gateway, query: &str) -> Vec<String> {
    let (status, v) = gw.get(&format!("/api/memory?{query}")).await;
    assert_eq!(status, 200, "{v}");
    v["memories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_memory_outlives_the_session_and_is_theirs_alone() {
    let (fake, gw, _dir) = setup("").await;
    let ask = format!(
        "use tool memory_save {}",
        json!({ "text": "Ada's cat is called Pixel", "tags": ["pets"] })
    );
    let said = answer(&gw, "ada", &ask).await;
    assert!(said.contains("Saved (memory "), "{said}");

    let reset = answer(&gw, "ada", "/new").await;
    assert!(reset.contains("Started a new session"), "{reset}");
    let found = answer(&gw, "ada", &search("what is my cat called")).await;
    let fed = last_tool_result(&fake);
    assert_eq!(found, tool_answer(&fed), "the answer is the tool's result");
    assert!(fed.contains("1. Ada's cat is called Pixel"), "{fed}");
    assert!(fed.contains("tags: pets"), "{fed}");

    // Another person asks the same agent the same question.
    let other = answer(&gw, "bob", &search("what is my cat called")).await;
    let fed = last_tool_result(&fake);
    assert!(
        !fed.contains("Pixel"),
        "another person's memory leaked: {fed}"
    );
    assert!(fed.contains("No saved memories match"), "{fed}");
    assert!(!other.contains("Pixel"), "{other}");

    // The operator sees it as the person's, on one line with its id.
    let (_, v) = gw.get("/api/memory?owner=webchat%3Aada").await;
    let list = v["memories"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["agent"], "main");
    assert_eq!(list[0]["owner"], "webchat:ada");
    assert_eq!(list[0]["tags"], json!(["pets"]));
    let id = list[0]["id"].as_str().unwrap().to_string();
    assert!(listed(&gw, "owner=webchat%3Abob").await.is_empty());
    let (ok, out, err) = gw.cli(&["memory", "list", "--owner", "webchat:ada"]);
    assert!(ok.success(), "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no line for {id}: {out}"));
    assert!(
        line.contains("webchat:ada")
            && line.contains("pets")
            && line.contains("Ada's cat is called Pixel"),
        "{line}"
    );
    let (ok, out, err) = gw.cli(&[
        "memory",
        "search",
        "cat",
        "--agent",
        "main",
        "--owner",
        "webchat:ada",
    ]);
    assert!(ok.success() && out.contains(&id), "{out}{err}");
    let (ok, out, err) = gw.cli(&["memory", "search", "PIXEL"]);
    assert!(
        ok.success() && out.contains(&id),
        "any case, any owner: {out}{err}"
    );
    let (ok, out, err) = gw.cli(&["memory", "export", "--agent", "main"]);
    assert!(ok.success(), "{err}");
    let exported: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(exported.as_array().map(Vec::len), Some(1), "{exported}");
    assert_eq!(exported[0]["text"], "Ada's cat is called Pixel");
    assert!(exported[0].get("vector").is_none(), "no vectors in exports");

    // Deleted, it is gone for the assistant too.
    let (ok, out, err) = gw.cli(&["memory", "delete", &id]);
    assert!(ok.success() && out.contains("Deleted"), "{out}{err}");
    answer(&gw, "ada", &search("cat")).await;
    let fed = last_tool_result(&fake);
    assert!(!fed.contains("Pixel"), "a deleted memory was found: {fed}");
    let gone = gw
        .http
        .delete(format!("{}/api/memory/{id}", gw.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_such_memory", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_are_saved_before_compaction_drops_them() {
    let (fake, gw, _dir) = setup("context_window = 2048\nkeep_recent_messages = 2\n").await;
    // A model that saves a fact whenever it is offered memory_save alone.
    let fact = "Wes's sister is called Maren";
    fake.call_when_alone(
        "memory_save",
        &json!({ "text": fact, "tags": ["family"] }).to_string(),
    );
    let first = "My sister is called Maren, remember that.";
    answer(&gw, "wes", first).await;
    let filler = "Tell me about the tides, the wind and the boats in the harbour. ".repeat(5);
    let is_summary = |r: &switchboard_tests::fake_openai::Seen| {
        r.messages()
            .first()
            .is_some_and(|(_, c)| c.contains("compacting a conversation"))
    };
    // Talk until the history no longer fits and is compacted.
    for i in 0.. {
        assert!(i < 40, "the conversation was never compacted");
        answer(&gw, "wes", &format!("{i}. {filler}")).await;
        if fake.seen().iter().any(is_summary) {
            break;
        }
    }
    let seen = fake.seen();
    let summary_at = seen.iter().position(is_summary).unwrap();
    let flush_at = seen
        .iter()
        .position(|r| r.tools() == ["memory_save"])
        .expect("the model was offered memory_save alone before compaction");
    assert!(flush_at < summary_at, "the chance to save comes first");
    let asked = seen[flush_at].messages();
    assert_eq!(asked[0].0, "system");
    assert!(
        asked[0].1.contains("about to be summarized") && asked[0].1.contains("memory_save"),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|(_, c)| c.contains(first)),
        "the messages about to be summarized are shown: {asked:?}"
    );
    assert!(
        seen[summary_at].messages()[1].1.contains(first),
        "the same messages are summarized"
    );

    // The saved fact is the person's, listed for the operator, and found
    // by the assistant after the compaction.
    let texts = listed(&gw, "agent=main&owner=webchat%3Awes").await;
    assert!(texts.iter().any(|t| t == fact), "{texts:?}");
    answer(&gw, "wes", &search("sister")).await;
    assert!(last_tool_result(&fake).contains(fact));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_rank_a_related_memory_first_without_a_shared_word() {
    let (fake, gw, _dir) = setup("[agents.main.memory]\nembeddings = \"fake/fake-embed\"\n").await;
    // Directions in the fake's embedding space: a dish, a car, music; a
    // question about food points mostly the dish's way, a little the car's.
    fake.embed("lasagne", &[1.0, 0.0, 0.0]);
    fake.embed("tyres", &[0.0, 1.0, 0.0]);
    fake.embed("cello", &[0.0, 0.0, 1.0]);
    fake.embed("food", &[0.8, 0.6, 0.0]);
    for fact in [
        "The car needs new tyres",
        "My favourite dish is lasagne",
        "I play the cello on Sundays",
    ] {
        let said = answer(&gw, "eve", &save(fact)).await;
        assert!(said.contains("Saved"), "{said}");
    }
    let query = "what food do I enjoy";
    answer(&gw, "eve", &search(query)).await;
    let fed = last_tool_result(&fake);
    assert!(fed.contains("1. My favourite dish is lasagne"), "{fed}");
    assert!(fed.contains("2. The car needs new tyres"), "{fed}");
    assert!(!fed.contains("cello"), "unrelated: {fed}");

    // Each save and the search were embedded over the real wire format.
    let asked = fake.embedding_requests();
    assert_eq!(asked.len(), 4, "three saves and one search");
    for r in &asked {
        assert_eq!(r.body["model"], "fake-embed");
        assert_eq!(r.authorization.as_deref(), Some("Bearer sk-test-key"));
    }
    assert_eq!(asked[3].body["input"], json!([query]));
    let (_, v) = gw.get("/api/memory?agent=main&owner=webchat%3Aeve").await;
    let list = v["memories"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|m| m["embedded"] == true), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relevant_memories_are_recalled_into_the_system_prompt() {
    let (fake, gw, _dir) = setup("[agents.main.memory]\nrecall_tokens = 300\n").await;
    let fact = "Ray's sister is called Maren";
    answer(&gw, "ray", &save(fact)).await;
    answer(&gw, "ray", "/new").await;

    answer(&gw, "ray", "what is my sister called?").await;
    let system = fake.seen().last().unwrap().messages()[0].clone();
    assert_eq!(system.0, "system");
    assert!(
        system.1.starts_with("You are the test assistant."),
        "{system:?}"
    );
    assert!(
        system.1.contains("Memories from earlier conversations") && system.1.contains(fact),
        "{system:?}"
    );

    // Another person's turn recalls nothing of Ray's.
    answer(&gw, "sam", "what is my sister called?").await;
    let system = fake.seen().last().unwrap().messages()[0].1.clone();
    assert!(!system.contains("Maren"), "{system}");
    assert!(!system.contains("Memories from earlier"), "{system}");
    // Nor does a message that matches nothing.
    answer(&gw, "ray", "good morning").await;
    let system = fake.seen().last().unwrap().messages()[0].1.clone();
    assert_eq!(system, "You are the test assistant.");
}
