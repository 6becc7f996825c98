//! The broker carries raw messages from ingest to process, with an ack contract.
//!
//! Every [`Delivery`] carries an [`AckToken`]. The process stage acks it only when
//! every row the message produced is committed by the sink or written to the
//! dead-letter destination; a token dropped unresolved is a nack, so a message can
//! be delivered twice but never lost. The embedded broker is a bounded in-process
//! queue with the same contract Pub/Sub has; [`pubsub`] is Google Cloud Pub/Sub.

use std::sync::Arc;

use crate::stats::Stats;

pub mod embedded;
pub mod pubsub;
pub mod spool;

pub use embedded::{EmbeddedPublisher, EmbeddedSubscriber, embedded, embedded_spooled};
pub use pubsub::{PubsubControl, PubsubPublisher, PubsubSubscriber};

/// Settles one delivery with the broker it came from.
pub trait Acker: Send + 'static {
    /// The message is done with: never deliver it again.
    fn ack(self: Box<Self>);
    /// The message was not processed: deliver it again later.
    fn nack(self: Box<Self>, reason: &str);
}

/// Where a source learns that the messages it published are settled; see [`Receipt`].
pub trait SettleLog: Send + Sync + 'static {
    /// The message published with receipt number `seq` is settled.
    fn settled(&self, seq: u64);
}

/// A message's number in its source's [`SettleLog`], carried with the message
/// from publish to ack: the ack (its rows committed, or the message
/// dead-lettered) tells the log. A message released unsettled never does, so a
/// source that records how far it is settled (a replay's position) never
/// records past a message that was not.
pub struct Receipt {
    log: Arc<dyn SettleLog>,
    seq: u64,
}

impl std::fmt::Debug for Receipt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receipt").field("seq", &self.seq).finish()
    }
}

impl Receipt {
    pub fn new(log: Arc<dyn SettleLog>, seq: u64) -> Receipt {
        Receipt { log, seq }
    }

    /// Tells the log that the message is settled.
    pub fn settle(self) {
        self.log.settled(self.seq);
    }
}

/// The obligation to settle a delivery; dropping it unresolved nacks.
pub struct AckToken {
    acker: Option<Box<dyn Acker>>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for AckToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AckToken")
            .field("settled", &self.acker.is_none())
            .finish()
    }
}

impl AckToken {
    /// Wraps a broker-specific acker.
    pub fn new(acker: Box<dyn Acker>, stats: Arc<Stats>) -> AckToken {
        AckToken {
            acker: Some(acker),
            stats,
        }
    }

    /// The message's rows are committed (or dead-lettered): release it.
    pub fn ack(mut self) {
        if let Some(acker) = self.acker.take() {
            Stats::add(&self.stats.acked, 1);
            acker.ack();
        }
    }

    /// The message could not be committed: have it delivered again.
    pub fn nack(mut self, reason: &str) {
        if let Some(acker) = self.acker.take() {
            Stats::add(&self.stats.nacked, 1);
            acker.nack(reason);
        }
    }
}

impl Drop for AckToken {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            Stats::add(&self.stats.nacked, 1);
            acker.nack("dropped before it was committed");
        }
    }
}

/// One message handed to the process stage.
#[derive(Debug)]
pub struct Delivery {
    /// The message as the source published it (one JSON post).
    pub payload: Arc<str>,
    /// 1 for the first delivery, 2 for the first redelivery, …
    pub attempt: u32,
    /// Why the previous delivery was nacked, if it was.
    pub last_error: Option<String>,
    /// The message was not UTF-8 text: `payload` holds its bytes in base64, so
    /// its dead letter keeps them exactly.
    pub payload_base64: bool,
    /// Settle this once the message's rows are committed.
    pub token: AckToken,
}

/// The broker is closed: no more messages can be published.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the broker is closed")]
pub struct BrokerClosed;

/// The ingest side of whichever broker is configured.
#[derive(Debug, Clone)]
pub enum Publisher {
    Embedded(EmbeddedPublisher),
    Pubsub(PubsubPublisher),
}

impl Publisher {
    /// Publishes one message, waiting while the broker applies backpressure.
    pub async fn publish(&self, payload: Arc<str>) -> Result<(), BrokerClosed> {
        match self {
            Publisher::Embedded(publisher) => publisher.publish(payload).await,
            Publisher::Pubsub(publisher) => publisher.publish(payload).await,
        }
    }

    /// Publishes a message whose ack settles `receipt`: the embedded queue
    /// settles it once the message is committed downstream (or to its spool),
    /// Pub/Sub once it is committed to the spool in front of the topic;
    /// without one, Pub/Sub drops it ([`Publisher::settles_receipts`]).
    pub async fn publish_with_receipt(
        &self,
        payload: Arc<str>,
        receipt: Receipt,
    ) -> Result<(), BrokerClosed> {
        match self {
            Publisher::Embedded(publisher) => {
                publisher.publish_with_receipt(payload, receipt).await
            }
            Publisher::Pubsub(publisher) => {
                publisher.publish_with_receipt(payload, Some(receipt)).await
            }
        }
    }

    /// Waits until every message published so far is as durable as this
    /// broker makes it before the source reads on: with a spool, committed to
    /// disk (one group commit for everything handed over meanwhile); without
    /// one, at once. Sources call it once per chunk they read, not per message.
    pub async fn sync(&self) -> Result<(), BrokerClosed> {
        match self {
            Publisher::Embedded(publisher) => publisher.sync().await,
            Publisher::Pubsub(publisher) => publisher.sync().await,
        }
    }

    /// Whether this broker settles the receipts messages are published with.
    pub fn settles_receipts(&self) -> bool {
        match self {
            Publisher::Embedded(_) => true,
            Publisher::Pubsub(publisher) => publisher.settles_receipts(),
        }
    }

    /// The same publisher for a source that can wait (a replay's file): see
    /// [`EmbeddedPublisher::paced`]. Pub/Sub's publisher is unchanged.
    pub fn paced(self) -> Publisher {
        match self {
            Publisher::Embedded(publisher) => Publisher::Embedded(publisher.paced()),
            Publisher::Pubsub(publisher) => Publisher::Pubsub(publisher),
        }
    }

    /// The same publisher, labelling what it publishes with `source` where the
    /// broker keeps attributes (Pub/Sub).
    pub fn with_source(&self, source: &'static str) -> Publisher {
        match self {
            Publisher::Embedded(publisher) => Publisher::Embedded(publisher.clone()),
            Publisher::Pubsub(publisher) => Publisher::Pubsub(publisher.with_source(source)),
        }
    }
}

/// The process side of whichever broker is configured.
#[derive(Debug)]
pub enum Subscriber {
    Embedded(EmbeddedSubscriber),
    Pubsub(PubsubSubscriber),
}

impl Subscriber {
    /// Waits for at least one message and returns up to `max` ready ones; an
    /// empty vector means the broker is closed and drained.
    pub async fn recv_many(&mut self, max: usize) -> Vec<Delivery> {
        match self {
            Subscriber::Embedded(subscriber) => subscriber.recv_many(max).await,
            Subscriber::Pubsub(subscriber) => subscriber.recv_many(max).await,
        }
    }
}
