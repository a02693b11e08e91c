//! The audit log through the real binary: a pairing approved from the
//! CLI and an allowlist entry removed through the API are recorded with
//! who, what, when and from where; `switchboard audit verify` passes;
//! then, with the gateway stopped, a record changed in the SQLite file and
//! a record deleted from it are each named by `audit verify`, which exits 1.

use serde_json::{Value, json};
use sqlx::sqlite::SqliteConnectOptions;
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::gateway::{Gateway, config, free_port};

/// Web chat users must pair, so a pairing can be issued and approved.
const PAIRING_WEBCHAT: &str = "\n[channels.webchat]\ndm_policy = \"pairing\"\n";

/// The record of `action` in `audit list --json`'s answer.
fn record<'a>(list: &'a Value, action: &str) -> &'a Value {
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .find(|r| r["action"] == action)
        .unwrap_or_else(|| panic!("no {action} record in {list:#}"))
}

async fn database(gw: &Gateway) -> sqlx::SqlitePool {
    let options = SqliteConnectOptions::new().filename(gw.data_dir.join("switchboard.db"));
    sqlx::SqlitePool::connect_with(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_actions_verify_and_a_changed_or_removed_record_is_named() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(
        dir.path(),
        &config(free_port(), &model.base_url(), PAIRING_WEBCHAT),
    )
    .await;

    // A stranger asks, the operator approves from the CLI and later
    // removes them through the API.
    let (status, v) = gw.chat("eve", "hello?").await;
    assert_eq!(status, 403, "{v}");
    let (_, pending) = gw.get("/api/pairing?channel=webchat").await;
    let code = pending["pending"][0]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no pairing code: {pending}"))
        .to_string();
    let (ok, out, err) = gw.cli(&["pairing", "approve", "webchat", &code]);
    assert!(ok.success(), "{out}{err}");
    let (status, _, body) = gw
        .post_json(
            "/api/allowlist/remove",
            &json!({ "channel": "webchat", "account": "default", "sender_id": "eve" }),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The API shows them, with the chain intact.
    let (status, api) = gw.get("/api/audit").await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api["chain"]["intact"], true, "{api:#}");
    assert_eq!(record(&api, "allowlist.removed")["actor"], "api");

    let (ok, out, err) = gw.cli(&["audit", "verify"]);
    assert!(ok.success(), "{out}{err}");
    assert!(out.contains("records verified, chain intact"), "{out}");

    let (ok, out, err) = gw.cli(&["--json", "audit", "list"]);
    assert!(ok.success(), "{out}{err}");
    let list: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let issued = record(&list, "pairing.issued");
    assert_eq!(issued["actor"], "chat:webchat:eve");
    assert_eq!(issued["source"], "chat:webchat");
    assert!(
        !issued.to_string().contains(&code),
        "the pairing code itself is not recorded: {issued}"
    );
    let approved = record(&list, "pairing.approved");
    assert_eq!(
        (&approved["actor"], &approved["source"], &approved["target"]),
        (&json!("cli"), &json!("127.0.0.1"), &json!("webchat:eve")),
        "{approved}"
    );
    let removed = record(&list, "allowlist.removed");
    assert_eq!(
        (&removed["actor"], &removed["source"], &removed["target"]),
        (&json!("api"), &json!("127.0.0.1"), &json!("webchat:eve")),
        "{removed}"
    );
    assert_eq!(removed["detail"]["account"], "default");
    assert!(
        removed["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{removed}"
    );
    let removed_seq = removed["seq"].as_i64().unwrap();
    let approved_seq = approved["seq"].as_i64().unwrap();
    assert!(approved_seq < removed_seq, "{list:#}");

    assert!(gw.terminate().await.success());

    // One record's detail changed in the file.
    let db = database(&gw).await;
    let original: String = sqlx::query_scalar("SELECT detail FROM audit WHERE seq = ?")
        .bind(removed_seq)
        .fetch_one(&db)
        .await
        .unwrap();
    sqlx::query("UPDATE audit SET detail = ? WHERE seq = ?")
        .bind(r#"{"account":"someone-else"}"#)
        .bind(removed_seq)
        .execute(&db)
        .await
        .unwrap();
    let (ok, out, err) = gw.cli(&["audit", "verify"]);
    assert_eq!(ok.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!("record {removed_seq} (allowlist.removed at "))
            && err.contains("was changed: its HMAC does not match"),
        "{err}"
    );

    // Put back as it was, it verifies again; then a record in the middle
    // is deleted.
    sqlx::query("UPDATE audit SET detail = ? WHERE seq = ?")
        .bind(&original)
        .bind(removed_seq)
        .execute(&db)
        .await
        .unwrap();
    let (ok, out, err) = gw.cli(&["audit", "verify"]);
    assert!(ok.success(), "restored, it verifies: {out}{err}");
    sqlx::query("DELETE FROM audit WHERE seq = ?")
        .bind(approved_seq)
        .execute(&db)
        .await
        .unwrap();
    db.close().await;
    let (ok, out, err) = gw.cli(&["audit", "verify"]);
    assert_eq!(ok.code(), Some(1), "{out}{err}");
    assert!(
        err.contains(&format!("record {approved_seq} was removed")),
        "{err}"
    );
}
