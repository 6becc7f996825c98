//! A fake X API v2 on loopback, so the X source can be tested without X.
//!
//! It serves the filtered stream's rules endpoints with X's request and response
//! shapes (`dry_run`, invalid and duplicate rules, 401 for a wrong token) and
//! streams a script of v2 messages with keep-alives. Each stream connection
//! follows the next [`Step`] of a plan, which is how tests inject faults: a
//! mid-stream disconnect, a stall, split lines, error statuses, an in-stream
//! `operational-disconnect`. It logs every connection with the (tokio) time it
//! started and ended and which script lines it delivered whole, so tests can check
//! the reconnect delays and that nothing was lost or sent twice.
//!
//! [`FakeX::start_live`] makes it behave like X in time: from the first stream
//! connection on it produces posts on a clock whether or not a client is
//! connected, streams each to the connection open at that moment (none while the
//! client is away), answers `backfill_minutes` with the posts of those last
//! minutes, and serves recent search (`/2/tweets/search/recent`) over everything
//! it produced, by rule, time window and page, with X's 10-second `end_time`
//! rule and rate-limit headers; [`SearchStep`]s inject bad answers.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long the fake lets the client read before it breaks or ends a connection.
const SETTLE: Duration = Duration::from_millis(20);

/// The token the fake accepts.
pub const TOKEN: &str = "fake-x-token-4b9d2e";

/// What one stream connection does.
#[derive(Debug, Clone)]
pub enum Step {
    /// Answer 200 and stream script lines.
    Serve(Serve),
    /// Answer with this status and an X-shaped problem body.
    Status { status: u16, body: String },
    /// Close the connection without an answer (a network error for the client).
    Drop,
}

/// How a 200 connection streams.
#[derive(Debug, Clone)]
pub struct Serve {
    /// Script lines to send (fewer if the script runs out).
    pub lines: usize,
    /// Send each line in pieces of this many bytes, each its own chunk.
    pub split: Option<usize>,
    /// What happens after the lines.
    pub then: End,
}

/// How a 200 connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Keep the connection open with a keep-alive every 10 s.
    Hold,
    /// Break the connection (no end of body).
    Abort,
    /// Send the first half of the next line, then break the connection.
    AbortMidLine,
    /// Send nothing more, not even keep-alives, and keep the connection open.
    Stall,
    /// Send X's `operational-disconnect` error object, then end the body.
    OperationalDisconnect,
}

impl Step {
    pub fn serve(lines: usize, then: End) -> Step {
        Step::Serve(Serve {
            lines,
            split: None,
            then,
        })
    }

    pub fn status(status: u16) -> Step {
        let body = match status {
            401 => r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#.to_owned(),
            403 => r#"{"client_id":"1","detail":"When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.","registration_url":"https://developer.twitter.com/en/docs/projects/overview","title":"Client Forbidden","required_enrollment":"Appropriate Level of API Access","reason":"client-not-enrolled","type":"https://api.twitter.com/2/problems/client-forbidden"}"#.to_owned(),
            429 => r#"{"title":"ConnectionException","detail":"This stream is currently at the maximum allowed connection limit.","connection_issue":"TooManyConnections","type":"https://api.twitter.com/2/problems/streaming-connection"}"#.to_owned(),
            503 => r#"{"title":"Service Unavailable","detail":"Service Unavailable","type":"about:blank","status":503}"#.to_owned(),
            _ => format!(r#"{{"title":"Error","status":{status}}}"#),
        };
        Step::Status { status, body }
    }
}

/// One stream connection as the fake saw it.
#[derive(Debug, Clone)]
pub struct Connection {
    pub started: Instant,
    /// When the fake broke, ended or stopped feeding it (the last byte of a stall).
    pub ended: Option<Instant>,
    pub query: String,
    pub user_agent: String,
    pub status: u16,
}

/// A rule as the fake stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRule {
    pub id: String,
    pub value: String,
    pub tag: Option<String>,
}

/// What one recent-search request gets (after the plan: a real answer).
#[derive(Debug, Clone)]
pub enum SearchStep {
    /// 200 with a body that is not JSON.
    Garbage,
    /// This status with an X-shaped problem body.
    Status(u16),
}

/// One recent-search request as the fake saw it.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub query: String,
    pub start_time: String,
    pub end_time: String,
    pub next_token: Option<String>,
    pub status: u16,
    /// Posts in the answer.
    pub posts: usize,
}

/// A post the live fake produced.
#[derive(Debug, Clone)]
pub struct Produced {
    pub id: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The stream message (`data`, `includes`, `matching_rules`).
    pub line: String,
    /// The value of the rule it matched.
    pub rule: String,
}

#[derive(Debug, Default)]
struct LiveState {
    /// Post bodies still to produce, in order.
    bodies: VecDeque<String>,
    produced: Vec<Produced>,
    /// Open live stream connections: each gets the index of every new post.
    subscribers: Vec<mpsc::UnboundedSender<usize>>,
    search_plan: VecDeque<SearchStep>,
    searches: Vec<SearchRequest>,
    /// The rate limit (unlimited when `None`).
    search_budget: Option<SearchBudget>,
}

#[derive(Debug, Clone, Copy)]
enum SearchBudget {
    /// Requests left in this window.
    Left(u64),
    /// Used up: 429 until this second (epoch).
    ResetAt(i64),
}

#[derive(Debug, Default)]
struct State {
    script: Vec<String>,
    cursor: usize,
    delivered: Vec<usize>,
    plan: VecDeque<Step>,
    connections: Vec<Connection>,
    rules: Vec<StoredRule>,
    next_rule_id: u64,
    rule_requests: Vec<String>,
    keepalive: Duration,
    live: Option<LiveState>,
}

/// The fake X API; it stops when dropped.
#[derive(Debug)]
pub struct FakeX {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    server: tokio::task::JoinHandle<()>,
    producer: Option<tokio::task::JoinHandle<()>>,
    first_connection: Arc<tokio::sync::Notify>,
}

impl Drop for FakeX {
    fn drop(&mut self) {
        self.server.abort();
        if let Some(producer) = &self.producer {
            producer.abort();
        }
    }
}

impl FakeX {
    /// Starts on `127.0.0.1:0` with `script` as the stream's contents.
    pub async fn start(script: Vec<String>) -> FakeX {
        FakeX::start_with(script, None).await
    }

    /// Starts a fake that, from the first stream connection on, produces the
    /// posts of `bodies` (v2 stream messages; their `data.id` and `created_at`
    /// are replaced) at `rate` a second, each matching the first stored rule.
    pub async fn start_live(bodies: Vec<String>, rate: f64) -> FakeX {
        let live = LiveState {
            bodies: bodies.into(),
            ..LiveState::default()
        };
        let mut fake = FakeX::start_with(Vec::new(), Some(live)).await;
        let state = fake.state.clone();
        let first = fake.first_connection.clone();
        fake.producer = Some(tokio::spawn(async move {
            first.notified().await;
            produce(state, rate).await;
        }));
        fake
    }

    async fn start_with(script: Vec<String>, live: Option<LiveState>) -> FakeX {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script,
            next_rule_id: 1_900_000_000_000_000_001,
            keepalive: Duration::from_secs(10),
            live,
            ..State::default()
        }));
        let shared = state.clone();
        let first_connection = Arc::new(tokio::sync::Notify::new());
        let notify = first_connection.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                let notify = notify.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        let notify = notify.clone();
                        async move { handle(state, notify, request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeX {
            addr,
            state,
            server,
            producer: None,
            first_connection,
        }
    }

    /// Every post the live fake produced so far.
    pub fn produced(&self) -> Vec<Produced> {
        self.live(|live| live.produced.clone())
    }

    /// True once every post body was produced.
    pub fn done_producing(&self) -> bool {
        self.live(|live| live.bodies.is_empty())
    }

    /// Queues what the next recent-search requests get.
    pub fn plan_search(&self, steps: impl IntoIterator<Item = SearchStep>) {
        self.live(|live| live.search_plan.extend(steps));
    }

    /// Lets `requests` searches through in this rate-limit window
    /// (`x-rate-limit-remaining` counts down; the last says 0 with a reset 2 s
    /// later); a search before the reset gets 429, one after it a fresh window.
    pub fn limit_search(&self, requests: u64) {
        self.live(|live| live.search_budget = Some(SearchBudget::Left(requests)));
    }

    /// Every recent-search request, in order.
    pub fn searches(&self) -> Vec<SearchRequest> {
        self.live(|live| live.searches.clone())
    }

    fn live<T>(&self, read: impl FnOnce(&mut LiveState) -> T) -> T {
        read(
            self.state
                .lock()
                .unwrap()
                .live
                .as_mut()
                .expect("a fake started with start_live"),
        )
    }

    /// The base URL to put in `source.x.api_base`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues what the next stream connections do; after the plan, connections
    /// stream the rest of the script and hold.
    pub fn plan(&self, steps: impl IntoIterator<Item = Step>) {
        self.state.lock().unwrap().plan.extend(steps);
    }

    /// How often a held connection gets a keep-alive (X: about every 20 s; 10 s here).
    pub fn set_keepalive(&self, every: Duration) {
        self.state.lock().unwrap().keepalive = every;
    }

    /// Replaces the rules stored on the fake.
    pub fn set_rules(&self, rules: &[(&str, Option<&str>)]) {
        let mut state = self.state.lock().unwrap();
        state.rules.clear();
        for (value, tag) in rules {
            let id = state.next_rule_id.to_string();
            state.next_rule_id += 1;
            state.rules.push(StoredRule {
                id,
                value: (*value).to_owned(),
                tag: tag.map(str::to_owned),
            });
        }
    }

    /// The rules stored now, as (value, tag).
    pub fn rules(&self) -> Vec<(String, Option<String>)> {
        let mut rules: Vec<_> = self
            .state
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|rule| (rule.value.clone(), rule.tag.clone()))
            .collect();
        rules.sort();
        rules
    }

    /// Every rules request, in order: `GET`, `POST dry_run add`, `POST add`, `POST delete`.
    pub fn rule_requests(&self) -> Vec<String> {
        self.state.lock().unwrap().rule_requests.clone()
    }

    /// Every stream connection, in order.
    pub fn connections(&self) -> Vec<Connection> {
        self.state.lock().unwrap().connections.clone()
    }

    /// Indexes of the script lines delivered whole, in order.
    pub fn delivered(&self) -> Vec<usize> {
        self.state.lock().unwrap().delivered.clone()
    }

    /// The gaps between one connection ending (or going quiet) and the next starting.
    pub fn reconnect_gaps(&self) -> Vec<Duration> {
        let connections = self.connections();
        connections
            .windows(2)
            .map(|pair| {
                let ended = pair[0]
                    .ended
                    .expect("a connection that was followed by another ended");
                pair[1].started.duration_since(ended)
            })
            .collect()
    }
}

type Reply = Response<ChannelBody>;

async fn handle(
    state: Arc<Mutex<State>>,
    first_connection: Arc<tokio::sync::Notify>,
    request: Request<Incoming>,
) -> Result<Reply, io::Error> {
    let authorized = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
    if !authorized {
        return Ok(json(401, Step::status(401).body()));
    }
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    match (request.method().as_str(), path.as_str()) {
        ("GET", "/2/tweets/search/stream") => {
            first_connection.notify_one();
            stream(state, &request, query).await
        }
        ("GET", "/2/tweets/search/recent") => Ok(search(&state, &query)),
        ("GET", "/2/tweets/search/stream/rules") => {
            let mut state = state.lock().unwrap();
            state.rule_requests.push("GET".to_owned());
            let data: Vec<_> = state.rules.iter().map(rule_json).collect();
            let body = if data.is_empty() {
                serde_json::json!({"meta": {"sent": "2026-03-01T08:00:00.000Z", "result_count": 0}})
            } else {
                serde_json::json!({"data": data, "meta": {"sent": "2026-03-01T08:00:00.000Z", "result_count": data.len()}})
            };
            Ok(json(200, body.to_string()))
        }
        ("POST", "/2/tweets/search/stream/rules") => {
            let dry_run = query.split('&').any(|pair| pair == "dry_run=true");
            let body = request
                .into_body()
                .collect()
                .await
                .map_err(io::Error::other)?
                .to_bytes();
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return Ok(json(400, r#"{"errors":[{"message":"Request body is not valid JSON"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#.to_owned()));
            };
            Ok(change_rules(&state, &body, dry_run))
        }
        _ => Ok(json(
            404,
            r#"{"title":"Not Found Error","type":"about:blank"}"#.to_owned(),
        )),
    }
}

impl Step {
    fn body(&self) -> String {
        match self {
            Step::Status { body, .. } => body.clone(),
            _ => String::new(),
        }
    }
}

fn rule_json(rule: &StoredRule) -> serde_json::Value {
    let mut value = serde_json::json!({"id": rule.id, "value": rule.value});
    if let Some(tag) = &rule.tag {
        value["tag"] = serde_json::json!(tag);
    }
    value
}

fn change_rules(state: &Mutex<State>, body: &serde_json::Value, dry_run: bool) -> Reply {
    let mut state = state.lock().unwrap();
    let sent = "2026-03-01T08:00:00.000Z";
    if let Some(add) = body.get("add").and_then(|add| add.as_array()) {
        state.rule_requests.push(
            if dry_run {
                "POST dry_run add"
            } else {
                "POST add"
            }
            .to_owned(),
        );
        let mut errors = Vec::new();
        let mut valid = Vec::new();
        for rule in add {
            let value = rule["value"].as_str().unwrap_or("").to_owned();
            let tag = rule
                .get("tag")
                .and_then(|tag| tag.as_str())
                .map(str::to_owned);
            if value.matches('(').count() != value.matches(')').count() {
                errors.push(serde_json::json!({
                    "value": value,
                    "details": ["Rules must contain balanced parentheses."],
                    "title": "Invalid Rule",
                    "type": "https://api.twitter.com/2/problems/invalid-rules"
                }));
            } else if let Some(existing) = state.rules.iter().find(|rule| rule.value == value) {
                errors.push(serde_json::json!({
                    "value": value,
                    "id": existing.id,
                    "title": "DuplicateRule",
                    "type": "https://api.twitter.com/2/problems/duplicate-rules"
                }));
            } else {
                valid.push((value, tag));
            }
        }
        // Like X: one invalid rule and none is created.
        let mut created = Vec::new();
        if errors.is_empty() && !dry_run {
            for (value, tag) in &valid {
                let id = state.next_rule_id.to_string();
                state.next_rule_id += 1;
                let rule = StoredRule {
                    id,
                    value: value.clone(),
                    tag: tag.clone(),
                };
                created.push(rule_json(&rule));
                state.rules.push(rule);
            }
        }
        let mut reply = serde_json::json!({
            "meta": {"sent": sent, "summary": {
                "created": created.len(),
                "not_created": add.len() - created.len(),
                "valid": valid.len(),
                "invalid": errors.len()
            }}
        });
        if !created.is_empty() {
            reply["data"] = serde_json::json!(created);
        }
        if !errors.is_empty() {
            reply["errors"] = serde_json::json!(errors);
        }
        return json(200, reply.to_string());
    }
    if let Some(ids) = body.pointer("/delete/ids").and_then(|ids| ids.as_array()) {
        state.rule_requests.push(
            if dry_run {
                "POST dry_run delete"
            } else {
                "POST delete"
            }
            .to_owned(),
        );
        let ids: Vec<String> = ids
            .iter()
            .filter_map(|id| id.as_str().map(str::to_owned))
            .collect();
        let mut errors = Vec::new();
        let mut deleted = 0;
        for id in &ids {
            match state.rules.iter().position(|rule| &rule.id == id) {
                Some(index) => {
                    if !dry_run {
                        state.rules.remove(index);
                    }
                    deleted += 1;
                }
                None => errors.push(serde_json::json!({
                    "errors": [{"parameters": {}, "message": "Rule does not exist"}],
                    "title": "Invalid Request",
                    "id": id
                })),
            }
        }
        let mut reply = serde_json::json!({
            "meta": {"sent": sent, "summary": {"deleted": deleted, "not_deleted": ids.len() - deleted}}
        });
        if !errors.is_empty() {
            reply["errors"] = serde_json::json!(errors);
        }
        return json(200, reply.to_string());
    }
    json(400, r#"{"errors":[{"message":"Exactly one of add or delete is required"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#.to_owned())
}

async fn stream(
    state: Arc<Mutex<State>>,
    request: &Request<Incoming>,
    query: String,
) -> Result<Reply, io::Error> {
    let user_agent = request
        .headers()
        .get(hyper::header::USER_AGENT)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .unwrap_or_default();
    let (step, index) = {
        let mut state = state.lock().unwrap();
        let step = state
            .plan
            .pop_front()
            .unwrap_or(Step::serve(usize::MAX, End::Hold));
        let status = match &step {
            Step::Serve(_) => 200,
            Step::Status { status, .. } => *status,
            Step::Drop => 0,
        };
        let now = Instant::now();
        state.connections.push(Connection {
            started: now,
            ended: (status != 200).then_some(now),
            query,
            user_agent,
            status,
        });
        (step, state.connections.len() - 1)
    };
    match step {
        Step::Drop => Err(io::Error::other("fake X drops this connection")),
        Step::Status { status, body } => Ok(json(status, body)),
        Step::Serve(serve) => {
            let (tx, rx) = mpsc::channel(1);
            let live = state.lock().unwrap().live.is_some();
            if live {
                tokio::spawn(feed_live(state, serve, index, tx));
            } else {
                tokio::spawn(feed(state, serve, index, tx));
            }
            Ok(Response::builder()
                .status(200)
                .header("content-type", "application/json; charset=utf-8")
                .body(ChannelBody(rx))
                .unwrap())
        }
    }
}

type Frames = mpsc::Sender<Result<Bytes, io::Error>>;

/// Streams one 200 connection according to `serve`.
async fn feed(state: Arc<Mutex<State>>, serve: Serve, connection: usize, tx: Frames) {
    let ended = |state: &Mutex<State>| {
        state.lock().unwrap().connections[connection].ended = Some(Instant::now());
    };
    if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
        return;
    }
    for _ in 0..serve.lines {
        let next = {
            let state = state.lock().unwrap();
            state
                .script
                .get(state.cursor)
                .cloned()
                .map(|line| (state.cursor, line))
        };
        let Some((index, line)) = next else {
            break;
        };
        let bytes = format!("{line}\r\n").into_bytes();
        let pieces: Vec<&[u8]> = match serve.split {
            Some(size) => bytes.chunks(size.max(1)).collect(),
            None => vec![&bytes[..]],
        };
        for piece in pieces {
            if tx.send(Ok(Bytes::copy_from_slice(piece))).await.is_err() {
                return;
            }
        }
        {
            let mut state = state.lock().unwrap();
            state.cursor = index + 1;
            state.delivered.push(index);
        }
        if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
            return;
        }
    }
    let quiet_since = Instant::now();
    // Let the client read everything sent so far before the connection changes.
    tokio::time::sleep(SETTLE).await;
    let keepalive = state.lock().unwrap().keepalive;
    match serve.then {
        End::Hold => loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(keepalive) => {
                    if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
                        return;
                    }
                }
            }
        },
        End::Abort => {
            ended(&state);
            let _ = tx
                .send(Err(io::Error::other("fake X breaks the connection")))
                .await;
        }
        End::AbortMidLine => {
            let half = {
                let state = state.lock().unwrap();
                state
                    .script
                    .get(state.cursor)
                    .map(|line| line[..line.len() / 2].to_owned())
            };
            if let Some(half) = half {
                let _ = tx.send(Ok(Bytes::from(half))).await;
                tokio::time::sleep(SETTLE).await;
            }
            ended(&state);
            let _ = tx
                .send(Err(io::Error::other(
                    "fake X breaks the connection mid-line",
                )))
                .await;
        }
        End::Stall => {
            state.lock().unwrap().connections[connection].ended = Some(quiet_since);
            tx.closed().await;
        }
        End::OperationalDisconnect => {
            let line = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"OperationalDisconnect","detail":"This stream has been disconnected for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
            let _ = tx.send(Ok(Bytes::from(format!("{line}\r\n")))).await;
            tokio::time::sleep(SETTLE).await;
            ended(&state);
            drop(tx);
        }
    }
}

/// Produces the live fake's posts at `rate` a second until the bodies run out.
async fn produce(state: Arc<Mutex<State>>, rate: f64) {
    let started = Instant::now();
    for index in 0.. {
        tokio::time::sleep_until(started + Duration::from_secs_f64(index as f64 / rate)).await;
        let mut state = state.lock().unwrap();
        let rule = state.rules.first().cloned();
        let Some(live) = state.live.as_mut() else {
            return;
        };
        let Some(body) = live.bodies.pop_front() else {
            return;
        };
        let created_at = chrono::Utc::now();
        let id = (1_990_000_000_000_000_000u64 + index).to_string();
        let mut message: serde_json::Value = serde_json::from_str(&body).expect("a v2 message");
        message["data"]["id"] = serde_json::json!(id);
        message["data"]["edit_history_tweet_ids"] = serde_json::json!([id]);
        message["data"]["created_at"] =
            serde_json::json!(created_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string());
        let (rule_value, matching) = match &rule {
            Some(rule) => (
                rule.value.clone(),
                serde_json::json!([{"id": rule.id, "tag": rule.tag.clone().unwrap_or_default()}]),
            ),
            None => (String::new(), serde_json::json!([])),
        };
        message["matching_rules"] = matching;
        live.produced.push(Produced {
            id,
            created_at,
            line: message.to_string(),
            rule: rule_value,
        });
        let position = live.produced.len() - 1;
        live.subscribers
            .retain(|subscriber| subscriber.send(position).is_ok());
    }
}

/// Streams one live 200 connection: the backfill it asked for, then each post
/// as it is produced, `serve.lines` of them, then `serve.then`.
async fn feed_live(state: Arc<Mutex<State>>, serve: Serve, connection: usize, tx: Frames) {
    let ended = |state: &Mutex<State>| {
        state.lock().unwrap().connections[connection].ended = Some(Instant::now());
    };
    let (posts_tx, mut posts) = mpsc::unbounded_channel();
    let backfill: Vec<usize> = {
        let mut state = state.lock().unwrap();
        let query = state.connections[connection].query.clone();
        let live = state.live.as_mut().unwrap();
        live.subscribers.push(posts_tx);
        let minutes = query_pairs(&query)
            .into_iter()
            .find(|(key, _)| key == "backfill_minutes")
            .and_then(|(_, value)| value.parse::<i64>().ok());
        match minutes {
            Some(minutes) => {
                let since = chrono::Utc::now() - chrono::TimeDelta::minutes(minutes.clamp(1, 5));
                (0..live.produced.len())
                    .filter(|index| live.produced[*index].created_at >= since)
                    .collect()
            }
            None => Vec::new(),
        }
    };
    if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
        return;
    }
    let send = |index: usize| {
        let line = state.lock().unwrap().live.as_ref().unwrap().produced[index]
            .line
            .clone();
        Bytes::from(format!("{line}\r\n"))
    };
    for index in backfill {
        if tx.send(Ok(send(index))).await.is_err() {
            return;
        }
    }
    let keepalive = state.lock().unwrap().keepalive;
    let mut sent = 0;
    while sent < serve.lines {
        let index = tokio::select! {
            _ = tx.closed() => return,
            index = posts.recv() => index,
            _ = tokio::time::sleep(keepalive) => {
                if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
                    return;
                }
                continue;
            }
        };
        let Some(index) = index else {
            return;
        };
        if tx.send(Ok(send(index))).await.is_err() {
            return;
        }
        state.lock().unwrap().delivered.push(index);
        sent += 1;
    }
    // Posts produced from now on do not reach this connection.
    drop(posts);
    tokio::time::sleep(SETTLE).await;
    match serve.then {
        End::Stall => {
            ended(&state);
            tx.closed().await;
        }
        End::Hold => loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(keepalive) => {
                    if tx.send(Ok(Bytes::from_static(b"\r\n"))).await.is_err() {
                        return;
                    }
                }
            }
        },
        _ => {
            ended(&state);
            let _ = tx
                .send(Err(io::Error::other("fake X breaks the connection")))
                .await;
        }
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://fake/?{query}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// `GET /2/tweets/search/recent` over what the live fake produced.
fn search(state: &Mutex<State>, query: &str) -> Reply {
    let pairs = query_pairs(query);
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut state = state.lock().unwrap();
    let Some(live) = state.live.as_mut() else {
        return json(
            404,
            r#"{"title":"Not Found Error","type":"about:blank"}"#.to_owned(),
        );
    };
    let mut request = SearchRequest {
        query: param("query").unwrap_or_default(),
        start_time: param("start_time").unwrap_or_default(),
        end_time: param("end_time").unwrap_or_default(),
        next_token: param("next_token"),
        status: 200,
        posts: 0,
    };
    let now = chrono::Utc::now();
    let reset = (now + chrono::TimeDelta::seconds(2)).timestamp();
    let log = |live: &mut LiveState, request: SearchRequest, reply: Reply| {
        live.searches.push(request);
        reply
    };
    if let Some(step) = live.search_plan.pop_front() {
        let reply = match step {
            SearchStep::Garbage => {
                request.status = 200;
                json(200, "{\"data\": [{\"id\": \"1\",,, <html>oops".to_owned())
            }
            SearchStep::Status(status) => {
                request.status = status;
                json(status, Step::status(status).body())
            }
        };
        return log(live, request, reply);
    }
    let remaining = match live.search_budget {
        Some(SearchBudget::Left(left)) => {
            let left = left.saturating_sub(1);
            if left == 0 {
                live.search_budget = Some(SearchBudget::ResetAt(reset));
            } else {
                live.search_budget = Some(SearchBudget::Left(left));
            }
            left
        }
        Some(SearchBudget::ResetAt(at)) if now.timestamp() < at => {
            request.status = 429;
            let reply = with_headers(
                json(429, r#"{"title":"Too Many Requests","detail":"Too Many Requests","type":"about:blank","status":429}"#.to_owned()),
                0,
                at,
            );
            return log(live, request, reply);
        }
        Some(SearchBudget::ResetAt(_)) | None => {
            live.search_budget = None;
            449
        }
    };
    let invalid = |message: String| {
        json(
            400,
            serde_json::json!({
                "errors": [{"parameters": {}, "message": message}],
                "title": "Invalid Request",
                "detail": "One or more parameters to your request was invalid.",
                "type": "https://api.twitter.com/2/problems/invalid-request"
            })
            .to_string(),
        )
    };
    let parse = |text: &str| text.parse::<chrono::DateTime<chrono::Utc>>().ok();
    let (Some(start), Some(end)) = (parse(&request.start_time), parse(&request.end_time)) else {
        request.status = 400;
        let reply = invalid("start_time and end_time must be YYYY-MM-DDTHH:mm:ssZ".to_owned());
        return log(live, request, reply);
    };
    if end > now - chrono::TimeDelta::seconds(10) {
        request.status = 400;
        let reply = invalid(format!(
            "Invalid 'end_time':'{}'. 'end_time' must be a minimum of 10 seconds prior to the request time.",
            request.end_time
        ));
        return log(live, request, reply);
    }
    if start < now - chrono::TimeDelta::days(7) {
        request.status = 400;
        let reply = invalid(format!(
            "Invalid 'start_time':'{}'. 'start_time' must be on or after {}",
            request.start_time,
            (now - chrono::TimeDelta::days(7)).format("%Y-%m-%dT%H:%MZ")
        ));
        return log(live, request, reply);
    }
    let page_size = param("max_results")
        .and_then(|value| value.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(10, 100);
    let offset = request
        .next_token
        .as_deref()
        .and_then(|token| token.strip_prefix("page-"))
        .and_then(|offset| offset.parse::<usize>().ok())
        .unwrap_or(0);
    // Newest first, like X.
    let matches: Vec<&Produced> = live
        .produced
        .iter()
        .rev()
        .filter(|post| {
            post.rule == request.query && post.created_at >= start && post.created_at < end
        })
        .collect();
    let page: Vec<&Produced> = matches
        .iter()
        .skip(offset)
        .take(page_size)
        .copied()
        .collect();
    let mut data = Vec::new();
    let mut users: Vec<serde_json::Value> = Vec::new();
    let mut places: Vec<serde_json::Value> = Vec::new();
    for post in &page {
        let message: serde_json::Value = serde_json::from_str(&post.line).unwrap();
        data.push(message["data"].clone());
        for (kind, into) in [("users", &mut users), ("places", &mut places)] {
            for object in message["includes"][kind].as_array().into_iter().flatten() {
                if !into.iter().any(|known| known["id"] == object["id"]) {
                    into.push(object.clone());
                }
            }
        }
    }
    let mut meta = serde_json::json!({"result_count": page.len()});
    if let (Some(newest), Some(oldest)) = (page.first(), page.last()) {
        meta["newest_id"] = serde_json::json!(newest.id);
        meta["oldest_id"] = serde_json::json!(oldest.id);
    }
    if offset + page.len() < matches.len() {
        meta["next_token"] = serde_json::json!(format!("page-{}", offset + page.len()));
    }
    let mut body = serde_json::json!({"meta": meta});
    if !data.is_empty() {
        body["data"] = serde_json::json!(data);
        body["includes"] = serde_json::json!({"users": users, "places": places});
    }
    request.posts = page.len();
    let reply = with_headers(json(200, body.to_string()), remaining, reset);
    log(live, request, reply)
}

fn with_headers(mut reply: Reply, remaining: u64, reset: i64) -> Reply {
    let headers = reply.headers_mut();
    headers.insert("x-rate-limit-limit", "450".parse().unwrap());
    headers.insert(
        "x-rate-limit-remaining",
        remaining.to_string().parse().unwrap(),
    );
    headers.insert("x-rate-limit-reset", reset.to_string().parse().unwrap());
    reply
}

fn json(status: u16, body: String) -> Reply {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(Bytes::from(body)));
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json; charset=utf-8")
        .body(ChannelBody(rx))
        .unwrap()
}

/// A response body fed frame by frame from a channel; an `Err` breaks the connection.
#[derive(Debug)]
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|frame| frame.map(|frame| frame.map(Frame::data)))
    }
}
