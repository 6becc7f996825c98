//! The embedded broker: a bounded in-process queue for running with no cloud account.
//!
//! Capacity counts messages queued *and* in flight (delivered but not yet acked),
//! so a slow sink backpressures the source instead of growing memory. A nacked
//! message is queued again after a short delay. Once the queue is closing (the
//! pipeline is shutting down), nacked messages are released and counted as
//! abandoned; their source still holds them (a replay file is simply run again).
//!
//! With a [`spool`](super::spool) ([`embedded_spooled`]), a message is published
//! to disk, delivered from there once committed and removed when settled: then
//! `capacity` bounds only what is in memory, the spool's `max_bytes` what waits
//! on disk, and an abandoned message is delivered again by the next run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::spool::{
    self, Appended, Forward, Settler, SpoolCloser, SpoolOptions, SpoolStatus, SpoolWriter, Spooled,
};
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
    /// The message's place in the spool (id, payload bytes), removed when acked.
    spooled: Option<(i64, Settler)>,
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
            tx: Some(tx.clone()),
            permits,
            spool: None,
            stats: stats.clone(),
            paced: false,
        },
        EmbeddedSubscriber {
            rx,
            shared,
            stats,
            spool: None,
        },
    )
}

/// Creates an embedded queue in front of the durable spool in `options.dir`:
/// what the spool holds from a previous run is delivered first.
pub fn embedded_spooled(
    capacity: usize,
    stats: Arc<Stats>,
    options: &SpoolOptions,
    status: Arc<SpoolStatus>,
) -> Result<(EmbeddedPublisher, EmbeddedSubscriber), spool::SpoolError> {
    let (tx, rx) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(capacity));
    let forward_permits = permits.clone();
    let (writer, closer) = spool::start(
        options,
        move |settler| {
            Box::new(QueueForward {
                tx,
                permits: forward_permits,
                settler,
            })
        },
        status,
    )?;
    let shared = Arc::new(Shared::default());
    Ok((
        EmbeddedPublisher {
            tx: None,
            permits,
            spool: Some(Arc::new(PublisherSpool { writer })),
            stats: stats.clone(),
            paced: false,
        },
        EmbeddedSubscriber {
            rx,
            shared,
            stats,
            spool: Some(Arc::new(closer)),
        },
    ))
}

/// Hands the spool's committed messages to the in-memory queue.
struct QueueForward {
    tx: mpsc::UnboundedSender<Envelope>,
    permits: Arc<Semaphore>,
    settler: Settler,
}

impl Forward for QueueForward {
    fn try_slot(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    fn free_slots(&self) -> usize {
        self.permits.available_permits()
    }

    fn forward(&self, message: Spooled, slot: OwnedSemaphorePermit) {
        let _ = self.tx.send(Envelope {
            payload: message.payload,
            attempt: 1,
            last_error: None,
            permit: slot,
            receipt: None,
            requeue: self.tx.clone(),
            spooled: Some((message.id, self.settler.clone())),
        });
    }
}

/// The spool's writer, shared by a publisher and its clones: when the last one
/// is dropped, the spool is told, so the queue can end.
struct PublisherSpool {
    writer: SpoolWriter,
}

impl Drop for PublisherSpool {
    fn drop(&mut self) {
        self.writer.publishers_gone();
    }
}

/// The ingest side of the embedded queue. Dropping every publisher (and settling
/// every delivery) ends the subscriber's stream.
#[derive(Clone)]
pub struct EmbeddedPublisher {
    /// The in-memory queue; `None` when messages go through the spool.
    tx: Option<mpsc::UnboundedSender<Envelope>>,
    permits: Arc<Semaphore>,
    spool: Option<Arc<PublisherSpool>>,
    stats: Arc<Stats>,
    /// Waits for a slot in the in-memory queue before appending to the spool
    /// ([`EmbeddedPublisher::paced`]).
    paced: bool,
}

impl std::fmt::Debug for EmbeddedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedPublisher")
            .field("spooled", &self.spool.is_some())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Envelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl EmbeddedPublisher {
    /// Queues a message, waiting while the queue is full; with a spool, hands it
    /// to the spool's writer, waiting while the spool is full.
    pub async fn publish(&self, payload: Arc<str>) -> Result<(), BrokerClosed> {
        self.publish_envelope(payload, None).await
    }

    /// The same publisher for a source that can wait, such as a file: with a
    /// spool, each message still goes to disk before it is processed, but
    /// only once the in-memory queue has a slot for it, as without a spool.
    /// A live stream, which cannot wait, runs ahead into the spool instead,
    /// and what waits there is read back from disk.
    pub fn paced(mut self) -> Self {
        self.paced = true;
        self
    }

    /// Queues a message whose ack settles `receipt` (with a spool: whose
    /// commit to the spool does, since from then on a restart delivers it).
    pub async fn publish_with_receipt(
        &self,
        payload: Arc<str>,
        receipt: Receipt,
    ) -> Result<(), BrokerClosed> {
        self.publish_envelope(payload, Some(receipt)).await
    }

    /// Waits until every message published so far is on disk (at once
    /// without a spool: the in-memory queue has nothing to wait for).
    pub async fn sync(&self) -> Result<(), BrokerClosed> {
        match &self.spool {
            Some(spool) => spool.writer.sync().await.map_err(|_| BrokerClosed),
            None => Ok(()),
        }
    }

    async fn publish_envelope(
        &self,
        payload: Arc<str>,
        receipt: Option<Receipt>,
    ) -> Result<(), BrokerClosed> {
        if let Some(spool) = &self.spool {
            let slots = self.paced.then_some(&self.permits);
            match spool.writer.append(payload, receipt, None, slots).await {
                Ok(Appended::Queued) => Stats::add(&self.stats.published, 1),
                // Dropped unsettled: a replay's position stays before it.
                Ok(Appended::Dropped) => {}
                Err(_) => return Err(BrokerClosed),
            }
            return Ok(());
        }
        let Some(tx) = &self.tx else {
            return Err(BrokerClosed);
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| BrokerClosed)?;
        tx.send(Envelope {
            payload,
            attempt: 1,
            last_error: None,
            permit,
            receipt,
            requeue: tx.clone(),
            spooled: None,
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
    spool: Option<Arc<SpoolCloser>>,
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
            spooled,
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
                    spooled,
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
            spool: self.spool.clone(),
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
    spool: Option<Arc<SpoolCloser>>,
}

impl EmbeddedCloser {
    /// Once the pipeline has stopped: commits the spool's last settles and stops
    /// its writer (nothing when there is no spool).
    pub async fn close_spool(&self) {
        if let Some(spool) = &self.spool {
            spool.close().await;
        }
    }

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
    spooled: Option<(i64, Settler)>,
    shared: Arc<Shared>,
}

/// How long a nacked message waits before it is queued again.
fn redelivery_delay(attempt: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempt.min(8)))
}

impl Acker for EmbeddedAcker {
    fn ack(self: Box<Self>) {
        let EmbeddedAcker {
            payload,
            permit,
            receipt,
            spooled,
            ..
        } = *self;
        if let Some(receipt) = receipt {
            receipt.settle();
        }
        // Dropping the permit frees a slot for the source (or the spool's backlog),
        // before the settle wakes the spool's writer.
        drop(permit);
        if let Some((id, settler)) = spooled {
            settler.settle(id, payload.len() as u64);
        }
    }

    fn nack(self: Box<Self>, reason: &str) {
        let EmbeddedAcker {
            payload,
            attempt,
            permit,
            receipt,
            requeue,
            spooled,
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
            spooled,
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

    /// Takes and acks every delivery until the queue ends; their payloads.
    async fn ack_until_the_end(subscriber: &mut EmbeddedSubscriber) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let deliveries = subscriber.recv_many(100).await;
            if deliveries.is_empty() {
                return seen;
            }
            for delivery in deliveries {
                seen.push(delivery.payload.to_string());
                delivery.token.ack();
            }
        }
    }

    fn spool_options(dir: &std::path::Path, max_bytes: u64) -> SpoolOptions {
        SpoolOptions {
            dir: dir.to_owned(),
            max_bytes,
            when_full: crate::config::WhenFull::Block,
        }
    }

    #[tokio::test]
    async fn a_paced_publisher_waits_for_the_queue_instead_of_filling_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let options = spool_options(dir.path(), 1 << 30);
        let status = Arc::new(SpoolStatus::default());
        let (publisher, mut subscriber) =
            embedded_spooled(3, Arc::new(Stats::default()), &options, status.clone()).unwrap();
        let publisher = publisher.paced();
        let source = tokio::spawn(async move {
            for n in 0..10 {
                publisher.publish(format!("m{n}").into()).await.unwrap();
                publisher.sync().await.unwrap();
            }
        });
        let mut held = Vec::new();
        while held.len() < 3 {
            held.extend(subscriber.recv_many(10).await);
        }
        // Three in the queue, none more on disk: the publisher waits for a slot.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(status.appended.load(Ordering::Relaxed), 3);
        assert_eq!(status.messages.load(Ordering::Relaxed), 3);
        assert!(!source.is_finished());
        let mut seen: Vec<String> = held.iter().map(|d| d.payload.to_string()).collect();
        for delivery in held {
            delivery.token.ack();
        }
        while seen.len() < 10 {
            for delivery in subscriber.recv_many(10).await {
                seen.push(delivery.payload.to_string());
                delivery.token.ack();
            }
            assert!(status.messages.load(Ordering::Relaxed) <= 3);
        }
        source.await.unwrap();
        let expected: Vec<String> = (0..10).map(|n| format!("m{n}")).collect();
        assert_eq!(seen, expected);
        subscriber.closer().close_spool().await;
        assert_eq!(status.appended.load(Ordering::Relaxed), 10);
        assert_eq!(status.messages.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn unsettled_messages_are_delivered_first_after_a_restart_and_settled_ones_never() {
        let dir = tempfile::tempdir().unwrap();
        let options = spool_options(dir.path(), 1 << 30);
        let stats = Arc::new(Stats::default());
        {
            let status = Arc::new(SpoolStatus::default());
            let (publisher, mut subscriber) =
                embedded_spooled(3, stats.clone(), &options, status.clone()).unwrap();
            let closer = subscriber.closer();
            for n in 0..10 {
                publisher.publish(format!("m{n}").into()).await.unwrap();
            }
            // Only 3 fit in memory; the rest wait on disk and follow as slots free up.
            // Settle exactly four (a batch may bring more: those are held).
            let mut seen = Vec::new();
            let mut held = Vec::new();
            while seen.len() < 4 {
                for delivery in subscriber.recv_many(10).await {
                    if seen.len() < 4 {
                        seen.push(delivery.payload.to_string());
                        delivery.token.ack();
                    } else {
                        held.push(delivery);
                    }
                }
            }
            assert_eq!(seen, ["m0", "m1", "m2", "m3"]);
            // What is delivered now but never settled stays on disk.
            if held.is_empty() {
                held.extend(subscriber.recv_many(10).await);
            }
            assert!(!held.is_empty());
            subscriber.close();
            std::mem::forget(held);
            closer.close_spool().await;
            drop(publisher);
        }
        let status = Arc::new(SpoolStatus::default());
        let (publisher, mut subscriber) =
            embedded_spooled(100, stats, &options, status.clone()).unwrap();
        assert_eq!(status.messages.load(Ordering::Relaxed), 6);
        publisher.publish("new".into()).await.unwrap();
        drop(publisher);
        let seen = ack_until_the_end(&mut subscriber).await;
        assert_eq!(seen, ["m4", "m5", "m6", "m7", "m8", "m9", "new"]);
        subscriber.closer().close_spool().await;
        assert_eq!(status.messages.load(Ordering::Relaxed), 0);
        assert_eq!(status.bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_message_the_disk_changed_is_dropped_and_its_bytes_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let options = spool_options(dir.path(), 1 << 30);
        let stats = Arc::new(Stats::default());
        {
            let status = Arc::new(SpoolStatus::default());
            let (publisher, subscriber) =
                embedded_spooled(100, stats.clone(), &options, status.clone()).unwrap();
            let closer = subscriber.closer();
            for n in 0..10 {
                publisher.publish(format!("m{n}").into()).await.unwrap();
            }
            publisher.sync().await.unwrap();
            drop(publisher);
            subscriber.close();
            closer.close_spool().await;
            drop(subscriber);
        }
        // One payload byte changed on disk: its record no longer checks.
        {
            let db = rusqlite::Connection::open(dir.path().join(crate::broker::spool::SPOOL_FILE))
                .unwrap();
            let (first, mut body): (i64, Vec<u8>) = db
                .query_row("SELECT first_id, body FROM chunk", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .unwrap();
            let at = body.windows(2).position(|pair| pair == b"m5").unwrap();
            body[at + 1] = b'?';
            db.execute(
                "UPDATE chunk SET body = ?1 WHERE first_id = ?2",
                rusqlite::params![body, first],
            )
            .unwrap();
        }
        let status = Arc::new(SpoolStatus::default());
        let (publisher, mut subscriber) =
            embedded_spooled(100, stats, &options, status.clone()).unwrap();
        assert_eq!(status.bytes.load(Ordering::Relaxed), 20);
        drop(publisher);
        let seen = ack_until_the_end(&mut subscriber).await;
        let expected: Vec<String> = (0..10)
            .filter(|n| *n != 5)
            .map(|n| format!("m{n}"))
            .collect();
        assert_eq!(seen, expected);
        subscriber.closer().close_spool().await;
        assert_eq!(status.messages.load(Ordering::Relaxed), 0);
        // The dropped message's two bytes are counted out too, so the
        // spool's room (and `tweetpipe_spool_bytes`) is whole again.
        assert_eq!(status.bytes.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn a_full_spool_blocks_the_publisher_until_messages_are_settled() {
        let dir = tempfile::tempdir().unwrap();
        let options = spool_options(dir.path(), 100);
        let status = Arc::new(SpoolStatus::default());
        let (publisher, mut subscriber) =
            embedded_spooled(100, Arc::new(Stats::default()), &options, status).unwrap();
        let payload: Arc<str> = "x".repeat(40).into();
        publisher.publish(payload.clone()).await.unwrap();
        publisher.publish(payload.clone()).await.unwrap();
        let blocked = tokio::time::timeout(
            Duration::from_millis(300),
            publisher.publish(payload.clone()),
        )
        .await;
        assert!(
            blocked.is_err(),
            "80 of 100 bytes held: a third 40 must wait"
        );
        let first = subscriber.recv_many(1).await.pop().unwrap();
        first.token.ack();
        tokio::time::timeout(Duration::from_secs(5), publisher.publish(payload))
            .await
            .expect("a settled message makes room")
            .unwrap();
        drop(publisher);
        subscriber.close();
        subscriber.closer().close_spool().await;
    }
}
