//! The HTTP client: OAuth token handling and authenticated calls to the gateway.
//!
//! A call first uses the stored access token if it is fresh; otherwise (or when the gateway answers
//! 401) it refreshes with the stored refresh token and saves the rotated pair; if that fails too it
//! logs in with configured credentials (client credentials when a client secret is set, else the
//! password grant). Tokens go only to the endpoint they were issued by.

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde_json::Value;
use sw_contracts::auth::TokenOut;

use crate::config::{self, ConfigFile, Session, Settings};
use crate::error::CliError;

/// Whole-request deadline of every HTTP call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A token this close to expiry is refreshed before use rather than after a 401.
const EXPIRY_MARGIN_SECS: i64 = 30;

/// The client for one CLI invocation.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    settings: Settings,
    path: PathBuf,
    file: ConfigFile,
}

/// How `login` authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    Password,
    ClientCredentials,
}

impl Client {
    /// Builds a client over the loaded config file (kept to save tokens back into it).
    pub fn new(settings: Settings, path: PathBuf, file: ConfigFile) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("swcli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Client { http, settings, path, file })
    }

    /// The effective settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Replaces the configured password (e.g. one read from stdin).
    pub fn set_password(&mut self, password: String) {
        self.settings.password = Some(password);
    }

    /// The absolute URL of an API path on the configured gateway.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.endpoint)
    }

    /// Logs in with the configured credentials and stores the session. Client credentials are used
    /// when a client secret is configured, else the password grant.
    pub async fn login(&mut self) -> Result<(Grant, Session), CliError> {
        let s = &self.settings;
        let req = if let Some(secret) = &s.client_secret {
            let form = [("grant_type", "client_credentials")];
            (
                Grant::ClientCredentials,
                self.token_request().basic_auth(&s.client_id, Some(secret)).form(&form),
            )
        } else {
            let (Some(user), Some(pw)) = (&s.username, &s.password) else {
                return Err(CliError::Auth {
                    code: "missing_credentials".into(),
                    detail: "set a username and password (or a client id and secret) by flag, SWCLI_* \
                             variable or config file"
                        .into(),
                });
            };
            let form = [
                ("grant_type", "password"),
                ("username", user.as_str()),
                ("password", pw.as_str()),
                ("client_id", s.client_id.as_str()),
            ];
            (Grant::Password, self.token_request().form(&form))
        };
        let session = self.exchange(req.1).await?;
        Ok((req.0, session))
    }

    fn token_request(&self) -> RequestBuilder {
        self.http.post(self.url("/oauth/token"))
    }

    /// Sends a token request, stores the resulting session, and returns it.
    async fn exchange(&mut self, req: RequestBuilder) -> Result<Session, CliError> {
        let body = read(req.send().await?).await?;
        let tok: TokenOut = serde_json::from_value(body.unwrap_or(Value::Null))
            .map_err(|e| CliError::Unexpected(format!("token response: {e}")))?;
        let expires_in = i64::try_from(tok.expires_in).unwrap_or(i64::MAX / 2).min(365 * 24 * 3600);
        let session = Session {
            endpoint: self.settings.endpoint.clone(),
            client_id: self.settings.client_id.clone(),
            access_token: tok.access_token,
            refresh_token: tok.refresh_token,
            expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
        };
        self.file.session = Some(session.clone());
        config::save(&self.path, &self.file)?;
        Ok(session)
    }

    /// The stored session, if it belongs to the configured endpoint.
    fn session(&self) -> Option<&Session> {
        self.file.session.as_ref().filter(|s| s.endpoint == self.settings.endpoint)
    }

    /// Refreshes with the stored refresh token (saving the rotated one), else logs in with
    /// configured credentials.
    async fn renew(&mut self) -> Result<String, CliError> {
        if let Some(s) = self.session().cloned()
            && let Some(refresh) = &s.refresh_token
        {
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", s.client_id.as_str()),
            ];
            let mut req = self.token_request().form(&form);
            // A confidential client must authenticate on refresh too.
            if let Some(secret) = &self.settings.client_secret
                && s.client_id == self.settings.client_id
            {
                req = req.basic_auth(&s.client_id, Some(secret));
            }
            match self.exchange(req).await {
                Ok(s) => return Ok(s.access_token),
                // A refused refresh token is dropped so it is not presented again (which would
                // revoke its whole family); fall through to credentials.
                Err(e @ CliError::Api { .. }) if !self.has_credentials() => {
                    self.forget_session()?;
                    return Err(CliError::Auth {
                        code: "session_expired".into(),
                        detail: format!("the stored session was refused ({e}); run `swcli login`"),
                    });
                }
                Err(CliError::Api { .. }) => self.forget_session()?,
                Err(e) => return Err(e),
            }
        }
        if !self.has_credentials() {
            return Err(CliError::Auth {
                code: "not_logged_in".into(),
                detail: format!("no session for {}; run `swcli login`", self.settings.endpoint),
            });
        }
        Ok(self.login().await?.1.access_token)
    }

    fn has_credentials(&self) -> bool {
        let s = &self.settings;
        s.client_secret.is_some() || (s.username.is_some() && s.password.is_some())
    }

    fn forget_session(&mut self) -> Result<(), CliError> {
        self.file.session = None;
        config::save(&self.path, &self.file)
    }

    /// Calls the API with a bearer token, renewing it once if it is stale or refused.
    /// Returns the JSON body (None for an empty body such as 204).
    pub async fn call<Q: Serialize + ?Sized>(
        &mut self,
        method: Method,
        path: &str,
        query: Option<&Q>,
        body: Option<&Value>,
    ) -> Result<Option<Value>, CliError> {
        let url = self.url(path);
        let resp = self
            .execute(|http| {
                let mut req = http.request(method.clone(), &url);
                if let Some(q) = query {
                    req = req.query(q);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                Ok(req)
            })
            .await?;
        read(resp).await
    }

    /// Sends the request `build` makes with a bearer token and returns the successful response
    /// (its body unread); a non-2xx answer becomes the problem's error. When a stored token that
    /// looked fresh is refused, the token is renewed and `build` is called again, so a streamed
    /// body must be reopened by `build` rather than captured once.
    pub async fn execute(
        &mut self,
        mut build: impl FnMut(&reqwest::Client) -> Result<RequestBuilder, CliError>,
    ) -> Result<reqwest::Response, CliError> {
        let now = Utc::now();
        let stored =
            self.session().filter(|s| s.is_fresh(now, EXPIRY_MARGIN_SECS)).map(|s| s.access_token.clone());
        let (token, reused) = match stored {
            Some(t) => (t, true),
            None => (self.renew().await?, false),
        };
        let resp = build(&self.http)?.bearer_auth(&token).send().await?;
        // The stored token may be revoked or signed by a retired key: renew once and retry.
        if reused && resp.status() == StatusCode::UNAUTHORIZED {
            drop(resp);
            let token = self.renew().await?;
            return success(build(&self.http)?.bearer_auth(&token).send().await?).await;
        }
        success(resp).await
    }
}

/// The response itself when it is a 2xx, else its problem as an error.
async fn success(resp: reqwest::Response) -> Result<reqwest::Response, CliError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp.bytes().await?;
    Err(CliError::from_reply(status.as_u16(), &bytes))
}

/// Reads a reply: the JSON body on success, the problem as an error otherwise.
pub(crate) async fn read(resp: reqwest::Response) -> Result<Option<Value>, CliError> {
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        return Err(CliError::from_reply(status.as_u16(), &bytes));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| CliError::Unexpected(format!("the reply is not JSON: {e}")))
}
