//! The live checks of `switchboard init`: a provider's key and models,
//! and each platform's tokens, with what is wrong and where to click.

use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::ProviderChoice;

/// A key that belongs to another provider than the one chosen.
pub(super) fn wrong_key_kind(choice: ProviderChoice, key: &str) -> Option<String> {
    let of = if key.starts_with("sk-ant-") {
        ProviderChoice::Anthropic
    } else if key.starts_with("sk-or-") {
        ProviderChoice::Openrouter
    } else if key.starts_with("sk-") {
        ProviderChoice::Openai
    } else {
        return None;
    };
    (of != choice && choice != ProviderChoice::Custom).then(|| {
        format!(
            "This looks like an {} key, not a {} one: choose {} as the provider, or paste the right key{}",
            of.label(),
            choice.label(),
            of.label(),
            choice.where_keys_are()
        )
    })
}

/// The provider's models (`None`: it does not list them), or what is wrong.
pub(super) async fn list_models(
    http: &reqwest::Client,
    choice: ProviderChoice,
    base: &str,
    key: Option<&str>,
) -> Result<Option<Vec<String>>, String> {
    let req = if choice == ProviderChoice::Anthropic {
        let mut r = http
            .get(format!("{base}/v1/models?limit=100"))
            .header("anthropic-version", "2023-06-01");
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r
    } else {
        let mut r = http.get(format!("{base}/models"));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r
    };
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(choice, base, &e))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    match status.as_u16() {
        200..=299 => {
            let mut ids: Vec<String> = body["data"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m["id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            Ok(Some(ids))
        }
        401 | 403 => Err(format!(
            "{} refused the key ({status}: {}). Check that you pasted the whole key{}.",
            choice.label(),
            provider_message(&body),
            choice.where_keys_are()
        )),
        404 | 405 => Ok(None),
        _ => Err(format!(
            "{base} answered {status}: {}",
            provider_message(&body)
        )),
    }
}

/// One real chat request of `model` (a provider that does not list its
/// models).
pub(super) async fn ping(
    http: &reqwest::Client,
    choice: ProviderChoice,
    base: &str,
    key: Option<&str>,
    model: &str,
) -> Result<(), String> {
    let mut req = if choice == ProviderChoice::Anthropic {
        http.post(format!("{base}/v1/messages"))
            .header("anthropic-version", "2023-06-01")
            .json(&json!({ "model": model, "max_tokens": 1, "messages": [{ "role": "user", "content": "ping" }] }))
    } else {
        http.post(format!("{base}/chat/completions"))
            .json(&json!({ "model": model, "max_tokens": 1, "messages": [{ "role": "user", "content": "ping" }] }))
    };
    if let Some(k) = key {
        req = if choice == ProviderChoice::Anthropic {
            req.header("x-api-key", k)
        } else {
            req.bearer_auth(k)
        };
    }
    let resp = req
        .send()
        .await
        .map_err(|e| unreachable(choice, base, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Err(match status.as_u16() {
        401 | 403 => format!(
            "the provider refused the key ({status}: {}){}",
            provider_message(&body),
            choice.where_keys_are()
        ),
        404 => format!(
            "the model `{model}` was not found ({}): check its name",
            provider_message(&body)
        ),
        _ => format!(
            "asking `{model}` failed ({status}: {})",
            provider_message(&body)
        ),
    })
}

pub(super) fn provider_message(body: &Value) -> String {
    body["error"]["message"]
        .as_str()
        .or_else(|| body["error"].as_str())
        .or_else(|| body["message"].as_str())
        .unwrap_or("no details")
        .to_string()
}

pub(super) fn unreachable(choice: ProviderChoice, base: &str, e: &reqwest::Error) -> String {
    let hint = if choice == ProviderChoice::Ollama {
        " Is Ollama running (`ollama serve`)?"
    } else {
        " Check the URL and this machine's network."
    };
    let e = if e.is_timeout() {
        "no answer in 20 s".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        e.to_string()
    };
    format!("{base} does not answer ({e}).{hint}")
}

/// A token pasted in the wrong place: what it looks like instead.
pub(super) fn token_kind(token: &str) -> Option<&'static str> {
    if token.starts_with("xoxb-") {
        Some("a Slack bot token")
    } else if token.starts_with("xapp-") {
        Some("a Slack app-level token")
    } else if token.starts_with("xoxp-") {
        Some("a Slack user token")
    } else if token.starts_with("sk-") {
        Some("a model provider's API key")
    } else if switchboard_telegram::token_problem(token).is_none() {
        Some("a Telegram bot token")
    } else if switchboard_discord::token_problem(token).is_none() {
        Some("a Discord bot token")
    } else {
        None
    }
}

/// `getMe`: the bot's username, or what is wrong with the token.
pub(super) async fn check_telegram(
    http: &reqwest::Client,
    api: String,
    token: Zeroizing<String>,
) -> Result<String, String> {
    if let Some(why) = switchboard_telegram::token_problem(&token) {
        return Err(match token_kind(&token) {
            Some(kind) => format!(
                "This is {kind}, not a Telegram bot token: paste the token @BotFather gave (digits, a colon, then about 35 characters)"
            ),
            None => format!("The token {why}"),
        });
    }
    let resp = http
        .get(format!("{api}/bot{}/getMe", token.as_str()))
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach Telegram at {api}: {}",
                if e.is_connect() {
                    "cannot connect".into()
                } else {
                    e.without_url().to_string()
                }
            )
        })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if body["ok"] == true {
        return Ok(body["result"]["username"]
            .as_str()
            .unwrap_or("?")
            .to_string());
    }
    let description = body["description"].as_str().unwrap_or("no details");
    Err(match status.as_u16() {
        401 | 404 => format!(
            "Telegram refused the token ({status}: {description}): it was revoked or mistyped. In @BotFather, /mybots → your bot → API Token shows the current one"
        ),
        _ => format!("Telegram answered {status}: {description}"),
    })
}

/// Discord's application flags that let a bot read message content.
pub(super) const MESSAGE_CONTENT: u64 = (1 << 18) | (1 << 19);

/// `GET /users/@me`, then the application's flags: the bot's name, or
/// what is wrong (the token, the MESSAGE CONTENT intent).
pub(super) async fn check_discord(
    http: &reqwest::Client,
    api: String,
    token: Zeroizing<String>,
) -> Result<String, String> {
    if let Some(kind) = token_kind(&token).filter(|k| *k != "a Discord bot token") {
        return Err(format!(
            "This is {kind}, not a Discord bot token: copy it from the Developer Portal, your app → Bot → Reset Token"
        ));
    }
    let get = |path: &str| {
        http.get(format!("{api}/api/v10{path}"))
            .header("Authorization", format!("Bot {}", token.as_str()))
            .send()
    };
    let resp = get("/users/@me")
        .await
        .map_err(|e| format!("cannot reach Discord at {api}: {}", e.without_url()))?;
    let status = resp.status();
    let me: Value = resp.json().await.unwrap_or(Value::Null);
    if status.as_u16() == 401 {
        return Err("Discord refused the token (401 Unauthorized): it was reset or mistyped. Developer Portal → your app → Bot → Reset Token gives a new one (the client secret and the public key are not it)".into());
    }
    if !status.is_success() {
        return Err(format!(
            "Discord answered {status}: {}",
            me["message"].as_str().unwrap_or("no details")
        ));
    }
    let name = me["username"].as_str().unwrap_or("?").to_string();
    if let Ok(app) = get("/applications/@me").await
        && app.status().is_success()
        && let Ok(app) = app.json::<Value>().await
        && let Some(flags) = app["flags"].as_u64()
        && flags & MESSAGE_CONTENT == 0
    {
        return Err(format!(
            "The bot {name} cannot read messages: switch on MESSAGE CONTENT INTENT in the Developer Portal, your app → Bot → Privileged Gateway Intents, and Save Changes"
        ));
    }
    Ok(name)
}

/// The bot scopes Switchboard needs on Slack.
pub(super) const SLACK_SCOPES: &[&str] = &[
    "app_mentions:read",
    "chat:write",
    "im:history",
    "reactions:write",
];

/// `auth.test` with the bot token: the workspace's name, or what is wrong
/// (the token, missing scopes).
pub(super) async fn check_slack_bot(
    http: &reqwest::Client,
    api: String,
    token: Zeroizing<String>,
) -> Result<String, String> {
    if !token.starts_with("xoxb-") {
        return Err(match token_kind(&token) {
            Some(kind) => format!(
                "This is {kind}, not the Bot User OAuth Token: that one starts with xoxb- (OAuth & Permissions)"
            ),
            None => "The Bot User OAuth Token starts with xoxb- (OAuth & Permissions)".into(),
        });
    }
    let resp = http
        .post(format!("{api}/auth.test"))
        .bearer_auth(token.as_str())
        .send()
        .await
        .map_err(|e| format!("cannot reach Slack at {api}: {}", e.without_url()))?;
    let scopes: Vec<String> = resp
        .headers()
        .get("x-oauth-scopes")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if body["ok"] != true {
        let error = body["error"].as_str().unwrap_or("no details");
        return Err(match error {
            "invalid_auth" | "not_authed" | "token_revoked" | "account_inactive" => format!(
                "Slack refused the token ({error}): reinstall the app (OAuth & Permissions → Reinstall to Workspace) and copy the Bot User OAuth Token again"
            ),
            _ => format!("Slack answered {error}"),
        });
    }
    let missing: Vec<&str> = SLACK_SCOPES
        .iter()
        .filter(|s| !scopes.is_empty() && !scopes.iter().any(|x| x == *s))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "The app lacks the bot scopes {}: OAuth & Permissions → Scopes → Bot Token Scopes → Add an OAuth Scope, then Reinstall to Workspace",
            missing.join(", ")
        ));
    }
    Ok(body["team"].as_str().unwrap_or("the workspace").to_string())
}

/// `apps.connections.open` with the app-level token: Socket Mode works.
pub(super) async fn check_slack_app(
    http: &reqwest::Client,
    api: String,
    token: Zeroizing<String>,
) -> Result<(), String> {
    if !token.starts_with("xapp-") {
        return Err(match token_kind(&token) {
            Some(kind) => format!(
                "This is {kind}, not an app-level token: that one starts with xapp- (Basic Information → App-Level Tokens)"
            ),
            None => "The app-level token starts with xapp- (Basic Information → App-Level Tokens)"
                .into(),
        });
    }
    let resp = http
        .post(format!("{api}/apps.connections.open"))
        .bearer_auth(token.as_str())
        .send()
        .await
        .map_err(|e| format!("cannot reach Slack at {api}: {}", e.without_url()))?;
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if body["ok"] == true {
        return Ok(());
    }
    let error = body["error"].as_str().unwrap_or("no details");
    Err(match error {
        "invalid_auth" | "not_authed" => format!("Slack refused the app-level token ({error}): generate a new one with the scope connections:write"),
        "missing_scope" => "The app-level token lacks the scope connections:write: Basic Information → App-Level Tokens → your token → Add Scope".into(),
        _ => format!("Slack answered {error}: is Socket Mode on (Settings → Socket Mode → Enable Socket Mode)?"),
    })
}
