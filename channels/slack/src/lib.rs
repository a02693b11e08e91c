//! The Slack channel of Switchboard — in progress.
//!
//! Built so far: Markdown → Slack mrkdwn ([`render`]) and the checks of
//! Slack tokens. The adapter itself (Socket Mode and the Events API on
//! slack-morphism, the reply surface with reactions, `chat.update`
//! streaming and `ratelimited` handling) is issue 7's remaining work; it
//! will depend on `channels/core` and slack-morphism only.

pub mod render;

/// The channel's name.
pub const NAME: &str = "slack";

/// What is wrong with `token` as a bot token (`xoxb-…`), if anything.
pub fn bot_token_problem(token: &str) -> Option<&'static str> {
    token_problem(
        token,
        "xoxb-",
        "is not a bot token (it starts with xoxb-; find it under OAuth & Permissions)",
    )
}

/// What is wrong with `token` as an app-level token for Socket Mode
/// (`xapp-…`), if anything.
pub fn app_token_problem(token: &str) -> Option<&'static str> {
    token_problem(
        token,
        "xapp-",
        "is not an app-level token (it starts with xapp-; make one with the connections:write scope under Basic Information)",
    )
}

fn token_problem(token: &str, prefix: &str, wrong: &'static str) -> Option<&'static str> {
    let token = token.trim();
    if token.is_empty() {
        return Some("is empty: paste the token from your Slack app's settings");
    }
    if !token.starts_with(prefix) || token.len() < prefix.len() + 10 {
        return Some(wrong);
    }
    if token.chars().any(char::is_whitespace) {
        return Some("contains spaces: paste the token alone");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_told_apart() {
        assert!(bot_token_problem("").unwrap().contains("empty"));
        assert!(
            bot_token_problem("xapp-1-A0123-456-abcdef")
                .unwrap()
                .contains("xoxb-")
        );
        assert!(bot_token_problem("xoxb-1234567890-abcdefghij").is_none());
        assert!(
            app_token_problem("xoxb-1234567890-abcdefghij")
                .unwrap()
                .contains("xapp-")
        );
        assert!(app_token_problem("xapp-1-A0123456-1234-abcdef").is_none());
    }
}
