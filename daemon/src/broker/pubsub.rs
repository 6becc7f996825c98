//! The Google Cloud Pub/Sub broker: ingest publishes to a topic, process pulls a subscription.
//!
//! Publishing goes through the client's batching publisher (count, bytes and delay
//! thresholds from the config). The client's queue is unbounded, so a semaphore
//! bounds the publishes not yet confirmed: a slow Pub/Sub makes the source wait
//! instead of growing memory. A failed publish is retried with backoff until it
//! succeeds or the daemon stops; the outage is logged once when it starts and once
//! when it ends. Each message carries the post id and the source in its attributes.
//!
//! With a spool ([`PubsubPublisher::spooled`], `[broker.spool]`), the same
//! durable spool the embedded broker uses sits in front of the topic: every
//! message is committed to disk first, published from there within the
//! `max_in_flight` window, and removed only once Pub/Sub confirmed its publish.
//! While Pub/Sub is slow or unreachable, messages wait on disk (bounded by
//! `max_bytes`) instead of holding the source back; a restart publishes what
//! the previous run left, oldest first, before anything new.
//!
//! Processing opens one or more streaming pulls with flow control (outstanding
//! messages and bytes). A message's [`AckToken`] acks it only after the sink
//! committed its row or the dead-letter file holds it; a nack (or a dropped token)
//! hands it back to Pub/Sub for redelivery, possibly to another daemon on the
//! same subscription.
//!
//! A streaming pull asks for, and keeps renewing, a lease of `ack_deadline_seconds`
//! on each message it holds, so a daemon that dies with messages in hand gives
//! them back after that long. [`PubsubDeadLetters`] publishes dead letters to a
//! topic when `[dead_letter] kind = "pubsub"`.
//!
//! `PUBSUB_EMULATOR_HOST` is honoured like every Google client does: it becomes an
//! explicit `http://` endpoint, and a plaintext endpoint never looks for
//! credentials (which would otherwise wait for a metadata server).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use google_cloud_auth::credentials::{self, Credentials};
use google_cloud_pubsub::client::{Publisher, Subscriber, SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::Message;
use google_cloud_pubsub::subscriber::handler::Handler;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::spool::{
    self, Forward, Settler, SpoolCloser, SpoolError, SpoolOptions, SpoolStatus, SpoolWriter,
    Spooled,
};
use super::{AckToken, Acker, BrokerClosed, Delivery, Receipt};
use crate::config::{DeadLetterTopic, PubsubConfig};
use crate::dead_letter::{DeadLetter, Stage};
use crate::stats::Stats;

/// The environment variable every Google client reads to find a Pub/Sub emulator.
pub const EMULATOR_HOST_VAR: &str = "PUBSUB_EMULATOR_HOST";

/// Why the Pub/Sub broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum PubsubError {
    /// The credentials could not be loaded.
    #[error("pubsub: credentials: {0}")]
    Credentials(String),
    /// A client could not be built.
    #[error("pubsub: building the {client} client: {message}")]
    Client {
        client: &'static str,
        message: String,
    },
    /// The topic or subscription is missing, or could not be created.
    #[error("pubsub: {resource} {name}: {message}")]
    Resource {
        resource: &'static str,
        name: String,
        message: String,
    },
}

/// Where and how to reach Pub/Sub, resolved from the config and the environment.
#[derive(Clone)]
struct Connection {
    endpoint: Option<String>,
    credentials: Credentials,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The endpoint to use: the config's, else `PUBSUB_EMULATOR_HOST` as `http://host:port`.
pub fn resolve_endpoint(configured: Option<&str>, emulator_host: Option<&str>) -> Option<String> {
    if let Some(endpoint) = configured {
        return Some(endpoint.trim_end_matches('/').to_owned());
    }
    let host = emulator_host?.trim();
    if host.is_empty() {
        return None;
    }
    if host.starts_with("http://") || host.starts_with("https://") {
        Some(host.trim_end_matches('/').to_owned())
    } else {
        Some(format!("http://{host}"))
    }
}

fn connection(config: &PubsubConfig) -> Result<Connection, PubsubError> {
    connection_to(
        config.endpoint.as_deref(),
        config.credentials_file.as_deref(),
    )
}

fn connection_to(
    configured_endpoint: Option<&str>,
    credentials_file: Option<&Path>,
) -> Result<Connection, PubsubError> {
    // The client has no crypto provider of its own (its default feature would pull
    // in aws-lc); use ring, which the rest of the daemon already links. Another
    // component may have installed it first, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let emulator = std::env::var(EMULATOR_HOST_VAR).ok();
    let endpoint = resolve_endpoint(configured_endpoint, emulator.as_deref());
    let plaintext = endpoint
        .as_deref()
        .is_some_and(|endpoint| endpoint.starts_with("http://"));
    let credentials = match credentials_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| {
                PubsubError::Credentials(format!("reading {}: {error}", path.display()))
            })?;
            let key: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
                PubsubError::Credentials(format!("{} is not JSON: {error}", path.display()))
            })?;
            credentials::service_account::Builder::new(key)
                .build()
                .map_err(|error| PubsubError::Credentials(format!("{}: {error}", path.display())))?
        }
        None if plaintext => credentials::anonymous::Builder::new().build(),
        None => credentials::Builder::default()
            .build()
            .map_err(|error| PubsubError::Credentials(error.to_string()))?,
    };
    Ok(Connection {
        endpoint,
        credentials,
    })
}

/// `projects/{project}/{kind}/{name}`, unless `name` is already a full path.
fn full_name(project: &str, kind: &str, name: &str) -> String {
    if name.starts_with("projects/") {
        name.to_owned()
    } else {
        format!("projects/{project}/{kind}/{name}")
    }
}

/// The configured topic's full resource name.
pub fn topic_name(config: &PubsubConfig) -> String {
    full_name(&config.project, "topics", &config.topic)
}

/// The configured subscription's full resource name.
pub fn subscription_name(config: &PubsubConfig) -> String {
    full_name(&config.project, "subscriptions", &config.subscription)
}

fn is_code(error: &google_cloud_pubsub::Error, code: google_cloud_gax::error::rpc::Code) -> bool {
    error.status().is_some_and(|status| status.code == code)
}

/// Creates `topic` unless it exists.
async fn create_topic(connection: &Connection, topic: &str) -> Result<(), PubsubError> {
    use google_cloud_gax::error::rpc::Code;

    let mut topics = TopicAdmin::builder().with_credentials(connection.credentials.clone());
    if let Some(endpoint) = &connection.endpoint {
        topics = topics.with_endpoint(endpoint.clone());
    }
    let topics = topics.build().await.map_err(|error| PubsubError::Client {
        client: "topic admin",
        message: error.to_string(),
    })?;
    match topics
        .create_topic()
        .set_name(topic.to_owned())
        .send()
        .await
    {
        Ok(_) => log::info!("pubsub: created topic {topic}"),
        Err(error) if is_code(&error, Code::AlreadyExists) => {}
        Err(error) => {
            return Err(PubsubError::Resource {
                resource: "topic",
                name: topic.to_owned(),
                message: error.to_string(),
            });
        }
    }
    Ok(())
}

/// Creates the topic and the subscription when they are missing.
pub async fn ensure_resources(config: &PubsubConfig) -> Result<(), PubsubError> {
    use google_cloud_gax::error::rpc::Code;

    let connection = connection(config)?;
    let topic = topic_name(config);
    let subscription = subscription_name(config);
    create_topic(&connection, &topic).await?;
    let mut subscriptions =
        SubscriptionAdmin::builder().with_credentials(connection.credentials.clone());
    if let Some(endpoint) = &connection.endpoint {
        subscriptions = subscriptions.with_endpoint(endpoint.clone());
    }
    let subscriptions = subscriptions
        .build()
        .await
        .map_err(|error| PubsubError::Client {
            client: "subscription admin",
            message: error.to_string(),
        })?;
    let created = subscriptions
        .create_subscription()
        .set_name(subscription.clone())
        .set_topic(topic)
        .set_ack_deadline_seconds(config.ack_deadline_seconds)
        .send()
        .await;
    match created {
        Ok(_) => log::info!("pubsub: created subscription {subscription}"),
        Err(error) if is_code(&error, Code::AlreadyExists) => {}
        Err(error) => {
            return Err(PubsubError::Resource {
                resource: "subscription",
                name: subscription,
                message: error.to_string(),
            });
        }
    }
    Ok(())
}

/// Publishes dead letters to a topic; [`PubsubDeadLetters::publish`] returns
/// only once Pub/Sub confirmed every letter, so their messages can be acked.
#[derive(Debug)]
pub struct PubsubDeadLetters {
    client: Publisher,
    connection: Connection,
    topic: String,
}

impl PubsubDeadLetters {
    /// Connects to the dead-letter topic, creating it first when
    /// `create_if_missing` is set.
    pub async fn connect(config: &DeadLetterTopic) -> Result<PubsubDeadLetters, PubsubError> {
        let connection = connection_to(
            config.endpoint.as_deref(),
            config.credentials_file.as_deref(),
        )?;
        let topic = config.topic_name();
        if config.create_if_missing {
            create_topic(&connection, &topic).await?;
        }
        let client = dead_letter_publisher(&connection, &topic).await?;
        Ok(PubsubDeadLetters {
            client,
            connection,
            topic,
        })
    }

    /// The topic's full resource name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes `messages` (data and attributes) and waits for every
    /// confirmation; the first failure is returned once all have settled.
    pub async fn publish(
        &mut self,
        messages: Vec<(bytes::Bytes, HashMap<String, String>)>,
    ) -> Result<(), String> {
        // `publish` hands each message to the batching publisher at once, so
        // awaiting the confirmations one after the other costs no round trips.
        let pending: Vec<_> = messages
            .into_iter()
            .map(|(data, attributes)| {
                self.client
                    .publish(Message::new().set_data(data).set_attributes(attributes))
            })
            .collect();
        let mut first_error = None;
        for confirmation in pending {
            if let Err(error) = confirmation.await {
                first_error.get_or_insert(error.to_string());
            }
        }
        let Some(error) = first_error else {
            return Ok(());
        };
        // The next batch starts on a fresh publisher, so nothing left over from
        // the failure (batches queued behind it, a broken channel) carries over.
        match dead_letter_publisher(&self.connection, &self.topic).await {
            Ok(client) => self.client = client,
            Err(rebuild) => log::warn!("dead letters: {rebuild}"),
        }
        Err(error)
    }
}

async fn dead_letter_publisher(
    connection: &Connection,
    topic: &str,
) -> Result<Publisher, PubsubError> {
    let mut builder =
        Publisher::builder(topic.to_owned()).with_credentials(connection.credentials.clone());
    if let Some(endpoint) = &connection.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    builder.build().await.map_err(|error| PubsubError::Client {
        client: "dead-letter publisher",
        message: error.to_string(),
    })
}

/// Publishes not yet confirmed: the current number and the highest seen.
#[derive(Debug, Default)]
struct InFlight {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct PublisherShared {
    client: Publisher,
    /// The topic's full name, for the log.
    topic: String,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
    in_flight: InFlight,
    /// Whether publishing works; its changes are logged, single failures are not.
    health: Health,
    /// Messages given up unconfirmed at shutdown, reported once by `flush`.
    given_up: AtomicUsize,
    /// Ingest dead letters that could not be written, on their way to the topic.
    republishing: AtomicUsize,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    /// The disk spool in front of the topic, once [`PubsubPublisher::spooled`] opened it.
    spool: OnceLock<TopicSpool>,
}

/// The spool in front of the topic.
#[derive(Debug)]
struct TopicSpool {
    writer: SpoolWriter,
    closer: SpoolCloser,
    status: Arc<SpoolStatus>,
    dir: std::path::PathBuf,
}

/// Publishes the spool's committed messages, within the `max_in_flight`
/// window: each is removed from the spool once Pub/Sub confirmed it.
struct TopicForward {
    shared: Arc<PublisherShared>,
    settler: Settler,
    runtime: tokio::runtime::Handle,
}

impl Forward for TopicForward {
    fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        // Once shutdown is requested, what is on disk waits for the next run.
        if self.shared.cancel.is_cancelled() {
            return None;
        }
        self.shared.permits.clone().try_acquire_owned().ok()
    }

    fn free_slots(&self) -> usize {
        if self.shared.cancel.is_cancelled() {
            return 0;
        }
        self.shared.permits.available_permits()
    }

    fn forward(&self, message: Spooled, slot: OwnedSemaphorePermit) {
        let shared = self.shared.clone();
        let settler = self.settler.clone();
        shared.in_flight.enter();
        self.runtime.spawn(async move {
            let Spooled {
                id,
                payload,
                source,
            } = message;
            let post_id = post_id(&payload).ok();
            let message = topic_message(&payload, post_id, source.as_deref().unwrap_or("unknown"));
            let confirmed = publish_until_confirmed(&shared, message).await;
            // The free slot wakes the writer for its backlog; the settle follows.
            drop(slot);
            if confirmed {
                settler.settle(id, payload.len() as u64);
            }
            shared.in_flight.leave();
        });
    }
}

/// The ingest side: a batching publisher with a bounded in-flight queue.
#[derive(Debug, Clone)]
pub struct PubsubPublisher {
    shared: Arc<PublisherShared>,
    source: &'static str,
    /// Where messages that are not posts go instead of the topic, when set.
    rejects: Option<IngestRejects>,
}

/// Dead-letters at ingest the messages that do not decode into a post, so junk
/// never crosses the topic. A message whose dead letter cannot be written is
/// published after all, and a process daemon dead-letters it later.
#[derive(Debug, Clone)]
struct IngestRejects {
    letters: mpsc::Sender<(DeadLetter, AckToken)>,
}

/// Settles an ingest dead letter: once written there is nothing to do; when
/// it could not be written, the message is published to the topic instead.
struct RepublishOnNack {
    publisher: PubsubPublisher,
    payload: Arc<str>,
    /// The source's receipt for the line, settled once the dead letter is
    /// written (or the message confirmed by Pub/Sub).
    receipt: Option<Receipt>,
}

impl Acker for RepublishOnNack {
    fn ack(self: Box<Self>) {
        if let Some(receipt) = self.receipt {
            receipt.settle();
        }
    }

    fn nack(self: Box<Self>, reason: &str) {
        log::warn!(
            "pubsub: a message that is not a post could not be dead-lettered at ingest ({reason}); \
             publishing it to {} so a process daemon dead-letters it",
            self.publisher.shared.topic
        );
        let RepublishOnNack {
            publisher,
            payload,
            receipt,
        } = *self;
        // Counted before this returns, so a `flush` that follows waits for it.
        let shared = publisher.shared.clone();
        shared.republishing.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Ok(permit) = shared.permits.clone().acquire_owned().await {
                let message = publisher.message(&payload, None);
                shared.in_flight.enter();
                if publish_until_confirmed(&shared, message).await
                    && let Some(receipt) = receipt
                {
                    receipt.settle();
                }
                shared.in_flight.leave();
                drop(permit);
            }
            shared.republishing.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// How long a publish may stay unconfirmed before the log calls it an outage.
const SLOW_PUBLISH: Duration = Duration::from_secs(10);

/// Longest wait between two attempts at one publish.
const MAX_PUBLISH_BACKOFF: Duration = Duration::from_secs(10);

impl PubsubPublisher {
    /// Connects a publisher to the configured topic. Retries stop when `cancel` fires.
    pub async fn connect(
        config: &PubsubConfig,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Result<PubsubPublisher, PubsubError> {
        let connection = connection(config)?;
        let mut builder = Publisher::builder(topic_name(config))
            .with_credentials(connection.credentials)
            .set_message_count_threshold(config.batch_max_messages)
            .set_byte_threshold(config.batch_max_bytes)
            .set_delay_threshold(config.batch_delay);
        if let Some(endpoint) = connection.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder.build().await.map_err(|error| PubsubError::Client {
            client: "publisher",
            message: error.to_string(),
        })?;
        Ok(PubsubPublisher {
            shared: Arc::new(PublisherShared {
                client,
                topic: topic_name(config),
                permits: Arc::new(Semaphore::new(config.max_in_flight)),
                max_in_flight: config.max_in_flight,
                in_flight: InFlight::default(),
                health: Health::default(),
                given_up: AtomicUsize::new(0),
                republishing: AtomicUsize::new(0),
                stats,
                cancel,
                spool: OnceLock::new(),
            }),
            source: "unknown",
            rejects: None,
        })
    }

    /// Puts the durable spool in `options.dir` in front of the topic (see the
    /// module docs): from now on a message is published once it is on disk,
    /// and what an earlier run left there is published first.
    pub async fn spooled(
        self,
        options: &SpoolOptions,
        status: Arc<SpoolStatus>,
    ) -> Result<PubsubPublisher, SpoolError> {
        let runtime = tokio::runtime::Handle::current();
        let shared = self.shared.clone();
        let (opening, opened_status) = (options.clone(), status.clone());
        // Opening checks (and may repair) the file: off the runtime's threads.
        let (writer, closer) = tokio::task::spawn_blocking(move || {
            spool::start(
                &opening,
                move |settler| {
                    Box::new(TopicForward {
                        shared,
                        settler,
                        runtime,
                    })
                },
                opened_status,
            )
        })
        .await
        .map_err(|error| SpoolError::Thread(std::io::Error::other(error.to_string())))??;
        let _ = self.shared.spool.set(TopicSpool {
            writer,
            closer,
            status,
            dir: options.dir.clone(),
        });
        Ok(self)
    }

    /// The same publisher, labelling its messages with `source` (a message attribute).
    pub fn with_source(&self, source: &'static str) -> PubsubPublisher {
        PubsubPublisher {
            shared: self.shared.clone(),
            source,
            rejects: self.rejects.clone(),
        }
    }

    /// The same publisher, sending messages that do not decode into a post to
    /// `letters` (the dead-letter stage) instead of the topic.
    pub fn with_dead_letters(
        &self,
        letters: mpsc::Sender<(DeadLetter, AckToken)>,
    ) -> PubsubPublisher {
        PubsubPublisher {
            rejects: Some(IngestRejects { letters }),
            ..self.clone()
        }
    }

    /// The same publisher without a dead-letter stage to send to (so holding it
    /// does not keep that stage open).
    pub fn without_dead_letters(&self) -> PubsubPublisher {
        PubsubPublisher {
            rejects: None,
            ..self.clone()
        }
    }

    /// Hands a message to the batching publisher, waiting while `max_in_flight`
    /// publishes are unconfirmed. Confirmation (and retries) happen in the background.
    /// With a spool, hands it to the spool instead (waiting only while the spool
    /// is full); [`PubsubPublisher::sync`] waits for its commit.
    ///
    /// The message is decoded as the process stage decodes it: a post is
    /// published with its `post_id` attribute; anything else is dead-lettered
    /// here when a dead-letter stage is set, else published without one.
    pub async fn publish(&self, payload: Arc<str>) -> Result<(), BrokerClosed> {
        self.publish_with_receipt(payload, None).await
    }

    /// [`PubsubPublisher::publish`], settling `receipt` once the message is
    /// as safe as this publisher makes it: committed to the spool, or its
    /// dead letter written. Without a spool the receipt is dropped unsettled
    /// ([`PubsubPublisher::settles_receipts`]).
    pub async fn publish_with_receipt(
        &self,
        payload: Arc<str>,
        receipt: Option<Receipt>,
    ) -> Result<(), BrokerClosed> {
        let post_id = match post_id(&payload) {
            Ok(id) => Some(id),
            Err(error) => match &self.rejects {
                Some(rejects) => return self.reject(rejects, payload, &error, receipt).await,
                None => None,
            },
        };
        if let Some(spool) = self.shared.spool.get() {
            // A full spool (`when_full = "block"`) frees up only as Pub/Sub
            // confirms: shutdown must not wait for that.
            return tokio::select! {
                biased;
                appended = spool.writer.append(payload, receipt, Some(self.source), None) => {
                    appended.map(drop).map_err(|_| BrokerClosed)
                }
                _ = self.shared.cancel.cancelled() => Err(BrokerClosed),
            };
        }
        self.publish_message(payload, post_id).await
    }

    /// Whether the receipts messages are published with are settled: only
    /// with a spool, which keeps a message from its commit until Pub/Sub
    /// confirmed it.
    pub fn settles_receipts(&self) -> bool {
        self.shared.spool.get().is_some()
    }

    /// Waits until every message handed over so far is committed to the
    /// spool (at once without one).
    pub async fn sync(&self) -> Result<(), BrokerClosed> {
        match self.shared.spool.get() {
            Some(spool) => spool.writer.sync().await.map_err(|_| BrokerClosed),
            None => Ok(()),
        }
    }

    async fn reject(
        &self,
        rejects: &IngestRejects,
        payload: Arc<str>,
        error: &crate::post::DecodeError,
        receipt: Option<Receipt>,
    ) -> Result<(), BrokerClosed> {
        Stats::add(&self.shared.stats.malformed, 1);
        let letter = DeadLetter::new(Stage::Decode, error.to_string(), payload.clone());
        let token = AckToken::new(
            Box::new(RepublishOnNack {
                publisher: self.without_dead_letters(),
                payload,
                receipt,
            }),
            self.shared.stats.clone(),
        );
        if let Err(unsent) = rejects.letters.send((letter, token)).await {
            // The dead-letter stage is gone: the token's nack publishes it.
            drop(unsent);
        }
        Ok(())
    }

    async fn publish_message(
        &self,
        payload: Arc<str>,
        post_id: Option<String>,
    ) -> Result<(), BrokerClosed> {
        // A free slot wins over shutdown: a source publishes what it has
        // already read (see `sources`), and only a full window gives up.
        let permit = tokio::select! {
            biased;
            permit = self.shared.permits.clone().acquire_owned() => permit.map_err(|_| BrokerClosed)?,
            _ = self.shared.cancel.cancelled() => return Err(BrokerClosed),
        };
        let message = self.message(&payload, post_id);
        let shared = self.shared.clone();
        shared.in_flight.enter();
        tokio::spawn(async move {
            let _ = publish_until_confirmed(&shared, message).await;
            shared.in_flight.leave();
            drop(permit);
        });
        Ok(())
    }

    /// The Pub/Sub message for `payload`, with its attributes.
    fn message(&self, payload: &str, post_id: Option<String>) -> Message {
        topic_message(payload, post_id, self.source)
    }

    /// Waits until every message handed over so far is confirmed (or given up
    /// at shutdown). With a spool: until the spool is empty, or until shutdown
    /// is requested, when what is not confirmed stays on disk for the next run.
    pub async fn flush(&self) {
        let spool = self.shared.spool.get();
        if let Some(spool) = spool {
            let _ = spool.writer.sync().await;
            while spool.status.messages.load(Ordering::SeqCst) > 0
                && !self.shared.cancel.is_cancelled()
            {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    _ = self.shared.cancel.cancelled() => {}
                }
            }
        }
        let all = u32::try_from(self.shared.max_in_flight).unwrap_or(u32::MAX);
        loop {
            if let Ok(permits) = self.shared.permits.acquire_many(all).await {
                drop(permits);
            }
            // A spooled publish settles after it frees its slot: wait for it too.
            if self.shared.republishing.load(Ordering::SeqCst) == 0
                && (spool.is_none() || self.in_flight() == 0)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let given_up = self.shared.given_up.swap(0, Ordering::SeqCst);
        if let Some(spool) = spool {
            // The settles of what was confirmed reach the writer before it closes.
            let _ = spool.writer.sync().await;
            if given_up > 0 {
                log::warn!(
                    "pubsub: {given_up} messages were not confirmed by {} before shutdown; they stay in the spool ({}) and the next start publishes them first",
                    self.shared.topic,
                    spool.dir.display()
                );
            }
        } else if given_up > 0 {
            log::error!(
                "pubsub: {given_up} messages were read but not confirmed by {} before shutdown; \
                 read them again from the source (replay the file; X does not resend them, but `[source.x] gap_recovery = \"search\"` searches again from `gap_overlap_secs` before the last post received)",
                self.shared.topic
            );
        }
    }

    /// Once the last [`PubsubPublisher::flush`] is done: commits the spool's
    /// last removals and stops its writer (nothing without a spool).
    pub async fn close_spool(&self) {
        let Some(spool) = self.shared.spool.get() else {
            return;
        };
        spool.closer.close().await;
        let left = spool.status.messages.load(Ordering::SeqCst);
        if left > 0 {
            log::info!(
                "pubsub: {left} messages wait in the spool ({}) for {}; the next start publishes them first",
                spool.dir.display(),
                self.shared.topic
            );
        }
    }

    /// Unconfirmed publishes right now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.now.load(Ordering::SeqCst)
    }

    /// The most unconfirmed publishes there ever were at once.
    pub fn in_flight_peak(&self) -> usize {
        self.shared.in_flight.peak.load(Ordering::SeqCst)
    }
}

/// The Pub/Sub message for `payload`, with its attributes.
fn topic_message(payload: &str, post_id: Option<String>, source: &str) -> Message {
    let mut attributes = HashMap::with_capacity(2);
    if let Some(id) = post_id {
        attributes.insert("post_id".to_owned(), id);
    }
    attributes.insert("source".to_owned(), source.to_owned());
    Message::new()
        .set_data(bytes::Bytes::copy_from_slice(payload.as_bytes()))
        .set_attributes(attributes)
}

/// Publishes `message` until Pub/Sub confirms it (true) or shutdown gives it up (false).
async fn publish_until_confirmed(shared: &PublisherShared, message: Message) -> bool {
    let mut attempt = 0u32;
    loop {
        let mut started = shared.health.epoch();
        let publish = shared.client.publish(message.clone());
        tokio::pin!(publish);
        let slow = tokio::time::sleep(SLOW_PUBLISH);
        tokio::pin!(slow);
        let mut is_slow = false;
        // Unreachable Pub/Sub often fails no call: the client library retries
        // the connection underneath. A publish unconfirmed for SLOW_PUBLISH
        // counts as the start of an outage, so the log says so.
        let result = loop {
            tokio::select! {
                biased;
                result = &mut publish => break result,
                _ = &mut slow, if !is_slow => {
                    is_slow = true;
                    if shared.health.failed(started) {
                        log::warn!(
                            "pubsub: publishing to {} failed, retrying until it works: no confirmation for {} s (Pub/Sub is slow or unreachable)",
                            shared.topic,
                            SLOW_PUBLISH.as_secs()
                        );
                    }
                    // Its success now ends the outage it started (or joined).
                    started = shared.health.epoch();
                }
                // A healthy publish finishes at shutdown; one already waiting
                // for an unreachable Pub/Sub is given up (with a spool, it
                // stays on disk for the next run).
                _ = shared.cancel.cancelled(), if is_slow => {
                    shared.given_up.fetch_add(1, Ordering::SeqCst);
                    return false;
                }
            }
        };
        match result {
            Ok(_) => {
                Stats::add(&shared.stats.published, 1);
                if shared.health.succeeded(started) {
                    log::info!("pubsub: publishing to {} works again", shared.topic);
                }
                return true;
            }
            Err(error) => {
                attempt += 1;
                if shared.health.failed(started) {
                    log::warn!(
                        "pubsub: publishing to {} failed, retrying until it works: {error}",
                        shared.topic
                    );
                }
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(7)))
                    .min(MAX_PUBLISH_BACKOFF);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shared.cancel.cancelled() => {
                        shared.given_up.fetch_add(1, Ordering::SeqCst);
                        return false;
                    }
                }
            }
        }
    }
}

/// Whether calls to Pub/Sub work, for logging an outage once when it starts and
/// once when it ends however many calls fail or succeed meanwhile.
///
/// Each call reports with the epoch it started in, and only a call started in
/// the current state can change it: a late failure of a call made before the
/// recovery (or a late success of one made before the outage) is not news.
#[derive(Debug, Default)]
struct Health {
    /// Even while calls work, odd while they fail; bumped on every change.
    epoch: AtomicU64,
}

impl Health {
    /// The epoch to report a call with; read it before making the call.
    fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A call started in `started` failed; true when this starts an outage.
    fn failed(&self, started: u64) -> bool {
        started.is_multiple_of(2)
            && self
                .epoch
                .compare_exchange(started, started + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }

    /// A call started in `started` worked; true when this ends an outage.
    fn succeeded(&self, started: u64) -> bool {
        !started.is_multiple_of(2)
            && self
                .epoch
                .compare_exchange(started, started + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
    }
}

/// The post id of a raw message, read by the decoder the process stage uses, so
/// every shape it accepts (X API v2 `data.id`, v1.1 `id_str` or a numeric `id`)
/// gets the `post_id` attribute; why not when the message is not a post.
fn post_id(payload: &str) -> Result<String, crate::post::DecodeError> {
    crate::post::decode(payload).map(|post| post.id)
}

/// Attempts and last nack reason of messages nacked by this daemon, by message id.
/// Pub/Sub only counts deliveries when the subscription has a dead-letter policy.
type Attempts = Arc<Mutex<HashMap<String, (u32, String)>>>;

/// Entries kept before the table is reset (a memory bound, not a correctness one).
const MAX_TRACKED_ATTEMPTS: usize = 100_000;

/// The process side: streaming pulls feeding one queue of deliveries.
#[derive(Debug)]
pub struct PubsubSubscriber {
    rx: mpsc::Receiver<(Message, Handler)>,
    attempts: Attempts,
    stats: Arc<Stats>,
    cancel: CancellationToken,
}

/// Stops a [`PubsubSubscriber`]'s streams and waits for their acks to be sent.
#[derive(Debug, Clone)]
pub struct PubsubControl {
    tasks: Arc<tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    stop: CancellationToken,
}

impl PubsubControl {
    /// Stops pulling and waits until the acks and nacks given so far are sent.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl PubsubSubscriber {
    /// Opens `config.streams` streaming pulls on the configured subscription.
    /// [`PubsubSubscriber::recv_many`] returns nothing once `cancel` fires.
    pub async fn connect(
        config: &PubsubConfig,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Result<(PubsubSubscriber, PubsubControl), PubsubError> {
        let connection = connection(config)?;
        let mut builder = Subscriber::builder().with_credentials(connection.credentials);
        if let Some(endpoint) = connection.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let client = builder.build().await.map_err(|error| PubsubError::Client {
            client: "subscriber",
            message: error.to_string(),
        })?;
        let subscription = subscription_name(config);
        let capacity = usize::try_from(config.max_outstanding_messages)
            .unwrap_or(1)
            .clamp(1, 100_000);
        let (tx, rx) = mpsc::channel(capacity);
        let stop = CancellationToken::new();
        let settings = StreamSettings {
            subscription: subscription.clone(),
            max_messages: config.max_outstanding_messages,
            max_bytes: config.max_outstanding_bytes,
            lease: ack_deadline(config),
        };
        // One health for all streams: an outage is logged once, not once per stream.
        let health = Arc::new(Health::default());
        let mut tasks = Vec::with_capacity(config.streams);
        for _ in 0..config.streams {
            tasks.push(tokio::spawn(pull(
                client.clone(),
                settings.clone(),
                tx.clone(),
                health.clone(),
                stop.clone(),
            )));
        }
        Ok((
            PubsubSubscriber {
                rx,
                attempts: Arc::default(),
                stats,
                cancel,
            },
            PubsubControl {
                tasks: Arc::new(tokio::sync::Mutex::new(tasks)),
                stop,
            },
        ))
    }

    /// A subscriber that never pulls (a daemon that only ingests).
    pub fn idle(stats: Arc<Stats>, cancel: CancellationToken) -> (PubsubSubscriber, PubsubControl) {
        let (_, rx) = mpsc::channel(1);
        (
            PubsubSubscriber {
                rx,
                attempts: Arc::default(),
                stats,
                cancel,
            },
            PubsubControl {
                tasks: Arc::default(),
                stop: CancellationToken::new(),
            },
        )
    }

    /// Waits for at least one message and returns up to `max` ready ones; an
    /// empty vector means the pipeline is stopping.
    pub async fn recv_many(&mut self, max: usize) -> Vec<Delivery> {
        let mut received = Vec::with_capacity(max.min(1024));
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Vec::new(),
            _ = self.rx.recv_many(&mut received, max) => {}
        }
        received
            .into_iter()
            .map(|(message, handler)| self.deliver(message, handler))
            .collect()
    }

    fn deliver(&self, message: Message, handler: Handler) -> Delivery {
        // JSON is UTF-8: anything else is dead-lettered, its bytes kept in base64.
        let (payload, payload_base64): (Arc<str>, bool) = match std::str::from_utf8(&message.data) {
            Ok(text) => (Arc::from(text), false),
            Err(_) => (Arc::from(BASE64_STANDARD.encode(&message.data)), true),
        };
        let earlier = self
            .attempts
            .lock()
            .expect("the attempts table is never poisoned")
            .get(&message.message_id)
            .cloned();
        let counted = handler
            .delivery_attempt()
            .and_then(|attempt| u32::try_from(attempt).ok());
        let (attempt, last_error) = match (counted, earlier) {
            (Some(attempt), earlier) => (attempt, earlier.map(|(_, reason)| reason)),
            (None, Some((nacks, reason))) => (nacks + 1, Some(reason)),
            (None, None) => (1, None),
        };
        Delivery {
            payload,
            attempt,
            last_error,
            payload_base64,
            token: AckToken::new(
                Box::new(PubsubAcker {
                    handler,
                    message_id: message.message_id,
                    attempt,
                    attempts: self.attempts.clone(),
                }),
                self.stats.clone(),
            ),
        }
    }
}

/// The lease a streaming pull asks for and keeps renewing: the configured ack deadline.
///
/// A streaming pull does not use the subscription's ack deadline: it sends its
/// own (`stream_ack_deadline_seconds`) and extends each message's lease by it
/// until the message is settled. The client's default is 60 s whatever the
/// subscription says, so a daemon killed with messages in hand kept them from
/// everyone for a minute even with `ack_deadline_seconds = 10`. Using the same
/// value makes `ack_deadline_seconds` what a dead daemon's messages wait.
fn ack_deadline(config: &PubsubConfig) -> Duration {
    Duration::from_secs(u64::try_from(config.ack_deadline_seconds).unwrap_or(60))
}

/// What each streaming pull asks for.
#[derive(Debug, Clone)]
struct StreamSettings {
    subscription: String,
    /// Flow control: messages and bytes leased and not yet settled.
    max_messages: i64,
    max_bytes: i64,
    /// The lease asked for and renewed ([`ack_deadline`]).
    lease: Duration,
}

/// One streaming pull, reopened with backoff when it fails, until `stop` fires.
async fn pull(
    client: Subscriber,
    settings: StreamSettings,
    tx: mpsc::Sender<(Message, Handler)>,
    health: Arc<Health>,
    stop: CancellationToken,
) {
    let StreamSettings {
        subscription,
        max_messages,
        max_bytes,
        lease,
    } = settings;
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let started = health.epoch();
        let mut stream = client
            .subscribe(subscription.clone())
            .set_max_outstanding_messages(max_messages)
            .set_max_outstanding_bytes(max_bytes)
            .set_max_lease_extension(lease)
            .build();
        let shutdown = stream.shutdown_token();
        let ended = loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break None,
                next = stream.next() => next,
            };
            match next {
                Some(Ok(received)) => {
                    failures = 0;
                    if health.succeeded(started) {
                        log::info!("pubsub: pulling {subscription} works again");
                    }
                    // A full queue holds the stream: flow control does the rest.
                    let sent = tokio::select! {
                        sent = tx.send(received) => sent.is_ok(),
                        _ = stop.cancelled() => false,
                    };
                    if !sent {
                        break None;
                    }
                }
                Some(Err(error)) => break Some(error.to_string()),
                None => break Some("the stream ended".to_owned()),
            }
        };
        // Waits for the acks of delivered messages; undelivered ones are redelivered.
        shutdown.shutdown().await;
        let Some(error) = ended else {
            return;
        };
        failures += 1;
        if health.failed(started) {
            log::warn!(
                "pubsub: pulling {subscription} failed, reconnecting until it works: {error}"
            );
        }
        let backoff = Duration::from_millis(200u64.saturating_mul(1 << failures.min(6)));
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
    }
}

struct PubsubAcker {
    handler: Handler,
    message_id: String,
    attempt: u32,
    attempts: Attempts,
}

impl Acker for PubsubAcker {
    fn ack(self: Box<Self>) {
        if self.attempt > 1 {
            self.attempts
                .lock()
                .expect("the attempts table is never poisoned")
                .remove(&self.message_id);
        }
        self.handler.ack();
    }

    fn nack(self: Box<Self>, reason: &str) {
        let PubsubAcker {
            handler,
            message_id,
            attempt,
            attempts,
        } = *self;
        {
            let mut attempts = attempts
                .lock()
                .expect("the attempts table is never poisoned");
            if attempts.len() >= MAX_TRACKED_ATTEMPTS {
                attempts.clear();
            }
            attempts.insert(message_id, (attempt, reason.to_owned()));
        }
        handler.nack();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_host_becomes_a_plaintext_endpoint() {
        assert_eq!(
            resolve_endpoint(None, Some("127.0.0.1:8085")).as_deref(),
            Some("http://127.0.0.1:8085")
        );
        assert_eq!(resolve_endpoint(None, Some("  ")), None);
        assert_eq!(resolve_endpoint(None, None), None);
    }

    #[test]
    fn configured_endpoint_wins_over_the_emulator() {
        assert_eq!(
            resolve_endpoint(
                Some("https://europe-west1-pubsub.googleapis.com/"),
                Some("h:1")
            )
            .as_deref(),
            Some("https://europe-west1-pubsub.googleapis.com")
        );
    }

    #[test]
    fn post_id_is_read_from_either_shape() {
        assert_eq!(
            post_id(r#"{"data":{"id":"17","text":"x"},"includes":{}}"#)
                .ok()
                .as_deref(),
            Some("17")
        );
        assert_eq!(
            post_id(r#"{"id_str":"18","text":"x"}"#).ok().as_deref(),
            Some("18")
        );
        // What the process stage cannot decode gets no `post_id`.
        assert_eq!(post_id(r#"{"data":{"text":"no id"}}"#).ok(), None);
        assert_eq!(post_id("not json").ok(), None);
    }

    /// v1.1 statuses were published without `post_id`: their numeric `id` failed
    /// a string-only parse and `id_str` was never read.
    #[test]
    fn post_id_is_read_from_v1_statuses() {
        let status = r#"{"created_at":"Wed Oct 10 20:19:24 +0000 2018","id":1050118621198921728,"id_str":"1050118621198921728","text":"hi","user":{"id":6253282,"id_str":"6253282","screen_name":"api","name":"API"}}"#;
        assert_eq!(post_id(status).ok().as_deref(), Some("1050118621198921728"));
        let numeric_only =
            r#"{"id":1050118621198921729,"text":"hi","user":{"id_str":"1","screen_name":"a"}}"#;
        assert_eq!(
            post_id(numeric_only).ok().as_deref(),
            Some("1050118621198921729")
        );
    }

    #[test]
    fn short_names_get_the_project_prefix() {
        assert_eq!(full_name("p", "topics", "t"), "projects/p/topics/t");
        assert_eq!(
            full_name("p", "topics", "projects/q/topics/t"),
            "projects/q/topics/t"
        );
    }
}
