//! Discord's REST API through serenity's HTTP client: its routes, its
//! `Authorization: Bot …` header, its proxy base URL and its rate limiter
//! (which waits out a 429 for the `Retry-After` it names and tries again).
//! Answers are parsed with our lenient types; errors are put in words
//! without the request URL, which for interaction webhooks holds a token.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serenity::http::{Http, HttpError, LightMethod, Request, Route};
use serenity::model::id::{ApplicationId, ChannelId, InteractionId, MessageId};

use switchboard_channel::ChannelError;
use switchboard_channel::stream::SurfaceError;

use crate::model::Created;

/// A failed REST call, in words, with whether retrying may help.
#[derive(Debug)]
pub struct RestError {
    /// HTTP status, when Discord answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "Discord answered {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl From<serenity::Error> for RestError {
    fn from(e: serenity::Error) -> Self {
        match e {
            serenity::Error::Http(HttpError::UnsuccessfulRequest(r)) => RestError {
                status: Some(r.status_code.as_u16()),
                message: if r.error.code > 0 {
                    format!("{} (code {})", r.error.message, r.error.code)
                } else {
                    r.error.message
                },
            },
            serenity::Error::Http(HttpError::Request(r)) => RestError {
                status: None,
                // Without the URL (it may hold an interaction token).
                message: format!("network error: {}", root_cause(&r.without_url())),
            },
            serenity::Error::Json(j) => RestError {
                status: None,
                message: format!("unexpected answer from Discord: {j}"),
            },
            other => RestError {
                status: None,
                message: other.to_string(),
            },
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

impl RestError {
    /// The channel error this is.
    pub fn channel(self) -> ChannelError {
        match self.status {
            Some(401) => ChannelError::Config(format!(
                "Discord refused the bot token (401 Unauthorized): {}",
                self.message
            )),
            None | Some(408 | 429 | 500..) => ChannelError::Unavailable(self.to_string()),
            Some(_) => ChannelError::Rejected(self.to_string()),
        }
    }

    /// The reply-stream error this is.
    pub fn surface(self) -> SurfaceError {
        if self.status == Some(429) {
            // Serenity waits out a 429 that names its Retry-After; one
            // without it is retried after a second.
            SurfaceError::RetryAfter(Duration::from_secs(1))
        } else {
            SurfaceError::Failed(self.channel())
        }
    }
}

/// Message content with pings turned off: nothing the model writes may
/// notify `@everyone`, a role or a user.
pub fn content(text: &str) -> serde_json::Value {
    serde_json::json!({
        "content": text,
        "allowed_mentions": {"parse": [], "replied_user": false},
    })
}

fn json(value: &serde_json::Value) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(value).unwrap_or_default())
}

/// The calls the adapter makes.
#[derive(Debug)]
pub struct Rest<'a>(pub &'a Http);

impl Rest<'_> {
    async fn call<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
    ) -> Result<T, RestError> {
        let req = Request::new(route, method).body(body.and_then(json));
        Ok(self.0.fire(req).await?)
    }

    async fn call_empty(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
    ) -> Result<(), RestError> {
        let req = Request::new(route, method).body(body.and_then(json));
        self.0.request(req).await?;
        Ok(())
    }

    /// `GET /users/@me`.
    pub async fn me(&self) -> Result<crate::model::User, RestError> {
        self.call(Route::UserMe, LightMethod::Get, None).await
    }

    /// `GET /gateway`: where to connect.
    pub async fn gateway(&self) -> Result<String, RestError> {
        let info: crate::model::GatewayInfo =
            self.call(Route::Gateway, LightMethod::Get, None).await?;
        Ok(info.url)
    }

    /// `GET /channels/{id}`.
    pub async fn channel(&self, id: ChannelId) -> Result<crate::model::ChannelInfo, RestError> {
        self.call(Route::Channel { channel_id: id }, LightMethod::Get, None)
            .await
    }

    /// `PUT /applications/{id}/commands`: replace the global commands.
    pub async fn set_commands(
        &self,
        app: ApplicationId,
        commands: &serde_json::Value,
    ) -> Result<(), RestError> {
        let route = Route::Commands {
            application_id: app,
        };
        self.call_empty(route, LightMethod::Put, Some(commands))
            .await
    }

    /// `POST /channels/{id}/messages`.
    pub async fn send(
        &self,
        channel: ChannelId,
        body: &serde_json::Value,
    ) -> Result<String, RestError> {
        let route = Route::ChannelMessages {
            channel_id: channel,
        };
        let c: Created = self.call(route, LightMethod::Post, Some(body)).await?;
        Ok(c.id)
    }

    /// `PATCH /channels/{id}/messages/{id}`.
    pub async fn edit(
        &self,
        channel: ChannelId,
        message: MessageId,
        body: &serde_json::Value,
    ) -> Result<(), RestError> {
        let route = Route::ChannelMessage {
            channel_id: channel,
            message_id: message,
        };
        self.call_empty(route, LightMethod::Patch, Some(body)).await
    }

    /// `POST /channels/{id}/typing`.
    pub async fn typing(&self, channel: ChannelId) -> Result<(), RestError> {
        let route = Route::ChannelTyping {
            channel_id: channel,
        };
        self.call_empty(route, LightMethod::Post, None).await
    }

    /// `POST /interactions/{id}/{token}/callback` with type 5: "thinking…",
    /// the answer follows by editing the original response.
    pub async fn defer(&self, id: InteractionId, token: &str) -> Result<(), RestError> {
        let route = Route::InteractionResponse {
            interaction_id: id,
            token,
        };
        let body = serde_json::json!({"type": 5});
        self.call_empty(route, LightMethod::Post, Some(&body)).await
    }

    /// `PATCH /webhooks/{app}/{token}/messages/@original`.
    pub async fn edit_original(
        &self,
        app: ApplicationId,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<(), RestError> {
        let route = Route::WebhookOriginalInteractionResponse {
            application_id: app,
            token,
        };
        self.call_empty(route, LightMethod::Patch, Some(body)).await
    }

    /// `POST /webhooks/{app}/{token}`: a follow-up message.
    pub async fn follow_up(
        &self,
        app: ApplicationId,
        token: &str,
        body: &serde_json::Value,
    ) -> Result<String, RestError> {
        let route = Route::WebhookFollowupMessages {
            application_id: app,
            token,
        };
        let c: Created = self.call(route, LightMethod::Post, Some(body)).await?;
        Ok(c.id)
    }

    /// `PATCH /webhooks/{app}/{token}/messages/{id}`.
    pub async fn edit_follow_up(
        &self,
        app: ApplicationId,
        token: &str,
        message: MessageId,
        body: &serde_json::Value,
    ) -> Result<(), RestError> {
        let route = Route::WebhookFollowupMessage {
            application_id: app,
            token,
            message_id: message,
        };
        self.call_empty(route, LightMethod::Patch, Some(body)).await
    }
}
