//! Discord's REST API: serenity's routes and request builder (paths,
//! `Authorization: Bot …`, the proxy base URL) sent with our HTTP client,
//! because serenity's own rate limiter ignores a proxy base URL (it would
//! send to discord.com) and drops the `retry_after` of a 429. Here a 429
//! comes back as [`RestError::retry_after`] for the caller to wait out
//! (the reply stream does), and a bucket that reports no requests left
//! (`X-RateLimit-Remaining: 0`) holds the next call on it until
//! `X-RateLimit-Reset-After` has passed. Answers are parsed with our
//! lenient types; errors are put in words without the request URL, which
//! for interaction webhooks holds a token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;
use serenity::http::{LightMethod, RatelimitingBucket, Request, Route};
use serenity::model::id::{ApplicationId, ChannelId, InteractionId, MessageId};
use tokio::time::Instant;

use switchboard_channel::ChannelError;
use switchboard_channel::stream::SurfaceError;

use crate::model::Created;

/// A failed REST call, in words.
#[derive(Debug)]
pub struct RestError {
    /// HTTP status, when Discord answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub message: String,
    /// For a 429: how long Discord asked us to wait.
    pub retry_after: Option<Duration>,
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.status {
            Some(s) => write!(f, "Discord answered {s}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

fn network(e: reqwest::Error) -> RestError {
    RestError {
        status: None,
        // Without the URL (it may hold an interaction token).
        message: format!("network error: {}", root_cause(&e.without_url())),
        retry_after: None,
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn seconds(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let v: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(3600.0)))
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
            SurfaceError::RetryAfter(self.retry_after.unwrap_or(Duration::from_secs(1)))
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

/// The REST client of one bot account.
pub struct Rest {
    client: reqwest::Client,
    /// `Bot <token>`.
    auth: String,
    proxy: Option<String>,
    /// Buckets with no requests left, until when.
    held: Mutex<HashMap<RatelimitingBucket, Instant>>,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// A client for `token`, sending to `api_url` (scheme and host)
    /// instead of `https://discord.com` when given.
    pub fn new(client: reqwest::Client, token: &str, api_url: Option<&str>) -> Self {
        Self {
            client,
            auth: format!("Bot {}", token.trim()),
            proxy: api_url.map(|u| u.trim_end_matches('/').to_string()),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Send one request (with query `params`); a non-2xx answer is an
    /// error.
    async fn send_raw(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
        params: Option<Vec<(&'static str, String)>>,
    ) -> Result<reqwest::Response, RestError> {
        let bucket = route.ratelimiting_bucket();
        let until = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&bucket)
            .copied();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        let req = Request::new(route, method)
            .body(body.and_then(json))
            .params(params);
        let built = req
            .build(&self.client, &self.auth, self.proxy.as_deref())
            .and_then(|b| Ok(b.build()?))
            .map_err(|e| RestError {
                status: None,
                message: format!("cannot build the request: {e}"),
                retry_after: None,
            })?;
        let response = self.client.execute(built).await.map_err(network)?;
        let headers = response.headers();
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            let left = headers
                .get("x-ratelimit-remaining")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            match (left, seconds(headers, "x-ratelimit-reset-after")) {
                (Some(0), Some(reset)) => {
                    held.insert(bucket, Instant::now() + reset);
                }
                _ => {
                    held.remove(&bucket);
                }
            }
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let header_wait = seconds(response.headers(), "retry-after");
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["message"].as_str().unwrap_or("").to_string();
        let code = body["code"].as_i64().unwrap_or(0);
        let retry_after = (status.as_u16() == 429).then(|| {
            body["retry_after"]
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| Duration::from_secs_f64(s.min(3600.0)))
                .or(header_wait)
                .unwrap_or(Duration::from_secs(1))
        });
        Err(RestError {
            status: Some(status.as_u16()),
            message: if code > 0 {
                format!("{message} (code {code})")
            } else {
                message
            },
            retry_after,
        })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
    ) -> Result<T, RestError> {
        self.call_with(route, method, body, None).await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
        params: Option<Vec<(&'static str, String)>>,
    ) -> Result<T, RestError> {
        let response = self.send_raw(route, method, body, params).await?;
        response.json().await.map_err(|e| RestError {
            status: None,
            message: format!("unexpected answer from Discord: {}", e.without_url()),
            retry_after: None,
        })
    }

    async fn call_empty(
        &self,
        route: Route<'_>,
        method: LightMethod,
        body: Option<&serde_json::Value>,
    ) -> Result<(), RestError> {
        self.send_raw(route, method, body, None).await.map(drop)
    }

    /// Download `url` (an attachment on Discord's CDN).
    pub async fn download(&self, url: &str) -> Result<reqwest::Response, RestError> {
        self.client
            .get(url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(network)
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

    /// `GET /channels/{id}/messages?after={after}&limit={limit}`: up to
    /// `limit` (at most 100) messages posted after message `after`, in
    /// the order Discord returns them (callers sort by id).
    pub async fn messages_after(
        &self,
        channel: ChannelId,
        after: MessageId,
        limit: u8,
    ) -> Result<Vec<crate::model::Message>, RestError> {
        let route = Route::ChannelMessages {
            channel_id: channel,
        };
        let params = vec![
            ("after", after.to_string()),
            ("limit", limit.clamp(1, 100).to_string()),
        ];
        self.call_with(route, LightMethod::Get, None, Some(params))
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
