//! The example config in `deploy/` stays valid and shows the real defaults.

use switchboard::config::{Config, load_str};

#[test]
fn example_config_is_valid_and_matches_the_defaults() {
    let text = include_str!("../../deploy/switchboard.example.toml");
    let loaded =
        load_str(text, "deploy/switchboard.example.toml", &[]).unwrap_or_else(|e| panic!("{e}"));
    let defaults = load_str("", "defaults", &[]).unwrap();
    let (a, b) = (&loaded.config, &defaults.config);
    assert_eq!(a.gateway.bind, b.gateway.bind);
    assert_eq!(a.gateway.max_concurrent_runs, b.gateway.max_concurrent_runs);
    assert_eq!(a.gateway.shutdown_grace_secs, b.gateway.shutdown_grace_secs);
    assert_eq!(a.gateway.inbound_queue, b.gateway.inbound_queue);
    assert_eq!(a.providers["local"].base_url, b.providers["local"].base_url);
    assert_eq!(a.providers["local"].model, b.providers["local"].model);
    assert_eq!(
        a.providers["local"].timeout_secs,
        b.providers["local"].timeout_secs
    );
    assert_eq!(
        a.agents["main"].system_prompt,
        b.agents["main"].system_prompt
    );
    assert_eq!(
        a.agents["main"].history_limit,
        b.agents["main"].history_limit
    );
    assert_eq!(a.agents["main"].approvals, b.agents["main"].approvals);
    assert_eq!(a.channels.webchat.dm_policy, b.channels.webchat.dm_policy);
    assert_eq!(a.channels.webchat.rate_limit, b.channels.webchat.rate_limit);
    assert_eq!(a.sessions.dm_scope, b.sessions.dm_scope);
    assert_eq!(a.sessions.queue_mode, b.sessions.queue_mode);
    assert_eq!(a.sessions.mailbox, b.sessions.mailbox);
    assert_eq!(a.sessions.actor_idle_secs, b.sessions.actor_idle_secs);
    assert_eq!(a.sandbox, b.sandbox);
    // Every top-level section of the config appears in the example.
    let sections = toml::Value::try_from(Config::default()).unwrap();
    for key in sections.as_table().unwrap().keys() {
        assert!(
            text.contains(&format!("[{key}"))
                || text.contains(&format!("[[{key}"))
                || text.contains(&format!("# [[{key}")),
            "the example does not show [{key}]"
        );
    }
}
