//! The masking and restoring of secrets in config text.
use super::*;

const FILE: &str = r#"# Switchboard
[gateway]
bind = "127.0.0.1:7788"   # loopback
[gateway.auth]
token = "s3cret-control-token"

[providers.openai]
kind = "openai"
model = "gpt-4o"
base_url = "https://api.openai.com/v1"
api_key = 'sk-live-abc'
api_key_env = "OPENAI_API_KEY"
max_tokens = 512
# old: api_key = "sk-old-key"

[channels.telegram.accounts.main]
token = """123:multi"""
webhook_secret = ""

[channels.slack.accounts]
work = { bot_token = "xoxb-inline", signing_secret = "abcd1234", channels = ["C1"] }

[[bindings]]
agent = "main"
[[bindings]]
agent = "other"
peer = { password = "p4ss" }
"#;

/// `text` masked: none of `secrets` in it, still TOML, nothing left
/// for the check to find; and put back as it was.
fn assert_masked(text: &str, secrets: &[&str]) -> String {
    let m = mask(text);
    for secret in secrets {
        assert!(!m.contains(secret), "{secret} in\n{m}");
    }
    let parsed = Value::Table(m.parse().expect("still TOML"));
    assert!(
        !has_unmasked_secret(&parsed),
        "the check finds a secret in\n{m}"
    );
    let original = Value::Table(text.parse().expect("TOML"));
    assert!(
        has_unmasked_secret(&original),
        "the check misses one in\n{text}"
    );
    let back = restore(&m, text);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.text, text);
    m
}

#[test]
fn secrets_are_masked_and_the_rest_is_kept() {
    let m = assert_masked(
        FILE,
        &[
            "s3cret-control-token",
            "sk-live-abc",
            "sk-old-key",
            "123:multi",
            "xoxb-inline",
            "abcd1234",
            "p4ss",
        ],
    );
    assert!(m.contains("# Switchboard\n"), "{m}");
    assert!(m.contains("bind = \"127.0.0.1:7788\"   # loopback"), "{m}");
    assert!(m.contains("token = \"••••\""), "{m}");
    assert!(
        m.contains("base_url = \"https://api.openai.com/v1\""),
        "{m}"
    );
    assert!(m.contains("api_key_env = \"OPENAI_API_KEY\""), "{m}");
    assert!(m.contains("max_tokens = 512"), "{m}");
    assert!(m.contains("webhook_secret = \"\""), "{m}");
    assert!(m.contains("channels = [\"C1\"]"), "{m}");
}

#[test]
fn every_sandbox_variable_is_masked() {
    let m = assert_masked(
        "[sandbox]\nnetwork = \"bridge\"\n[sandbox.env]\nGITHUB_PAT = \"ghp-value-1\"\nPLAIN = 'plain-value-2'\nNUMBER = 12345678\n# OLD = \"old-value-3\"\n",
        &["ghp-value-1", "plain-value-2", "12345678", "old-value-3"],
    );
    assert!(m.contains("network = \"bridge\""), "{m}");
    assert!(m.contains("GITHUB_PAT = \"••••\""), "{m}");
    assert_masked(
        "sandbox.env.DOTTED = \"dotted-value-4\"\n",
        &["dotted-value-4"],
    );
    assert_masked("[sandbox]\nenv.X = \"x-value-5\"\n", &["x-value-5"]);
    let m = assert_masked(
        "[sandbox]\nenv = { INLINE = \"inline-value-6\", B = \"b-value-7\" }\n",
        &["inline-value-6", "b-value-7"],
    );
    assert!(m.contains("INLINE = \"••••\""), "{m}");
}

const ADDRESSES: &str = r#"[providers.openai]
base_url = "https://user:pa55word@proxy.example.com:8443/v1?api-key=q-value-1"
api_key = "sk-live-abc"

[channels.telegram.accounts.main]
token = "123:tg-value"
api_url = 'https://bot:tg-pass@tg.example.com/'
# webhook_url = "https://hook:old-pass@hooks.example.com/x"
"#;

#[test]
fn credentials_of_addresses_are_masked_and_the_address_kept() {
    let m = assert_masked(
        ADDRESSES,
        &[
            "user",
            "pa55word",
            "api-key",
            "q-value-1",
            "tg-pass",
            "old-pass",
        ],
    );
    assert!(
        m.contains("base_url = \"https://••••@proxy.example.com:8443/v1?••••\""),
        "{m}"
    );
    assert!(m.contains("https://••••@tg.example.com/"), "{m}");
    assert!(m.contains("https://••••@hooks.example.com/x"), "{m}");
    // A new password is taken as written.
    let edited = m.replace(
        "https://••••@tg.example.com/",
        "https://bot:new-pass@tg.example.com/",
    );
    let back = restore(&edited, ADDRESSES);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert!(
        back.text.contains("https://bot:new-pass@tg.example.com/"),
        "{}",
        back.text
    );
}

#[test]
fn credentials_do_not_follow_a_changed_address() {
    let edited = mask(ADDRESSES).replace("proxy.example.com:8443/v1", "evil.example/v1");
    let back = restore(&edited, ADDRESSES);
    let keys: Vec<&str> = back.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["providers.openai.base_url", "providers.openai.api_key"]
    );
    assert!(
        back.errors[0].message.contains("the address changed"),
        "{:?}",
        back.errors
    );
    for secret in ["pa55word", "q-value-1", "sk-live-abc"] {
        assert!(!back.text.contains(secret), "{secret} in\n{}", back.text);
    }
}

#[test]
fn a_kept_secret_does_not_follow_a_changed_address() {
    let file = "[providers.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"sk-live-abc\"\n";
    let edited = mask(file).replace("https://api.openai.com/v1", "https://evil.example/v1");
    let back = restore(&edited, file);
    assert_eq!(back.errors.len(), 1, "{:?}", back.errors);
    assert_eq!(back.errors[0].key, "providers.openai.api_key");
    assert!(
        back.errors[0]
            .message
            .contains("(providers.openai.base_url)"),
        "{}",
        back.errors[0].message
    );
    assert!(!back.text.contains("sk-live-abc"), "{}", back.text);
    // With the secret written out again, the new address is fine.
    let retyped = edited.replace("\"••••\"", "\"sk-new\"");
    assert!(restore(&retyped, file).errors.is_empty());
    // An address added next to a kept token is a change too.
    let file = "[channels.telegram.accounts.main]\ntoken = \"123:tg-value\"\n";
    let edited = format!("{}api_url = \"https://evil.example\"\n", mask(file));
    let back = restore(&edited, file);
    assert_eq!(back.errors.len(), 1, "{:?}", back.errors);
    assert_eq!(back.errors[0].key, "channels.telegram.accounts.main.token");
    assert!(!back.text.contains("123:tg-value"), "{}", back.text);
}

#[test]
fn paths_follow_tables_arrays_and_inline_tables() {
    let s = scan(FILE);
    let paths: Vec<&str> = s.assignments.iter().map(|a| a.path.as_str()).collect();
    for p in [
        "gateway.auth.token",
        "providers.openai.api_key",
        "channels.slack.accounts.work.bot_token",
        "channels.slack.accounts.work",
        "bindings[0].agent",
        "bindings[1].agent",
        "bindings[1].peer.password",
    ] {
        assert!(paths.contains(&p), "{p} not in {paths:?}");
    }
    assert_eq!(s.line_of("gateway.auth.token"), Some((5, true)));
    assert_eq!(s.line_of("providers.openai.timeout_secs"), Some((7, false)));
    assert_eq!(s.line_of("nowhere.at.all"), None);
}

#[test]
fn restore_puts_the_file_s_secrets_back() {
    let edited = mask(FILE).replace("model = \"gpt-4o\"", "model = \"gpt-4.1\"");
    let back = restore(&edited, FILE);
    assert!(back.errors.is_empty(), "{:?}", back.errors);
    assert_eq!(back.text, FILE.replace("gpt-4o", "gpt-4.1"));
}

#[test]
fn a_new_masked_key_is_an_error_on_it() {
    let edited = format!("{}\n[providers.other]\napi_key = \"••••\"\n", mask(FILE));
    let errors = restore(&edited, FILE).errors;
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "providers.other.api_key");
    assert!(
        errors[0]
            .message
            .contains("enter the value, or remove the line")
    );
}

#[test]
fn loose_text_is_masked() {
    assert_eq!(
        mask_loose("3 | token = \"abc", false),
        "3 | token = \"••••\""
    );
    assert_eq!(mask_loose("token: xyz rest", true), "token: \"••••\" rest");
    assert_eq!(mask_loose("token: xyz rest", false), "token: xyz rest");
    assert_eq!(mask_loose("token_env = \"X\"", true), "token_env = \"X\"");
    assert_eq!(
        mask_loose("2 | base_url = \"http://u:secret@h/p?k=v", false),
        "2 | base_url = \"http://••••@h/p?••••"
    );
}

#[test]
fn value_trees_are_masked_by_key() {
    let mut v = Value::Table(FILE.parse().expect("TOML"));
    let mut found = Vec::new();
    secrets_in(&v, &mut found);
    assert!(found.contains(&"sk-live-abc".to_string()));
    mask_value(&mut v);
    assert!(!has_unmasked_secret(&v));
    let text = toml::to_string(&v).expect("serializes");
    assert!(
        !text.contains("sk-live-abc") && text.contains("OPENAI_API_KEY"),
        "{text}"
    );
}

#[test]
fn value_trees_mask_sandbox_variables_and_credentials() {
    let file = format!("{ADDRESSES}[sandbox.env]\nANY = \"any-value-1\"\n");
    let mut v = Value::Table(file.parse().expect("TOML"));
    let mut found = Vec::new();
    secrets_in(&v, &mut found);
    for secret in ["any-value-1", "user:pa55word", "pa55word", "q-value-1"] {
        assert!(
            found.iter().any(|f| f == secret),
            "{secret} not in {found:?}"
        );
    }
    mask_value(&mut v);
    assert!(!has_unmasked_secret(&v));
    let text = toml::to_string(&v).expect("serializes");
    for secret in ["any-value-1", "pa55word", "q-value-1", "tg-pass"] {
        assert!(!text.contains(secret), "{secret} in\n{text}");
    }
    assert!(
        text.contains("https://••••@proxy.example.com:8443/v1?••••"),
        "{text}"
    );
}
