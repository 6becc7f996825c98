//! The HTTP side of the X API v2: the bearer token, the requests tweetpipe makes,
//! and X's problem objects turned into errors that say what to do.
//!
//! The token is sent as a sensitive header and never appears in a log line, an
//! error or a `Debug` rendering.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Deserialize;

use crate::config::XSourceConfig;

/// The environment variable read when `bearer_token_file` is not set.
pub const TOKEN_ENV: &str = "TWEETPIPE_X_BEARER_TOKEN";
/// The systemd credential read last (`LoadCredential=x-bearer-token:…`).
pub const TOKEN_CREDENTIAL: &str = "x-bearer-token";

/// The `User-Agent` every request carries.
pub const USER_AGENT: &str = concat!(
    "tweetpipe/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/tweetpipe/tweetpipe)"
);

/// How long a connection attempt may take before it counts as a network error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a rules request (or reading an error body) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an error body kept for the message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An app-only bearer token; its `Debug` says where it came from, never what it is.
#[derive(Clone)]
pub struct BearerToken {
    secret: String,
    origin: String,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl BearerToken {
    /// A token from somewhere else (tests, callers with their own secret store).
    pub fn new(secret: impl Into<String>, origin: impl Into<String>) -> BearerToken {
        BearerToken {
            secret: secret.into().trim().to_owned(),
            origin: origin.into(),
        }
    }

    /// Where the token came from, for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Finds the token: `bearer_token_file`, else `$TWEETPIPE_X_BEARER_TOKEN`, else
    /// `$CREDENTIALS_DIRECTORY/x-bearer-token`.
    pub fn load(config: &XSourceConfig) -> Result<BearerToken, TokenError> {
        BearerToken::load_with(config, |name| std::env::var_os(name))
    }

    /// [`BearerToken::load`] with the environment passed in.
    pub fn load_with(
        config: &XSourceConfig,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<BearerToken, TokenError> {
        if let Some(path) = &config.bearer_token_file {
            return read_token_file(
                path,
                format!("source.x.bearer_token_file ({})", path.display()),
            );
        }
        if let Some(value) = env(TOKEN_ENV) {
            let token = BearerToken::new(value.to_string_lossy(), format!("${TOKEN_ENV}"));
            if token.secret.is_empty() {
                return Err(TokenError::Empty {
                    origin: token.origin,
                });
            }
            return Ok(token);
        }
        if let Some(dir) = env("CREDENTIALS_DIRECTORY") {
            let path = PathBuf::from(dir).join(TOKEN_CREDENTIAL);
            if path.exists() {
                return read_token_file(&path, format!("systemd credential {TOKEN_CREDENTIAL}"));
            }
        }
        Err(TokenError::Missing)
    }
}

fn read_token_file(path: &Path, origin: String) -> Result<BearerToken, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = BearerToken::new(text, origin);
    if token.secret.is_empty() {
        return Err(TokenError::Empty {
            origin: token.origin,
        });
    }
    if token.secret.contains(char::is_whitespace) {
        return Err(TokenError::Malformed {
            origin: token.origin,
        });
    }
    Ok(token)
}

/// The bearer token could not be found or read.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "source.x: no bearer token; set source.x.bearer_token_file, or the {TOKEN_ENV} environment variable, or a systemd credential named {TOKEN_CREDENTIAL} (LoadCredential={TOKEN_CREDENTIAL}:/path/to/token)"
    )]
    Missing,
    #[error("source.x: cannot read the bearer token from {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("source.x: the bearer token in {origin} is empty")]
    Empty { origin: String },
    #[error(
        "source.x: the bearer token in {origin} contains whitespace; the file should hold only the token"
    )]
    Malformed { origin: String },
}

/// A request to X that did not give the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No HTTP answer: DNS, TCP, TLS, a timeout or a dropped connection.
    #[error("cannot reach X at {url}: {message}")]
    Network { url: String, message: String },
    /// X answered with an error status.
    #[error("X answered HTTP {status} to {what}: {problem}{}", status_hint(*status))]
    Status {
        status: u16,
        what: &'static str,
        problem: Box<Problem>,
    },
    /// X answered 2xx with a body that is not what its docs describe.
    #[error("X sent an unexpected answer to {what}: {message}")]
    Unexpected { what: &'static str, message: String },
}

impl ApiError {
    /// Worth retrying later: network errors, 5xx, 429 and (X's advice) 401/403.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Network { .. } => true,
            ApiError::Status { status, .. } => *status >= 500 || matches!(*status, 401 | 403 | 429),
            ApiError::Unexpected { .. } => false,
        }
    }
}

/// What to check for an authentication failure.
pub fn status_hint(status: u16) -> &'static str {
    match status {
        401 => {
            " (check the bearer token, that the app has access to the filtered stream, and that this machine's clock is right)"
        }
        403 => {
            " (check that the app belongs to a Project with filtered-stream access, the token's app permissions, and that this machine's clock is right)"
        }
        _ => "",
    }
}

/// X's problem object (RFC 7807 plus X's fields), reduced to what a person reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Streaming problems: `TooManyConnections`, …
    #[serde(default)]
    pub connection_issue: Option<String>,
    /// Forbidden problems: `client-not-enrolled`, …
    #[serde(default)]
    pub reason: Option<String>,
    /// Request-level errors (`{"message": …}`) some endpoints add.
    #[serde(default)]
    pub errors: Vec<ProblemItem>,
    /// The body when it was not a problem object.
    #[serde(skip)]
    pub text: Option<String>,
}

/// One entry of a problem's `errors`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProblemItem {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Problem {
    /// Reads a problem from an error body; any text becomes the message.
    pub fn parse(body: &[u8]) -> Problem {
        match serde_json::from_slice::<Problem>(body) {
            Ok(problem) => problem,
            Err(_) => {
                let text = String::from_utf8_lossy(body).trim().to_owned();
                Problem {
                    text: (!text.is_empty()).then(|| text.chars().take(300).collect()),
                    ..Problem::default()
                }
            }
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(title) = &self.title {
            parts.push(title.clone());
        }
        if let Some(issue) = &self.connection_issue {
            parts.push(issue.clone());
        }
        if let Some(reason) = &self.reason {
            parts.push(reason.clone());
        }
        let mut out = parts.join(", ");
        let mut details: Vec<&str> = self.detail.iter().map(String::as_str).collect();
        for item in &self.errors {
            if let Some(text) = item
                .message
                .as_ref()
                .or(item.detail.as_ref())
                .or(item.title.as_ref())
            {
                details.push(text);
            }
        }
        if let Some(text) = &self.text {
            details.push(text);
        }
        if !details.is_empty() {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&details.join("; "));
        }
        if out.is_empty() {
            out.push_str("no details given");
        }
        f.write_str(&out)
    }
}

/// A client for the few X API v2 endpoints the filtered stream needs.
#[derive(Debug, Clone)]
pub struct XClient {
    http: reqwest::Client,
    base: String,
    auth: HeaderValue,
}

impl XClient {
    /// A client for `api_base` that authenticates with `token`.
    pub fn new(api_base: &str, token: &BearerToken) -> Result<XClient, ClientBuildError> {
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", token.secret)).map_err(|_| {
                ClientBuildError::TokenNotHeaderSafe {
                    origin: token.origin.clone(),
                }
            })?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(30))
            .build()
            .map_err(|error| ClientBuildError::Http(error.to_string()))?;
        Ok(XClient {
            http,
            base: api_base.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// The API base URL, for messages.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of an API path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET or POST with the token and the versioned `User-Agent`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(AUTHORIZATION, self.auth.clone())
    }

    /// A POST with a JSON body.
    pub fn post_json(&self, path: &str, body: &impl serde::Serialize) -> reqwest::RequestBuilder {
        let body = serde_json::to_vec(body).expect("request bodies are plain data");
        self.request(reqwest::Method::POST, path)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
    }

    /// Sends a small request and decodes its JSON answer.
    pub async fn json<T: for<'de> Deserialize<'de>>(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<T, ApiError> {
        let response = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.network(&error))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.network(&error))?;
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                what,
                problem: Box::new(Problem::parse(&body[..body.len().min(MAX_ERROR_BODY)])),
            });
        }
        serde_json::from_slice(&body).map_err(|error| ApiError::Unexpected {
            what,
            message: error.to_string(),
        })
    }

    /// Turns a reqwest error into a network error without the query string.
    pub fn network(&self, error: &reqwest::Error) -> ApiError {
        let url = error
            .url()
            .map(|url| format!("{}{}", url.origin().ascii_serialization(), url.path()))
            .unwrap_or_else(|| self.base.clone());
        ApiError::Network {
            url,
            message: error_chain(error),
        }
    }

    /// Reads (a bounded part of) an error response's body as a problem.
    pub async fn problem(response: reqwest::Response) -> Problem {
        let mut response = response;
        let mut body = Vec::new();
        let read = async {
            while let Ok(Some(chunk)) = response.chunk().await {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(REQUEST_TIMEOUT, read).await;
        Problem::parse(&body)
    }
}

/// An error and its sources on one line (reqwest's own message is terse).
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// The HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("source.x: the bearer token in {origin} has characters an HTTP header cannot carry")]
    TokenNotHeaderSafe { origin: String },
    #[error("source.x: cannot set up the HTTP client: {0}")]
    Http(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn x_config(extra: &str) -> XSourceConfig {
        let text = format!(
            "[source.x]\nrules = [{{ value = \"cats\" }}]\n{extra}\n[sink.stdout]\n[dead_letter]\npath = \"d.jsonl\"\n"
        );
        Config::parse(&text, Path::new("t.toml"))
            .unwrap()
            .source
            .x
            .unwrap()
    }

    #[test]
    fn token_file_wins_then_environment_then_credential() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-file\n").unwrap();
        std::fs::write(dir.path().join(TOKEN_CREDENTIAL), "from-credential").unwrap();
        let mut config = x_config("");
        config.bearer_token_file = Some(file);
        let env = |name: &str| match name {
            TOKEN_ENV => Some(OsString::from("from-env")),
            "CREDENTIALS_DIRECTORY" => Some(dir.path().as_os_str().to_owned()),
            _ => None,
        };
        assert_eq!(
            BearerToken::load_with(&config, env).unwrap().secret,
            "from-file"
        );
        config.bearer_token_file = None;
        assert_eq!(
            BearerToken::load_with(&config, env).unwrap().secret,
            "from-env"
        );
        let no_env = |name: &str| (name != TOKEN_ENV).then(|| env(name)).flatten();
        let token = BearerToken::load_with(&config, no_env).unwrap();
        assert_eq!(token.secret, "from-credential");
        assert!(!format!("{token:?}").contains("from-credential"));
        assert!(matches!(
            BearerToken::load_with(&config, |_| None),
            Err(TokenError::Missing)
        ));
    }

    #[test]
    fn empty_token_file_is_an_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "\n").unwrap();
        let mut config = x_config("");
        config.bearer_token_file = Some(file);
        let error = BearerToken::load_with(&config, |_| None).unwrap_err();
        assert!(
            error.to_string().contains("source.x.bearer_token_file"),
            "{error}"
        );
    }

    #[test]
    fn problems_read_like_x_wrote_them() {
        let body = br#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#;
        assert_eq!(
            Problem::parse(body).to_string(),
            "ConnectionException, TooManyConnections: This stream is currently at the maximum allowed connection limit."
        );
        assert_eq!(
            Problem::parse(b"<html>bad gateway").to_string(),
            "<html>bad gateway"
        );
        assert_eq!(Problem::parse(b"").to_string(), "no details given");
    }
}
