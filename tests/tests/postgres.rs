//! The gateway on a PostgreSQL store: the real binary, a real PostgreSQL
//! server (Debian's, `initdb` as a non-root user on a free port), and the
//! fake model server.

use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::gateway::{Gateway, config, free_port};
use switchboard_tests::postgres::Postgres;

const PASSPHRASE: &str = "correct horse battery staple, twice over";

fn store(url: &str) -> String {
    format!(
        "[store]\nurl = \"{url}\"\n[store.encryption]\nmode = \"passphrase\"\niterations = 600000\n"
    )
}

/// A second gateway with its own, new directories (another machine) on
/// the same database takes the keyring from it and carries on the
/// conversation the first one had: the history is in the database.
#[tokio::test]
async fn a_gateway_on_postgresql_keeps_its_conversations_for_the_next_one() {
    let fake = FakeOpenAi::start().await;
    let url = Postgres::shared().database();
    let env = [("SWITCHBOARD_PASSPHRASE", PASSPHRASE)];

    let first_dir = tempfile::tempdir().unwrap();
    let mut first = Gateway::start_with_env(
        first_dir.path(),
        &config(free_port(), &fake.base_url(), &store(&url)),
        &env,
    )
    .await;
    let (status, body) = first.chat("ann", "remember the blue door").await;
    assert_eq!(status, 200, "{body}");
    let (_, status_body) = first.get("/api/status").await;
    let shown = status_body.to_string();
    assert!(
        !shown.contains(Postgres::shared().password()),
        "status shows the database password: {shown}"
    );
    assert!(first.terminate().await.success(), "{}", first.log());

    let second_dir = tempfile::tempdir().unwrap();
    let second = Gateway::start_with_env(
        second_dir.path(),
        &config(free_port(), &fake.base_url(), &store(&url)),
        &env,
    )
    .await;
    let transcript = second
        .transcript("agent:main:webchat:dm:ann")
        .await
        .expect("the session is in the database");
    assert_eq!(
        transcript,
        vec![
            ("user".to_string(), "remember the blue door".to_string()),
            (
                "assistant".to_string(),
                echo_answer("remember the blue door")
            ),
        ]
    );
    let (status, body) = second.chat("ann", "which door?").await;
    assert_eq!(status, 200, "{body}");
    let asked = fake.seen().last().expect("the model was asked").messages();
    assert!(
        asked
            .iter()
            .any(|(_, c)| c.contains("remember the blue door")),
        "the second gateway's prompt carries the first one's history: {asked:?}"
    );
    for log in [first.log(), second.log()] {
        assert!(
            !log.contains(Postgres::shared().password()),
            "the log shows the database password"
        );
    }
}

/// A wrong password (or an unreachable server) stops the start with an
/// error that names where and what to check, never the password.
#[tokio::test]
async fn a_refused_database_login_is_named_without_the_password() {
    let fake = FakeOpenAi::start().await;
    let pg = Postgres::shared();
    let wrong = "not-the-password-83e1";
    let url = format!(
        "postgres://{}:{wrong}@127.0.0.1:{}/postgres",
        switchboard_tests::postgres::USER,
        pg.port()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::prepare(
        dir.path(),
        &config(free_port(), &fake.base_url(), &store(&url)),
    );
    gw.spawn_only();
    let status = gw.wait_exit().await;
    assert!(!status.success());
    let log = gw.log();
    assert!(
        log.contains(&format!("127.0.0.1:{}/postgres", pg.port())) && log.contains("store.url"),
        "the error names the database and the key: {log}"
    );
    assert!(!log.contains(wrong), "the error shows the password: {log}");
}

/// Replicas need PostgreSQL: on SQLite the config is refused, naming the key
/// and what to use.
#[tokio::test]
async fn replicas_on_sqlite_are_refused() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::prepare(
        dir.path(),
        &config(free_port(), &fake.base_url(), "[cluster]\nenabled = true\n"),
    );
    gw.spawn_only();
    assert!(!gw.wait_exit().await.success());
    let log = gw.log();
    assert!(
        log.contains("cluster.enabled") && log.contains("PostgreSQL"),
        "{log}"
    );
}
