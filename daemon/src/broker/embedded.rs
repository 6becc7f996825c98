//! The embedded broker: a bounded in-process queue for running with no cloud account.
//!
//! Capacity counts messages queued *and* in flight (delivered but not yet acked),
//! so a slow sink backpressures the source instead of growing memory. A nacked
//! message is queued again after a short delay. Once the queue is closing (the
//! pipeline is shutting down), nacked messages are released and counted as
//! abandoned; their source still holds them (a replay file is simply run again).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::{AckToken, Acker, BrokerClosed, Delivery, Receipt};
use crate::stats::Stats;

struct Envelope {
    payload: Arc<str>,
    attempt: u32,
    last_error: Option<String>,
    permit: OwnedSemaphorePermit,
    /// Settled on ack, so the source knows (a replay's position).
    receipt: Option<Receipt>,
    /// Every queued or unsettled message keeps the queue open, so a nack can
    /// always put it back; the stream ends once none is left.
    requeue: mpsc::UnboundedSender<Envelope>,
}

#[derive(Debug, Default)]
struct Shared {
    closing: AtomicBool,
    abandoned: AtomicU64,
}

/// Creates an embedded queue holding at most `capacity` unacknowledged messages.
pub fn embedded(capacity: usize, stats: Arc<Stats>) -> (EmbeddedPublisher, EmbeddedSubscriber) {
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(capacity));
    let shared = Arc::new(Shared::default());
    (
        EmbeddedPublisher {
            tx: tx.clone(),
            permits,
            stats: stats.clone(),
        },
        EmbeddedSubscriber { rx, shared, stats },
    )
}

/// The ingest side of the embedded queue. Dropping every publisher (and settling
/// every delivery) ends the subscriber's stream.
#[derive(Debug, Clone)]
pub struct EmbeddedPublisher {
    tx: mpsc::UnboundedSender<Envelope>,
    permits: Arc<Semaphore>,
    stats: Arc<Stats>,
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPublisher {
    /// Queues a message, waiting while the queue is full.
    pub async fn publish(&self, payload: Arc<str>) -> Result<(), BrokerClosed> {
        self.publish_envelope(payload, None).await
    }

    /// Queues a message whose ack settles `receipt`.
    pub async fn publish_with_receipt(
        &self,
        payload: Arc<str>,
        receipt: Receipt,
    ) -> Result<(), BrokerClosed> {
        self.publish_envelope(payload, Some(receipt)).await
    }

    async fn publish_envelope(
        &self,
        payload: Arc<str>,
        receipt: Option<Receipt>,
    ) -> Result<(), BrokerClosed> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrokerClosed)?;
        self.tx
            .send(Envelope {
                payload,
                attempt: 1,
                last_error: None,
                permit,
                receipt,
                requeue: self.tx.clone(),
            })
            .map_err(|_| BrokerClosed)?;
        Stats::add(&self.stats.published, 1);
        Ok(())
    }
}

/// The process side of the embedded queue.
#[derive(Debug)]
pub struct EmbeddedSubscriber {
    rx: mpsc::UnboundedReceiver<Envelope>,
    shared: Arc<Shared>,
    stats: Arc<Stats>,
}

impl EmbeddedSubscriber {
    /// Waits for at least one message and returns up to `max` that are ready;
    /// an empty vector means the queue is closed and drained.
    pub async fn recv_many(&mut self, max: usize) -> Vec<Delivery> {
        let mut envelopes = Vec::with_capacity(max.min(1024));
        self.rx.recv_many(&mut envelopes, max).await;
        envelopes
            .into_iter()
            .map(|envelope| self.deliver(envelope))
            .collect()
    }

    fn deliver(&self, envelope: Envelope) -> Delivery {
        let Envelope {
            payload,
            attempt,
            last_error,
            permit,
            receipt,
            requeue,
        } = envelope;
        Delivery {
            payload: payload.clone(),
            attempt,
            last_error,
            payload_base64: false,
            token: AckToken::new(
                Box::new(EmbeddedAcker {
                    payload,
                    attempt,
                    permit,
                    receipt,
                    requeue,
                    shared: self.shared.clone(),
                }),
                self.stats.clone(),
            ),
        }
    }

    /// From now on, nacked messages are released instead of queued again.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }

    /// A handle that can close the queue from another task.
    pub fn closer(&self) -> EmbeddedCloser {
        EmbeddedCloser {
            shared: self.shared.clone(),
        }
    }

    /// Messages released unprocessed while closing.
    pub fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
    }
}

/// Closes an embedded queue from another task (see [`EmbeddedSubscriber::close`]).
#[derive(Debug, Clone)]
pub struct EmbeddedCloser {
    shared: Arc<Shared>,
}

impl EmbeddedCloser {
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
    }

    /// Messages released unprocessed while closing.
    pub fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
    }
}

struct EmbeddedAcker {
    payload: Arc<str>,
    attempt: u32,
    permit: OwnedSemaphorePermit,
    receipt: Option<Receipt>,
    requeue: mpsc::UnboundedSender<Envelope>,
    shared: Arc<Shared>,
}

/// How long a nacked message waits before it is queued again.
fn redelivery_delay(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(8)))
}

impl Acker for EmbeddedAcker {
    fn ack(self: Box<Self>) {
        if let Some(receipt) = self.receipt {
            receipt.settle();
        }
        // Dropping the permit frees a slot for the source.
    }

    fn nack(self: Box<Self>, reason: &str) {
        let EmbeddedAcker {
            payload,
            attempt,
            permit,
            receipt,
            requeue,
            shared,
        } = *self;
        let (false, Ok(handle)) = (
            shared.closing.load(Ordering::SeqCst),
            tokio::runtime::Handle::try_current(),
        ) else {
            shared.abandoned.fetch_add(1, Ordering::SeqCst);
            return;
        };
        let envelope = Envelope {
            payload,
            attempt: attempt + 1,
            last_error: Some(reason.to_owned()),
            permit,
            receipt,
            requeue: requeue.clone(),
        };
        let delay = redelivery_delay(attempt);
        handle.spawn(async move {
            tokio::time::sleep(delay).await;
            if shared.closing.load(Ordering::SeqCst) {
                shared.abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
            // The receiver only goes away when the pipeline has stopped.
            if requeue.send(envelope).is_err() {
                shared.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_ends_when_publishers_are_gone_and_all_is_acked() {
        let stats = Arc::new(Stats::default());
        let (publisher, mut subscriber) = embedded(4, stats.clone());
        publisher.publish("a".into()).await.unwrap();
        publisher.publish("b".into()).await.unwrap();
        drop(publisher);
        let deliveries = subscriber.recv_many(10).await;
        assert_eq!(deliveries.len(), 2);
        for delivery in deliveries {
            delivery.token.ack();
        }
        assert!(subscriber.recv_many(10).await.is_empty());
        assert_eq!(stats.snapshot().acked, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn nacked_message_comes_back_with_its_attempt_and_reason() {
        let stats = Arc::new(Stats::default());
        let (publisher, mut subscriber) = embedded(4, stats.clone());
        publisher.publish("a".into()).await.unwrap();
        drop(publisher);
        let first = subscriber.recv_many(10).await.pop().unwrap();
        assert_eq!(first.attempt, 1);
        first.token.nack("sink down");
        let second = subscriber.recv_many(10).await.pop().unwrap();
        assert_eq!(&*second.payload, "a");
        assert_eq!(second.attempt, 2);
        assert_eq!(second.last_error.as_deref(), Some("sink down"));
        drop(second); // an unsettled token is a nack
        let third = subscriber.recv_many(10).await.pop().unwrap();
        assert_eq!(third.attempt, 3);
        third.token.ack();
        assert!(subscriber.recv_many(10).await.is_empty());
        assert_eq!(stats.snapshot().nacked, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn publisher_waits_while_unacked_messages_fill_the_capacity() {
        let stats = Arc::new(Stats::default());
        let (publisher, mut subscriber) = embedded(2, stats);
        publisher.publish("a".into()).await.unwrap();
        publisher.publish("b".into()).await.unwrap();
        let held = subscriber.recv_many(10).await;
        assert_eq!(held.len(), 2);
        let blocked =
            tokio::time::timeout(Duration::from_secs(5), publisher.publish("c".into())).await;
        assert!(
            blocked.is_err(),
            "publish must wait while 2 of 2 are in flight"
        );
        let mut held = held.into_iter();
        held.next().unwrap().token.ack();
        publisher.publish("c".into()).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn nack_while_closing_releases_the_message() {
        let stats = Arc::new(Stats::default());
        let (publisher, mut subscriber) = embedded(2, stats);
        publisher.publish("a".into()).await.unwrap();
        drop(publisher);
        let delivery = subscriber.recv_many(1).await.pop().unwrap();
        subscriber.close();
        delivery.token.nack("shutting down");
        assert!(subscriber.recv_many(1).await.is_empty());
        assert_eq!(subscriber.abandoned(), 1);
    }
}
