//! The Slack Web API calls the adapter makes, on slack-morphism's client.
//!
//! Requests are slack-morphism's typed ones where it has them; answers are
//! read into small types of our own holding only what we use, so a Slack
//! answer with a field missing that we never read cannot turn a message
//! that was posted into an error (and a second post).

use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;

use switchboard_channel::ChannelError;
use switchboard_channel::stream::SurfaceError;

type Connector = SlackClientHyperConnector<HttpsConnector<HttpConnector>>;

/// The Web API of one workspace: the bot token and, for Socket Mode, the
/// app-level token.
pub struct Api {
    client: SlackClient<Connector>,
    bot: SlackApiToken,
    app: Option<SlackApiToken>,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").finish_non_exhaustive()
    }
}

/// A failed call, in words safe to show (no token, no URL).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Slack's error code (`invalid_auth`, `ratelimited`, …), if it gave one.
    pub code: Option<String>,
    /// How long Slack asked us to wait.
    pub retry_after: Option<Duration>,
    /// What happened.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    fn from_client(method: &str, e: SlackClientError) -> Self {
        match e {
            SlackClientError::ApiError(a) => {
                let code = a.code.clone();
                let retry_after = (code == "ratelimited").then_some(Duration::from_secs(1));
                Self {
                    message: format!("{method}: Slack answered `{code}`{}", hint(&code)),
                    code: Some(code),
                    retry_after,
                }
            }
            SlackClientError::RateLimitError(r) => Self {
                message: format!("{method}: rate limited by Slack"),
                code: Some("ratelimited".into()),
                retry_after: Some(r.retry_after.unwrap_or(Duration::from_secs(1))),
            },
            SlackClientError::HttpError(h) => Self {
                message: format!("{method}: Slack answered HTTP {}", h.status_code),
                code: None,
                retry_after: None,
            },
            SlackClientError::HttpProtocolError(_) | SlackClientError::SystemError(_) => Self {
                message: format!("{method}: cannot reach Slack ({e})"),
                code: None,
                retry_after: None,
            },
            other => Self {
                message: format!("{method}: {other}"),
                code: None,
                retry_after: None,
            },
        }
    }

    /// Whether the token itself was refused.
    pub fn is_auth(&self) -> bool {
        matches!(
            self.code.as_deref(),
            Some(
                "invalid_auth"
                    | "not_authed"
                    | "account_inactive"
                    | "token_revoked"
                    | "token_expired"
                    | "not_allowed_token_type"
            )
        )
    }

    /// The error for the shared reply stream.
    pub fn surface(self) -> SurfaceError {
        if let Some(wait) = self.retry_after {
            return SurfaceError::RetryAfter(wait);
        }
        SurfaceError::Failed(self.channel())
    }

    /// The error as a channel error.
    pub fn channel(self) -> ChannelError {
        match self.code {
            Some(_) => ChannelError::Rejected(self.message),
            None => ChannelError::Unavailable(self.message),
        }
    }
}

/// What to do about the Slack errors an operator can fix.
fn hint(code: &str) -> &'static str {
    match code {
        "not_in_channel" | "channel_not_found" => {
            ": invite the bot to the conversation (/invite @your-bot)"
        }
        "missing_scope" => {
            ": add the scope the method needs under OAuth & Permissions and reinstall the app"
        }
        "invalid_auth" | "not_authed" | "token_revoked" | "token_expired" | "account_inactive" => {
            ": the token was refused; copy a current one from the app's settings"
        }
        "not_allowed_token_type" => ": this call needs the other kind of token (xoxb- vs xapp-)",
        _ => "",
    }
}

/// Who the bot is.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    /// The bot user's id (`U…`): what mentions of it look like.
    pub user_id: String,
    /// The bot's id (`B…`): what its own messages carry.
    #[serde(default)]
    pub bot_id: Option<String>,
    /// The workspace.
    #[serde(default)]
    pub team_id: Option<String>,
}

#[derive(Deserialize)]
struct Posted {
    ts: String,
}

#[derive(Deserialize)]
struct Connection {
    url: String,
}

#[derive(Deserialize)]
struct Nothing {}

/// An https connector that also speaks plain http (for `api_url` pointing
/// at a local proxy or test server), on ring.
fn connector() -> Result<HttpsConnector<HttpConnector>, ChannelError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| ChannelError::Config(format!("cannot set up TLS: {e}")))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http))
}

fn token(value: &str) -> SlackApiToken {
    SlackApiToken::new(SlackApiTokenValue::new(value.trim().to_string()))
}

const TIMEOUT: Duration = Duration::from_secs(30);

impl Api {
    /// A client for `api_url` (default `https://slack.com/api`).
    pub fn new(
        api_url: Option<&str>,
        bot_token: &str,
        app_token: Option<&str>,
    ) -> Result<Self, ChannelError> {
        let mut connector = Connector::with_connector(connector()?);
        if let Some(url) = api_url {
            connector = connector.with_slack_api_url(url.trim_end_matches('/'));
        }
        Ok(Self {
            client: SlackClient::new(connector),
            bot: token(bot_token),
            app: app_token.map(token),
        })
    }

    async fn call<RQ, RS>(
        &self,
        token: &SlackApiToken,
        method: &str,
        request: &RQ,
    ) -> Result<RS, ApiError>
    where
        RQ: serde::Serialize + Send + Sync,
        RS: for<'de> Deserialize<'de> + Send,
    {
        let session = self.client.open_session(token);
        let call = session.http_session_api.http_post(method, request, None);
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(r) => r.map_err(|e| ApiError::from_client(method, e)),
            Err(_) => Err(ApiError {
                code: None,
                retry_after: None,
                message: format!("{method}: Slack did not answer in {} s", TIMEOUT.as_secs()),
            }),
        }
    }

    /// `auth.test`: check the bot token and learn who the bot is.
    pub async fn auth_test(&self) -> Result<Me, ApiError> {
        self.call(&self.bot, "auth.test", &serde_json::json!({}))
            .await
    }

    /// `apps.connections.open`: a fresh Socket Mode URL.
    pub async fn connections_open(&self) -> Result<String, ApiError> {
        let Some(app) = &self.app else {
            return Err(ApiError {
                code: None,
                retry_after: None,
                message: "Socket Mode needs an app-level token (app_token)".into(),
            });
        };
        let c: Connection = self
            .call(app, "apps.connections.open", &serde_json::json!({}))
            .await?;
        Ok(c.url)
    }

    /// `chat.postMessage`: post `text` (mrkdwn) into `channel`, in the
    /// thread `thread_ts` when given; returns the new message's `ts`.
    pub async fn post(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        text: &str,
    ) -> Result<String, ApiError> {
        let mut request = SlackApiChatPostMessageRequest::new(
            channel.into(),
            SlackMessageContent::new().with_text(text.into()),
        );
        request.thread_ts = thread_ts.map(Into::into);
        // Links the model writes are not unfurled into big previews.
        request.unfurl_links = Some(false);
        request.unfurl_media = Some(false);
        let posted: Posted = self.call(&self.bot, "chat.postMessage", &request).await?;
        Ok(posted.ts)
    }

    /// `chat.update`: replace the text of message `ts`.
    pub async fn update(&self, channel: &str, ts: &str, text: &str) -> Result<(), ApiError> {
        let request = SlackApiChatUpdateRequest::new(
            channel.into(),
            SlackMessageContent::new().with_text(text.into()),
            ts.into(),
        );
        let _: Nothing = self.call(&self.bot, "chat.update", &request).await?;
        Ok(())
    }

    /// `reactions.add`; a reaction already there is not an error.
    pub async fn react(&self, channel: &str, ts: &str, name: &str) -> Result<(), ApiError> {
        let request = SlackApiReactionsAddRequest::new(
            channel.into(),
            SlackReactionName::new(name.into()),
            ts.into(),
        );
        match self
            .call::<_, Nothing>(&self.bot, "reactions.add", &request)
            .await
        {
            Err(e) if e.code.as_deref() == Some("already_reacted") => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// `reactions.remove`; a reaction already gone is not an error.
    pub async fn unreact(&self, channel: &str, ts: &str, name: &str) -> Result<(), ApiError> {
        let request = SlackApiReactionsRemoveRequest::new(SlackReactionName::new(name.into()))
            .with_channel(channel.into())
            .with_timestamp(ts.into());
        match self
            .call::<_, Nothing>(&self.bot, "reactions.remove", &request)
            .await
        {
            Err(e) if e.code.as_deref() == Some("no_reaction") => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::SlackClientApiError;

    #[test]
    fn errors_say_what_to_do_and_rate_limits_wait() {
        let e = ApiError::from_client(
            "chat.postMessage",
            SlackClientError::ApiError(SlackClientApiError::new("not_in_channel".into())),
        );
        assert!(e.message.contains("/invite"), "{}", e.message);
        assert!(matches!(e.surface(), SurfaceError::Failed(_)));
        let e = ApiError::from_client(
            "chat.update",
            SlackClientError::ApiError(SlackClientApiError::new("ratelimited".into())),
        );
        assert!(matches!(e.surface(), SurfaceError::RetryAfter(_)));
    }
}
