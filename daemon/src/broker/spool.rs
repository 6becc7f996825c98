//! The durable spool: the embedded broker's messages on disk from publish until settled.
//!
//! One SQLite database in WAL mode (`spool.db` in the spool directory) holds
//! every unsettled message, packed with the messages appended beside it into
//! chunks of up to [`chunk::MAX_MESSAGES`] (one row each, framed as [`chunk`]
//! says): a row per message made SQLite's per-row work (the record, the
//! b-tree cell, its delete) a third of the spool's time. A chunk's row is
//! deleted once all its messages are settled; the writer keeps which are in
//! memory, and at shutdown rewrites a chunk that is partly settled to hold
//! only the rest. After a crash a partly settled chunk is delivered whole: its
//! settled messages come again, and the sinks keep each post id once.
//! A single writer thread owns the database: it takes every
//! operation waiting (appends from the sources, settles from acks), applies them
//! in one transaction and commits once, so many messages share one `fdatasync`
//! (group commit). `synchronous = FULL` makes that commit sync the WAL: with
//! `NORMAL` a WAL commit is only written, not synced, and a power cut may roll it
//! back; a post X will not send again must survive that.
//!
//! One process owns a spool at a time: `spool.lock` in the directory is locked
//! (`flock`) for the writer's life, and a second daemon pointed at the same
//! directory stops at start with an error instead of writing beside the first.
//!
//! A message reaches the process stage only after its commit, so nothing is
//! settled that is not on disk. Delivery is from memory while the in-memory
//! queue (`broker.capacity`) has room; when it is full, or after a restart with
//! messages left over, the writer reads them back from disk in id order as
//! room frees up, so a backlog never sits in memory and old messages go first.
//!
//! A publisher hands messages to the writer without waiting, then waits once
//! for the commit covering all of them ([`SpoolWriter::sync`]) before it reads
//! more: the X source does so for each chunk it read from the socket, the
//! replay for each buffer it read from the file. A post is so on disk before
//! the source takes the next one, and the wait batches itself: while a commit
//! syncs, the socket buffers what X sends, and the next chunk holds more lines.
//! At most [`MAX_UNSYNCED`] messages wait for their commit at any time.
//!
//! A damaged database (a power cut that tore a page, a truncated or overwritten
//! file) is found at open by SQLite's `quick_check`; the messages that can still
//! be read are kept, the damaged file is moved aside as `spool.corrupt-<time>.db`
//! and the log says what could not be read. The daemon then starts: never a
//! crash loop.

pub mod chunk;

use std::collections::{BTreeMap, VecDeque};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::Receipt;
use crate::config::WhenFull;

/// Messages handed to the writer and not yet committed, at most.
pub const MAX_UNSYNCED: usize = 4096;
/// Operations applied in one transaction, at most.
const MAX_BATCH_OPS: usize = 16 * 1024;
/// Bytes of appended payload in one transaction, at most.
const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Messages read back from disk at a time.
const LOAD_PAGE: usize = 1024;
/// The database file in the spool directory.
pub const SPOOL_FILE: &str = "spool.db";
/// The lock file that keeps a second process off the spool.
pub const LOCK_FILE: &str = "spool.lock";

/// Why the spool could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error(
        "spool: cannot create the directory {path}: {source} (set broker.spool.path to a writable directory)"
    )]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spool: cannot open {path}: {source} (check that broker.spool.path is writable by the service user)"
    )]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("spool: cannot move the damaged {path} aside: {source}")]
    MoveAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spool: {dir} is in use by another tweetpipe process{holder} (two daemons cannot share a spool: stop the other one, or give this one its own broker.spool.path)"
    )]
    InUse {
        dir: PathBuf,
        /// " (pid N)" when the lock file names it.
        holder: String,
    },
    #[error(
        "spool: cannot lock {path}: {source} (check that broker.spool.path is writable by the service user)"
    )]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool: the writer thread could not start: {0}")]
    Thread(std::io::Error),
}

/// How the spool is opened.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub when_full: WhenFull,
}

/// What the spool holds, read by the metrics at scrape time.
#[derive(Debug, Default)]
pub struct SpoolStatus {
    /// Unsettled messages on disk.
    pub messages: AtomicU64,
    /// Their payload bytes.
    pub bytes: AtomicU64,
    /// When the oldest unsettled message was appended (ms since the epoch; 0: none).
    pub oldest_ms: AtomicU64,
    /// Messages not kept because the spool was full (`when_full = "drop"`).
    pub dropped: AtomicU64,
    /// Messages found at open (left by the previous run).
    pub recovered: AtomicU64,
    /// Messages appended and committed (synced to disk) by this run.
    pub appended: AtomicU64,
    /// Messages of a damaged file that could not be read at open.
    pub lost_at_open: AtomicU64,
}

impl SpoolStatus {
    /// Seconds since the oldest unsettled message was appended (0 when empty).
    pub fn oldest_age_seconds(&self) -> f64 {
        match self.oldest_ms.load(Ordering::Relaxed) {
            0 => 0.0,
            oldest => (now_ms().saturating_sub(oldest)) as f64 / 1000.0,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64)
}

/// A message read back or committed, ready for the in-memory queue.
pub(super) struct Spooled {
    pub id: i64,
    pub payload: Arc<str>,
    /// The label the message was published with (Pub/Sub's `source`
    /// attribute); `None` for messages that were published without one.
    pub source: Option<Arc<str>>,
}

/// Where the writer hands committed messages: the embedded queue.
pub(super) trait Forward: Send + 'static {
    /// Takes a slot in the in-memory queue, if one is free.
    fn try_slot(&self) -> Option<OwnedSemaphorePermit>;
    /// Free slots now.
    fn free_slots(&self) -> usize;
    /// Queues `message` in the slot `slot`.
    fn forward(&self, message: Spooled, slot: OwnedSemaphorePermit);
}

pub(super) enum Op {
    Append {
        payload: Arc<str>,
        /// Released at the commit: bounds the messages waiting for one.
        _unsynced: OwnedSemaphorePermit,
        /// Settled at the commit: from then on a restart delivers the message.
        receipt: Option<Receipt>,
        /// Kept with the message (see [`Spooled::source`]).
        source: Option<&'static str>,
        /// A slot in the in-memory queue taken before the append (a paced
        /// publisher): the message goes to the queue from memory at its commit.
        slot: Option<OwnedSemaphorePermit>,
    },
    /// Answered once every operation sent before it is committed.
    Sync(tokio::sync::oneshot::Sender<()>),
    Settle {
        id: i64,
        len: u64,
    },
    /// Every publisher is gone: once the backlog is queued, the queue may end.
    PublishersGone,
    /// Commit what is waiting and stop.
    Shutdown(tokio::sync::oneshot::Sender<()>),
}

/// The publishing side of the spool; cheap to clone.
#[derive(Clone)]
pub(super) struct SpoolWriter {
    ops: std_mpsc::Sender<Op>,
    unsynced: Arc<Semaphore>,
    room: Arc<Room>,
    when_full: WhenFull,
    status: Arc<SpoolStatus>,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter").finish_non_exhaustive()
    }
}

/// The bytes budget (`max_bytes`) and the wake-up of publishers waiting for it.
#[derive(Debug)]
struct Room {
    max_bytes: u64,
    used: AtomicU64,
    freed: Notify,
    /// When the last "spool is full" line was logged (rate limit).
    warned: Mutex<Option<Instant>>,
}

impl Room {
    /// Takes `len` bytes if they fit (a message alone always fits).
    fn try_take(&self, len: u64) -> bool {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            if used != 0 && used.saturating_add(len) > self.max_bytes {
                return false;
            }
            match self.used.compare_exchange_weak(
                used,
                used + len,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(now) => used = now,
            }
        }
    }

    fn give_back(&self, len: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(len))
            });
        self.freed.notify_waiters();
    }

    fn warn_full(&self, what: &str) {
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        if warned.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
            *warned = Some(Instant::now());
            log::warn!(
                "spool: full ({} bytes of broker.spool.max_bytes = {} hold unsettled messages); {what}",
                self.used.load(Ordering::Relaxed),
                self.max_bytes
            );
        }
    }
}

/// What [`SpoolWriter::append`] did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Appended {
    Queued,
    /// The spool was full and `when_full = "drop"`.
    Dropped,
}

/// The writer thread is gone.
#[derive(Debug, Clone, Copy)]
pub(super) struct WriterGone;

impl SpoolWriter {
    /// Hands `payload` to the writer, waiting while the spool is full (`block`)
    /// or while [`MAX_UNSYNCED`] messages wait for their commit, and, with
    /// `queue_slots`, until the in-memory queue has a slot for it: a source
    /// that can wait (a file) so never builds a backlog on disk that has to be
    /// read back, while one that cannot (X) leaves it out.
    pub async fn append(
        &self,
        payload: Arc<str>,
        receipt: Option<Receipt>,
        source: Option<&'static str>,
        queue_slots: Option<&Arc<Semaphore>>,
    ) -> Result<Appended, WriterGone> {
        let len = payload.len() as u64;
        loop {
            let freed = self.room.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.room.try_take(len) {
                break;
            }
            match self.when_full {
                WhenFull::Drop => {
                    self.status.dropped.fetch_add(1, Ordering::Relaxed);
                    self.room
                        .warn_full("dropping new messages (when_full = \"drop\")");
                    return Ok(Appended::Dropped);
                }
                WhenFull::Block => {
                    self.room.warn_full(
                        "the source waits until messages are committed (when_full = \"block\")",
                    );
                    freed.await;
                }
            }
        }
        // After the room: a slot frees up as the pipeline acks what it holds,
        // which never waits for room, so holding room while waiting is safe.
        let slot = match queue_slots {
            Some(slots) => match slots.clone().acquire_owned().await {
                Ok(slot) => Some(slot),
                Err(_) => {
                    self.room.give_back(len);
                    return Err(WriterGone);
                }
            },
            None => None,
        };
        let unsynced = match self.unsynced.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => {
                self.room.give_back(len);
                return Err(WriterGone);
            }
        };
        self.ops
            .send(Op::Append {
                payload,
                _unsynced: unsynced,
                receipt,
                source,
                slot,
            })
            .map_err(|_| {
                self.room.give_back(len);
                WriterGone
            })?;
        Ok(Appended::Queued)
    }

    /// Waits until every message this writer (or a clone) handed over before
    /// the call is committed to disk: what a source calls before it reads on.
    pub async fn sync(&self) -> Result<(), WriterGone> {
        let (done, committed) = tokio::sync::oneshot::channel();
        self.ops.send(Op::Sync(done)).map_err(|_| WriterGone)?;
        committed.await.map_err(|_| WriterGone)
    }

    /// Tells the writer no publisher is left.
    pub fn publishers_gone(&self) {
        let _ = self.ops.send(Op::PublishersGone);
    }
}

/// Removes settled messages from the spool.
#[derive(Clone)]
pub(super) struct Settler {
    ops: std_mpsc::Sender<Op>,
}

impl Settler {
    /// Message `id` (of `len` payload bytes) is committed or dead-lettered.
    pub fn settle(&self, id: i64, len: u64) {
        // After shutdown the message simply stays for the next run.
        let _ = self.ops.send(Op::Settle { id, len });
    }
}

/// Stops the writer thread once everything waiting is committed.
#[derive(Debug)]
pub struct SpoolCloser {
    ops: std_mpsc::Sender<Op>,
    closed: AtomicBool,
}

impl SpoolCloser {
    /// Commits what is waiting (the last settles) and stops the writer.
    pub async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        let (done, finished) = tokio::sync::oneshot::channel();
        if self.ops.send(Op::Shutdown(done)).is_ok() {
            let _ = finished.await;
        }
    }
}

/// Opens (creating or repairing) the spool in `options.dir` and starts its
/// writer thread, which hands committed messages to `forward`.
pub(super) fn start(
    options: &SpoolOptions,
    forward: impl FnOnce(Settler) -> Box<dyn Forward>,
    status: Arc<SpoolStatus>,
) -> Result<(SpoolWriter, SpoolCloser), SpoolError> {
    let Opened {
        db,
        lock,
        found,
        lost,
    } = open(&options.dir)?;
    status.messages.store(found.messages, Ordering::Relaxed);
    status.bytes.store(found.bytes, Ordering::Relaxed);
    status.oldest_ms.store(found.oldest_ms, Ordering::Relaxed);
    status.recovered.store(found.messages, Ordering::Relaxed);
    status.lost_at_open.store(lost, Ordering::Relaxed);
    if found.messages > 0 {
        log::info!(
            "spool: {} messages ({} bytes) left unsettled by the previous run are delivered first",
            found.messages,
            found.bytes
        );
    }
    let (ops, inbox) = std_mpsc::channel();
    let forward = forward(Settler { ops: ops.clone() });
    let unsynced = Arc::new(Semaphore::new(MAX_UNSYNCED));
    let room = Arc::new(Room {
        max_bytes: options.max_bytes,
        used: AtomicU64::new(found.bytes),
        freed: Notify::new(),
        warned: Mutex::new(None),
    });
    let writer = Writer {
        db,
        _lock: lock,
        inbox,
        forward: Some(forward),
        next_id: found.next_id,
        chunks: found.chunks,
        lost: Vec::new(),
        // Left over messages are read back from disk first.
        disk_from: (found.messages > 0).then_some(found.first_id),
        publishers_gone: false,
        status: status.clone(),
        room: room.clone(),
        unsynced: unsynced.clone(),
        oldest_checked: Instant::now(),
        dir: options.dir.clone(),
    };
    std::thread::Builder::new()
        .name("tweetpipe-spool".to_owned())
        .spawn(move || writer.run())
        .map_err(SpoolError::Thread)?;
    Ok((
        SpoolWriter {
            ops: ops.clone(),
            unsynced,
            room,
            when_full: options.when_full,
            status,
        },
        SpoolCloser {
            ops,
            closed: AtomicBool::new(false),
        },
    ))
}

/// The spool as found at open.
struct Opened {
    db: Connection,
    /// Held (locked) while the spool is open.
    lock: std::fs::File,
    /// What the file holds.
    found: Found,
    /// Messages of a damaged file that could not be read (0 when it was sound).
    lost: u64,
}

/// One row per chunk of consecutive messages (see [`chunk`]).
const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS chunk (
    first_id INTEGER PRIMARY KEY,
    count INTEGER NOT NULL,
    appended_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    body BLOB NOT NULL
)";

/// The table of a spool written before chunks: one row per message.
const LEGACY_TABLE: &str = "spool";

fn configure(db: &Connection) -> rusqlite::Result<()> {
    // 16 KiB pages (set when the file is made) and a 16 MiB page cache: a
    // 1 KB message per row on 4 KiB pages made a WAL frame write per few
    // messages and page reads back at every commit; end to end the spool's
    // system time fell from 5.2 to 3.1 s per million posts.
    db.execute_batch("PRAGMA page_size = 16384; PRAGMA cache_size = -16384;")?;
    let mode: String = db.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "the journal mode stayed {mode}, not WAL"
        )));
    }
    // FULL: each commit syncs the WAL, so a committed message survives a power cut.
    // A checkpoint every 1024 pages (16 MiB of WAL), and the WAL cut back to
    // that after one: the checkpoint and WAL truncation at shutdown then copy
    // and free at most 16 MiB. With 64 MiB they took 25 ms of a 45 ms stop;
    // a run of 200,000 posts executes the same instructions either way (the
    // same pages are copied, in more, smaller checkpoints).
    db.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA wal_autocheckpoint = 1024;
         PRAGMA journal_size_limit = 16777216;",
    )?;
    db.execute_batch(SCHEMA)
}

/// Writes `records` (id, appended_ms, source, payload; ids ascending) as
/// chunks of consecutive ids; returns each chunk's first id and count.
fn insert_chunks<'a>(
    db: &Connection,
    records: impl IntoIterator<Item = (i64, i64, Option<&'a str>, &'a str)>,
) -> rusqlite::Result<Vec<(i64, u32)>> {
    let mut insert = db.prepare_cached(
        "INSERT INTO chunk (first_id, count, appended_ms, bytes, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut written = Vec::new();
    let mut body = Vec::with_capacity(chunk::MAX_BYTES);
    // The chunk being filled: first id, count, appended_ms, payload bytes.
    let mut open: Option<(i64, u32, i64, i64)> = None;
    for (id, appended_ms, source, payload) in records {
        let len = chunk::record_len(payload, source);
        if let Some((first, count, ms, bytes)) = open {
            let fits = id == first + i64::from(count)
                && (count as usize) < chunk::MAX_MESSAGES
                && body.len() + len <= chunk::MAX_BYTES;
            if !fits {
                insert.execute(params![first, count, ms, bytes, &body])?;
                written.push((first, count));
                body.clear();
                open = None;
            }
        }
        let (_, count, _, bytes) = open.get_or_insert((id, 0, appended_ms, 0));
        chunk::encode(&mut body, id, source, payload);
        *count += 1;
        *bytes += payload.len() as i64;
    }
    if let Some((first, count, ms, bytes)) = open {
        insert.execute(params![first, count, ms, bytes, &body])?;
        written.push((first, count));
    }
    Ok(written)
}

/// Moves the messages of a spool written before chunks (one row each) into
/// chunks, in one transaction; returns how many.
fn migrate_legacy(db: &Connection) -> rusqlite::Result<u64> {
    let columns: Vec<String> = db
        .prepare("SELECT name FROM pragma_table_info(?1)")?
        .query_map([LEGACY_TABLE], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if columns.is_empty() {
        return Ok(0);
    }
    let source = if columns.iter().any(|column| column == "source") {
        "source"
    } else {
        "NULL"
    };
    let tx = db.unchecked_transaction()?;
    let mut moved = 0u64;
    {
        let mut select = tx.prepare(&format!(
            "SELECT id, appended_ms, payload, {source} FROM {LEGACY_TABLE} ORDER BY id"
        ))?;
        let mut rows = select.query([])?;
        let mut buffer: Vec<(i64, i64, Option<String>, String)> = Vec::new();
        loop {
            let row = rows.next()?;
            if let Some(row) = row {
                buffer.push((row.get(0)?, row.get(1)?, row.get(3)?, row.get(2)?));
            }
            if buffer.len() >= 4096 || (row.is_none() && !buffer.is_empty()) {
                moved += buffer.len() as u64;
                insert_chunks(
                    &tx,
                    buffer
                        .iter()
                        .map(|(id, ms, source, payload)| (*id, *ms, source.as_deref(), &**payload)),
                )?;
                buffer.clear();
            }
            if row.is_none() {
                break;
            }
        }
    }
    tx.execute_batch(&format!("DROP TABLE {LEGACY_TABLE}"))?;
    tx.commit()?;
    Ok(moved)
}

/// Why a spool database could not be opened.
enum OpenFailure {
    /// The file is damaged or not a database: what can be read is salvaged.
    Damaged(String),
    /// Anything else (permissions, a full or failing disk): nothing is moved.
    Failed(rusqlite::Error),
}

impl From<rusqlite::Error> for OpenFailure {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase) => {
                OpenFailure::Damaged(error.to_string())
            }
            _ => OpenFailure::Failed(error),
        }
    }
}

/// What a spool file holds, counted at open.
struct Found {
    messages: u64,
    bytes: u64,
    oldest_ms: u64,
    first_id: i64,
    next_id: i64,
    chunks: BTreeMap<i64, ChunkState>,
}

/// Counts what `db` holds and indexes its chunks.
fn found(db: &Connection) -> rusqlite::Result<Found> {
    let mut chunks = BTreeMap::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut first: Option<(i64, i64)> = None;
    let mut next_id = 1;
    let mut statement =
        db.prepare("SELECT first_id, count, bytes, appended_ms FROM chunk ORDER BY first_id")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let (first_id, count, chunk_bytes, appended_ms): (i64, i64, i64, i64) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let count = count.clamp(0, chunk::MAX_MESSAGES as i64);
        chunks.insert(
            first_id,
            ChunkState {
                count: count as u32,
                settled: 0,
            },
        );
        messages += count as u64;
        bytes += chunk_bytes.max(0) as u64;
        first.get_or_insert((first_id, appended_ms));
        next_id = first_id + count;
    }
    Ok(Found {
        messages,
        bytes,
        oldest_ms: first.map_or(0, |(_, ms)| ms.max(0) as u64),
        first_id: first.map_or(1, |(id, _)| id),
        next_id,
        chunks,
    })
}

/// Opens the database and checks it.
fn open_checked(path: &Path) -> Result<(Connection, Found), OpenFailure> {
    let db = Connection::open(path)?;
    configure(&db)?;
    let check: String = db.query_row("PRAGMA quick_check(1)", [], |row| row.get(0))?;
    if check != "ok" {
        return Err(OpenFailure::Damaged(check));
    }
    let moved = migrate_legacy(&db)?;
    if moved > 0 {
        log::info!(
            "spool: {moved} messages of {} moved to chunks of up to {} messages (this version's format)",
            path.display(),
            chunk::MAX_MESSAGES
        );
    }
    let found = found(&db)?;
    Ok((db, found))
}

fn open(dir: &Path) -> Result<Opened, SpoolError> {
    std::fs::create_dir_all(dir).map_err(|source| SpoolError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let lock = lock(dir)?;
    let path = dir.join(SPOOL_FILE);
    let damage = match open_checked(&path) {
        Ok((db, found)) => {
            return Ok(Opened {
                db,
                lock,
                found,
                lost: 0,
            });
        }
        Err(OpenFailure::Damaged(damage)) => damage,
        Err(OpenFailure::Failed(source)) => return Err(SpoolError::Open { path, source }),
    };
    log::error!(
        "spool: {} is damaged ({damage}); keeping the messages that can still be read",
        path.display()
    );
    let salvage = salvage(&path);
    let aside = move_aside(dir, &path)?;
    let failed = |source| SpoolError::Open {
        path: path.clone(),
        source,
    };
    let db = Connection::open(&path).map_err(failed)?;
    configure(&db).map_err(failed)?;
    let insert = || -> rusqlite::Result<()> {
        let tx = db.unchecked_transaction()?;
        insert_chunks(
            &tx,
            salvage.rows.iter().map(|row| {
                (
                    row.id,
                    row.appended_ms,
                    row.source.as_deref(),
                    &*row.payload,
                )
            }),
        )?;
        tx.commit()
    };
    insert().map_err(failed)?;
    let kept = salvage.rows.len() as u64;
    let at_most: u64 = salvage
        .unreadable
        .iter()
        .map(|(first, last)| (last - first + 1) as u64)
        .sum();
    let ranges: Vec<String> = salvage
        .unreadable
        .iter()
        .take(5)
        .map(|(first, last)| {
            if first == last {
                format!("{first}")
            } else {
                format!("{first}..={last}")
            }
        })
        .collect();
    let more = if salvage.unreadable.len() > 5 {
        ", …"
    } else {
        ""
    };
    let mut lost_text = if salvage.not_a_database {
        "dropped every message it held (the file cannot be read as a database; how many is unknown)"
            .to_owned()
    } else if at_most > 0 {
        format!(
            "dropped up to {at_most} messages that could not be read (ids {}{more})",
            ranges.join(", ")
        )
    } else {
        "dropped none in the middle".to_owned()
    };
    if let Some(after) = salvage.tail_lost_after {
        lost_text.push_str(&format!(
            ", and every message after id {after} (the end of the file is lost; how many is unknown)"
        ));
    }
    log::error!(
        "spool: recovered {kept} whole messages from the damaged spool and {lost_text}; \
         the damaged file is kept as {} for inspection (delete it when done)",
        aside.display()
    );
    let mut found = found(&db).map_err(failed)?;
    // Ids of the unreadable messages are not given out again.
    found.next_id = found
        .next_id
        .max(salvage.max_id.map_or(1, |id| id.saturating_add(1)));
    Ok(Opened {
        db,
        lock,
        found,
        lost: at_most,
    })
}

/// A message read out of a damaged spool.
struct SalvagedRow {
    id: i64,
    appended_ms: i64,
    payload: Arc<str>,
    source: Option<Arc<str>>,
}

struct Salvage {
    /// In id order, each id once.
    rows: Vec<SalvagedRow>,
    /// Id ranges that could not be read (ids never used count too: at most).
    unreadable: Vec<(i64, i64)>,
    /// Nothing after this id could be read and the file's last id is lost too.
    tail_lost_after: Option<i64>,
    /// The file could not be read as a database at all.
    not_a_database: bool,
    max_id: Option<i64>,
}

/// Consecutive unreadable ids probed one by one before the probe strides grow.
const LINEAR_PROBES: i64 = 4096;

/// What one row of a damaged spool gave: the ids it stands for and the whole
/// messages among them (`None`: the row itself is torn).
struct Unit {
    first: i64,
    last: i64,
    rows: Vec<SalvagedRow>,
    missing: Vec<(i64, i64)>,
}

/// How one table of a spool is read when the file is damaged.
struct Table {
    /// Rows from a key on, in key order.
    from: &'static str,
    /// The greatest id, read from the b-tree's right edge only.
    max_id: &'static str,
    /// The least key.
    min_key: &'static str,
    read: fn(&rusqlite::Row<'_>) -> rusqlite::Result<Option<Unit>>,
}

/// Row per message (before chunks). A page cut short reads as zeros past the
/// cut: a message with a NUL in it is torn (JSON never has one).
fn legacy_unit(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Unit>> {
    let (id, appended_ms, payload, source): (i64, i64, String, Option<String>) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    Ok((!payload.contains('\0')).then(|| Unit {
        first: id,
        last: id,
        rows: vec![SalvagedRow {
            id,
            appended_ms,
            payload: Arc::from(payload),
            source: source.map(Arc::from),
        }],
        missing: Vec::new(),
    }))
}

fn chunk_unit(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Unit>> {
    let (first, count, appended_ms, body): (i64, i64, i64, Vec<u8>) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    let count = count.clamp(1, chunk::MAX_MESSAGES as i64);
    let decoded = chunk::decode(first, count, &body);
    Ok(Some(Unit {
        first,
        last: first + count - 1,
        rows: decoded
            .records
            .into_iter()
            .map(|record| SalvagedRow {
                id: record.id,
                appended_ms,
                payload: record.payload,
                source: record.source,
            })
            .collect(),
        missing: decoded.missing,
    }))
}

/// Reads what can be read from a damaged spool, in id order: its chunks, and
/// the rows of a spool written before chunks.
fn salvage(path: &Path) -> Salvage {
    let mut salvage = Salvage {
        rows: Vec::new(),
        unreadable: Vec::new(),
        tail_lost_after: None,
        not_a_database: true,
        max_id: None,
    };
    let Ok(db) = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return salvage;
    };
    // Lets SQLite read a file shorter than its header says (a lost tail)
    // instead of refusing it whole.
    let _ = db.execute_batch("PRAGMA writable_schema = ON");
    let tables = [
        Table {
            from: "SELECT id, appended_ms, payload, source FROM spool WHERE id >= ?1 ORDER BY id",
            max_id: "SELECT max(id) FROM spool",
            min_key: "SELECT min(id) FROM spool",
            read: legacy_unit,
        },
        Table {
            from: "SELECT id, appended_ms, payload, NULL FROM spool WHERE id >= ?1 ORDER BY id",
            max_id: "SELECT max(id) FROM spool",
            min_key: "SELECT min(id) FROM spool",
            read: legacy_unit,
        },
        Table {
            from: "SELECT first_id, count, appended_ms, body FROM chunk WHERE first_id >= ?1 ORDER BY first_id",
            max_id: "SELECT first_id + count - 1 FROM chunk ORDER BY first_id DESC LIMIT 1",
            min_key: "SELECT min(first_id) FROM chunk",
            read: chunk_unit,
        },
    ];
    let mut legacy_read = false;
    for (index, table) in tables.iter().enumerate() {
        // The second is the legacy table before it kept a source column.
        if index == 1 && legacy_read {
            continue;
        }
        if salvage_table(&db, table, &mut salvage) && index == 0 {
            legacy_read = true;
        }
    }
    salvage.rows.sort_by_key(|row| row.id);
    salvage.rows.dedup_by_key(|row| row.id);
    salvage
}

/// Reads one table into `salvage`: after a key that cannot be read, it probes
/// the following keys one by one (then in growing strides) for the next
/// readable row. False when the table is not there.
fn salvage_table(db: &Connection, table: &Table, salvage: &mut Salvage) -> bool {
    let Ok(mut statement) = db.prepare(table.from) else {
        return false;
    };
    salvage.not_a_database = false;
    let max_id: Option<i64> = db
        .query_row(table.max_id, [], |row| row.get(0))
        .ok()
        .flatten();
    let min_key: Option<i64> = db
        .query_row(table.min_key, [], |row| row.get(0))
        .ok()
        .flatten();
    salvage.max_id = salvage.max_id.max(max_id);
    let kept_before = salvage.rows.len();
    let mut from = min_key.unwrap_or(1);
    let end = max_id.unwrap_or(i64::MAX / 2);
    let mut failures = 0i64;
    loop {
        let mut failed = false;
        match statement.query(params![from]) {
            Ok(mut cursor) => loop {
                match cursor.next() {
                    Ok(Some(row)) => match (table.read)(row).ok().flatten() {
                        Some(unit) => {
                            // Ids skipped over just after a failure were on
                            // the damaged pages too.
                            if failures > 0
                                && let Some((_, to)) = salvage.unreadable.last_mut()
                                && unit.first - 1 > *to
                            {
                                *to = unit.first - 1;
                            }
                            from = unit.last + 1;
                            salvage.rows.extend(unit.rows);
                            salvage.unreadable.extend(unit.missing);
                            failures = 0;
                        }
                        None => {
                            failed = true;
                            break;
                        }
                    },
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            },
            Err(_) => failed = true,
        }
        if !failed || from > end {
            break;
        }
        if max_id.is_none() && failures >= LINEAR_PROBES {
            // The file's end is gone with its last ids: how many is unknown.
            let last_kept = salvage.rows[kept_before..].last().map(|row| row.id);
            salvage.tail_lost_after = Some(last_kept.unwrap_or(0));
            salvage
                .unreadable
                .retain(|(first, _)| last_kept.is_some_and(|last| *first < last));
            break;
        }
        let stride = if failures < LINEAR_PROBES {
            1
        } else {
            1i64 << (failures - LINEAR_PROBES).min(40)
        };
        let last = from.saturating_add(stride - 1).min(end);
        match salvage.unreadable.last_mut() {
            Some((_, to)) if *to + 1 == from => *to = last,
            _ => salvage.unreadable.push((from, last)),
        }
        failures += 1;
        from = last + 1;
        if from > end {
            break;
        }
    }
    if max_id.is_none() && failures > 0 && salvage.tail_lost_after.is_none() {
        // The last rows could not be read, and neither could the last id: the
        // file's end is gone, how far is unknown.
        let last_kept = salvage.rows[kept_before..].last().map(|row| row.id);
        salvage.tail_lost_after = Some(last_kept.unwrap_or(0));
        salvage
            .unreadable
            .retain(|(first, _)| last_kept.is_some_and(|last| *first < last));
    }
    true
}

/// Takes the spool directory's lock, or says which process holds it.
fn lock(dir: &Path) -> Result<std::fs::File, SpoolError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| SpoolError::Lock {
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => {
            // The holder's pid, for the error a second process prints.
            let mut file = file;
            let _ = file
                .set_len(0)
                .and_then(|()| writeln!(file, "{}", std::process::id()));
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
                .map_or_else(String::new, |pid| format!(" (pid {pid})"));
            Err(SpoolError::InUse {
                dir: dir.to_owned(),
                holder,
            })
        }
        Err(std::fs::TryLockError::Error(source)) => Err(SpoolError::Lock { path, source }),
    }
}

/// Renames the damaged database (and its WAL) to `spool.corrupt-<time>.db`.
fn move_aside(dir: &Path, path: &Path) -> Result<PathBuf, SpoolError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let aside = dir.join(format!("spool.corrupt-{stamp}.db"));
    std::fs::rename(path, &aside).map_err(|source| SpoolError::MoveAside {
        path: path.to_owned(),
        source,
    })?;
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", path.display()));
        if side.exists() {
            let target = PathBuf::from(format!("{}{suffix}", aside.display()));
            if suffix == "-shm" {
                let _ = std::fs::remove_file(&side);
            } else {
                std::fs::rename(&side, &target).map_err(|source| SpoolError::MoveAside {
                    path: side.clone(),
                    source,
                })?;
            }
        }
    }
    Ok(aside)
}

/// The writer thread's state.
struct Writer {
    db: Connection,
    /// Keeps the spool's lock until the writer ends.
    _lock: std::fs::File,
    inbox: std_mpsc::Receiver<Op>,
    /// Dropped once every publisher is gone and the backlog is queued, which
    /// lets the in-memory queue end.
    forward: Option<Box<dyn Forward>>,
    next_id: i64,
    /// The chunks on disk, by first id, and which of their messages are settled.
    chunks: BTreeMap<i64, ChunkState>,
    /// Messages found unreadable while read back, with the payload bytes they
    /// held: settled with the next commit.
    lost: Vec<(i64, u64)>,
    /// `Some(id)`: messages from `id` on are on disk only, and are read back as
    /// the queue has room; `None`: every committed message has been queued.
    disk_from: Option<i64>,
    publishers_gone: bool,
    status: Arc<SpoolStatus>,
    room: Arc<Room>,
    unsynced: Arc<Semaphore>,
    oldest_checked: Instant,
    dir: PathBuf,
}

/// A chunk in the writer's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkState {
    /// Messages in it: ids `first_id .. first_id + count`.
    count: u32,
    /// Bit `n`: message `first_id + n` is settled.
    settled: u64,
}

impl ChunkState {
    fn all(&self) -> u64 {
        match self.count {
            64.. => u64::MAX,
            count => (1u64 << count) - 1,
        }
    }
}

/// What a committed transaction changed, applied to the writer's state once
/// it is on disk.
struct Written {
    /// The chunks appended: first id, count.
    chunks: Vec<(i64, u32)>,
    /// Messages newly settled, by chunk: the chunk's first id and their bits.
    settled: BTreeMap<i64, u64>,
    /// The chunks deleted, all settled.
    deleted: Vec<i64>,
    settled_messages: u64,
    settled_bytes: u64,
}

/// An append waiting for its commit.
struct Pending {
    payload: Arc<str>,
    source: Option<&'static str>,
    /// Released at the commit.
    _unsynced: OwnedSemaphorePermit,
    /// See [`Op::Append`].
    slot: Option<OwnedSemaphorePermit>,
}

/// One transaction's worth of operations.
#[derive(Default)]
struct Batch {
    appends: Vec<Pending>,
    /// Answered once the batch (and so everything before it) is committed.
    synced: Vec<tokio::sync::oneshot::Sender<()>>,
    /// The appends' receipts, settled once they are committed.
    receipts: Vec<Receipt>,
    settles: Vec<(i64, u64)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.settles.is_empty()
    }
}

impl Writer {
    fn run(mut self) {
        let mut pending: VecDeque<Op> = VecDeque::new();
        loop {
            // Wait for work unless messages on disk can be queued now.
            let can_load = self.disk_from.is_some()
                && self
                    .forward
                    .as_ref()
                    .is_some_and(|forward| forward.free_slots() > 0);
            if pending.is_empty() && !can_load {
                match self.inbox.recv() {
                    Ok(op) => pending.push_back(op),
                    // Every sender is gone: nothing more can come.
                    Err(_) => break,
                }
            }
            while pending.len() < MAX_BATCH_OPS {
                match self.inbox.try_recv() {
                    Ok(op) => pending.push_back(op),
                    Err(_) => break,
                }
            }
            let mut batch = Batch::default();
            let mut bytes = 0usize;
            while let Some(op) = pending.pop_front() {
                match op {
                    Op::Append {
                        payload,
                        _unsynced,
                        receipt,
                        source,
                        slot,
                    } => {
                        bytes += payload.len();
                        batch.appends.push(Pending {
                            payload,
                            source,
                            _unsynced,
                            slot,
                        });
                        batch.receipts.extend(receipt);
                    }
                    Op::Sync(done) => batch.synced.push(done),
                    Op::Settle { id, len } => batch.settles.push((id, len)),
                    Op::PublishersGone => self.publishers_gone = true,
                    Op::Shutdown(done) => {
                        batch.shutdown = Some(done);
                        break;
                    }
                }
                if bytes >= MAX_BATCH_BYTES || batch.appends.len() >= MAX_BATCH_OPS {
                    break;
                }
            }
            let shutdown = batch.shutdown.take();
            let synced = std::mem::take(&mut batch.synced);
            if !batch.is_empty() || !self.lost.is_empty() {
                self.commit(batch);
            }
            // Whatever came before a sync is committed now (earlier batches
            // committed first).
            for done in synced {
                let _ = done.send(());
            }
            self.load_from_disk();
            self.end_queue_when_done();
            if let Some(done) = shutdown {
                self.unsynced.close();
                if let Err(error) = self.split_partly_settled() {
                    log::warn!(
                        "spool: could not drop the settled messages of partly settled chunks; \
                         the next start delivers them again (the sinks keep each post once): {error}"
                    );
                }
                let _ = self.db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
                // Closed (the database and its lock) before the closer hears
                // of it, so the spool can be opened again at once.
                drop(self);
                let _ = done.send(());
                return;
            }
        }
        self.unsynced.close();
    }

    /// Applies `batch` in one transaction, retrying (and so holding the
    /// publishers back) while the disk refuses it.
    fn commit(&mut self, mut batch: Batch) {
        let appended_ms = now_ms() as i64;
        let first_id = self.next_id;
        // Messages found unreadable when read back are settled with this batch.
        batch.settles.append(&mut self.lost);
        let mut attempt = 0u32;
        let written = loop {
            match self.write(&batch, first_id, appended_ms) {
                Ok(written) => break written,
                Err(error) => {
                    attempt += 1;
                    let wait = Duration::from_millis(100u64 << attempt.min(6));
                    log::error!(
                        "spool: committing {} appends and {} settles to {} failed (attempt {attempt}), retrying in {wait:?}; \
                         the sources wait meanwhile (is the disk full? free space or move broker.spool.path): {error}",
                        batch.appends.len(),
                        batch.settles.len(),
                        self.dir.join(SPOOL_FILE).display()
                    );
                    std::thread::sleep(wait);
                }
            }
        };
        for receipt in batch.receipts.drain(..) {
            receipt.settle();
        }
        self.next_id = first_id + batch.appends.len() as i64;
        for &(first, count) in &written.chunks {
            self.chunks.insert(first, ChunkState { count, settled: 0 });
        }
        for (first, bits) in &written.settled {
            if let Some(state) = self.chunks.get_mut(first) {
                state.settled |= bits;
            }
        }
        for first in &written.deleted {
            self.chunks.remove(first);
        }
        let appended = batch.appends.len() as u64;
        let settled = written.settled_messages;
        let settled_bytes = written.settled_bytes;
        let appended_bytes: u64 = batch
            .appends
            .iter()
            .map(|pending| pending.payload.len() as u64)
            .sum();
        let status = &self.status;
        status.appended.fetch_add(appended, Ordering::Relaxed);
        let messages = status
            .messages
            .load(Ordering::Relaxed)
            .saturating_add(appended)
            .saturating_sub(settled);
        status.messages.store(messages, Ordering::Relaxed);
        let bytes = status
            .bytes
            .load(Ordering::Relaxed)
            .saturating_add(appended_bytes)
            .saturating_sub(settled_bytes);
        status.bytes.store(bytes, Ordering::Relaxed);
        if settled_bytes > 0 {
            self.room.give_back(settled_bytes);
        }
        if messages == 0 {
            status.oldest_ms.store(0, Ordering::Relaxed);
        } else if status.oldest_ms.load(Ordering::Relaxed) == 0 {
            status
                .oldest_ms
                .store(appended_ms as u64, Ordering::Relaxed);
        } else if settled > 0 && self.oldest_checked.elapsed() >= Duration::from_secs(1) {
            self.oldest_checked = Instant::now();
            if let Ok(Some(oldest)) = self
                .db
                .query_row(
                    "SELECT appended_ms FROM chunk ORDER BY first_id LIMIT 1",
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
            {
                status.oldest_ms.store(oldest as u64, Ordering::Relaxed);
            }
        }
        // Committed: the publishers' slots free up as the permits drop here.
        let Some(forward) = &self.forward else {
            return;
        };
        for (offset, pending) in batch.appends.into_iter().enumerate() {
            let id = first_id + offset as i64;
            // Behind a backlog on disk, read back in id order (a slot taken
            // beforehand is given back).
            if self.disk_from.is_some() {
                break;
            }
            match pending.slot.or_else(|| forward.try_slot()) {
                Some(slot) => forward.forward(
                    Spooled {
                        id,
                        payload: pending.payload,
                        source: pending.source.map(Arc::from),
                    },
                    slot,
                ),
                // The queue is full: this one and later ones wait on disk.
                None => self.disk_from = Some(id),
            }
        }
    }

    /// Writes `batch` in one transaction; changes nothing in memory, so a
    /// failed attempt can simply be made again.
    fn write(&self, batch: &Batch, first_id: i64, appended_ms: i64) -> rusqlite::Result<Written> {
        let tx = self.db.unchecked_transaction()?;
        let chunks = insert_chunks(
            &tx,
            batch.appends.iter().enumerate().map(|(offset, pending)| {
                (
                    first_id + offset as i64,
                    appended_ms,
                    pending.source,
                    &*pending.payload,
                )
            }),
        )?;
        let mut settled = BTreeMap::new();
        let (mut settled_messages, mut settled_bytes) = (0u64, 0u64);
        for &(id, len) in &batch.settles {
            let Some((&first, state)) = self.chunks.range(..=id).next_back() else {
                continue;
            };
            let Some(bit) = u32::try_from(id - first)
                .ok()
                .filter(|&bit| bit < state.count)
            else {
                continue;
            };
            let bits: &mut u64 = settled.entry(first).or_default();
            // A message settled twice counts once.
            if (state.settled | *bits) & (1 << bit) != 0 {
                continue;
            }
            *bits |= 1 << bit;
            settled_messages += 1;
            settled_bytes += len;
        }
        let mut deleted = Vec::new();
        if !settled.is_empty() {
            let mut delete = tx.prepare_cached("DELETE FROM chunk WHERE first_id = ?1")?;
            for (first, bits) in &settled {
                if let Some(state) = self.chunks.get(first)
                    && state.settled | bits == state.all()
                {
                    delete.execute([first])?;
                    deleted.push(*first);
                }
            }
        }
        tx.commit()?;
        Ok(Written {
            chunks,
            settled,
            deleted,
            settled_messages,
            settled_bytes,
        })
    }

    /// Rewrites each chunk some of whose messages are settled to hold only the
    /// others, so the next start does not deliver the settled ones again.
    fn split_partly_settled(&mut self) -> rusqlite::Result<()> {
        let partly: Vec<(i64, ChunkState)> = self
            .chunks
            .iter()
            .filter(|(_, state)| state.settled != 0)
            .map(|(first, state)| (*first, *state))
            .collect();
        if partly.is_empty() {
            return Ok(());
        }
        let tx = self.db.unchecked_transaction()?;
        for (first, state) in &partly {
            let row: Option<(i64, Vec<u8>)> = tx
                .query_row(
                    "SELECT appended_ms, body FROM chunk WHERE first_id = ?1",
                    [first],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let Some((appended_ms, body)) = row else {
                continue;
            };
            let decoded = chunk::decode(*first, i64::from(state.count), &body);
            tx.execute("DELETE FROM chunk WHERE first_id = ?1", [first])?;
            insert_chunks(
                &tx,
                decoded
                    .records
                    .iter()
                    .filter(|record| state.settled & (1 << (record.id - first)) == 0)
                    .map(|record| {
                        (
                            record.id,
                            appended_ms,
                            record.source.as_deref(),
                            &*record.payload,
                        )
                    }),
            )?;
        }
        tx.commit()?;
        for (first, _) in partly {
            self.chunks.remove(&first);
        }
        Ok(())
    }

    /// Queues messages that wait on disk, as far as the queue has room.
    fn load_from_disk(&mut self) {
        let Some(forward) = &self.forward else {
            return;
        };
        while let Some(from) = self.disk_from {
            let room = forward.free_slots().min(LOAD_PAGE);
            if room == 0 {
                return;
            }
            // The chunk holding `from`, or the first one after it.
            let start = self
                .chunks
                .range(..=from)
                .next_back()
                .filter(|(first, state)| *first + i64::from(state.count) > from)
                .map_or(from, |(first, _)| *first);
            let limit = room.div_ceil(chunk::MAX_MESSAGES).max(4);
            let rows = (|| -> rusqlite::Result<Vec<(i64, i64, i64, chunk::Decoded)>> {
                let mut statement = self.db.prepare_cached(
                    "SELECT first_id, count, bytes, body FROM chunk WHERE first_id >= ?1 ORDER BY first_id LIMIT ?2",
                )?;
                statement
                    .query_map(params![start, limit as i64], |row| {
                        let (first, count): (i64, i64) = (row.get(0)?, row.get(1)?);
                        // Only for the count of bytes dropped: a value the
                        // disk changed must not stop the read-back.
                        let bytes = row.get_ref(2)?.as_i64().unwrap_or(0);
                        // Decoded where SQLite holds the body: no copy of it.
                        let body = row.get_ref(3)?.as_blob().map_err(|error| {
                            rusqlite::Error::FromSqlConversionFailure(
                                3,
                                rusqlite::types::Type::Blob,
                                Box::new(error),
                            )
                        })?;
                        Ok((first, count, bytes, chunk::decode(first, count, body)))
                    })?
                    .collect()
            })();
            let rows = match rows {
                Ok(rows) => rows,
                Err(error) => {
                    log::error!(
                        "spool: reading messages back from {} failed, trying again in 1 s: {error}",
                        self.dir.join(SPOOL_FILE).display()
                    );
                    std::thread::sleep(Duration::from_secs(1));
                    return;
                }
            };
            let complete = rows.len() < limit;
            let mut next = from;
            for (first, count, bytes, decoded) in rows {
                // What the unreadable messages held is what the chunk counts
                // beyond its whole records: given back with the first of them
                // (once, when the chunk's first gap is reached).
                let mut lost_bytes = (bytes.max(0) as u64).saturating_sub(
                    decoded
                        .records
                        .iter()
                        .map(|record| record.payload.len() as u64)
                        .sum(),
                );
                for (gap, &(lost_from, lost_to)) in decoded.missing.iter().enumerate() {
                    if lost_to < from {
                        continue;
                    }
                    if gap > 0 {
                        lost_bytes = 0;
                    }
                    log::error!(
                        "spool: messages {}..={lost_to} in {} do not check (the disk changed them); they are dropped",
                        lost_from.max(from),
                        self.dir.join(SPOOL_FILE).display()
                    );
                    let ids = lost_from.max(from)..=lost_to;
                    self.lost
                        .extend(ids.map(|id| (id, std::mem::take(&mut lost_bytes))));
                }
                for record in decoded.records {
                    if record.id < from {
                        continue;
                    }
                    let Some(slot) = forward.try_slot() else {
                        self.disk_from = Some(record.id);
                        return;
                    };
                    forward.forward(
                        Spooled {
                            id: record.id,
                            payload: record.payload,
                            source: record.source,
                        },
                        slot,
                    );
                }
                next = next.max(first + count);
            }
            self.disk_from = if complete || next >= self.next_id {
                None
            } else {
                Some(next)
            };
        }
    }

    /// Lets the queue end once no publisher is left and nothing waits on disk.
    fn end_queue_when_done(&mut self) {
        if self.publishers_gone && self.disk_from.is_none() {
            self.forward = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files in `spool` that were moved aside as damaged.
    fn moved_aside(spool: &Path) -> Vec<String> {
        std::fs::read_dir(spool)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("spool.corrupt-"))
            .collect()
    }

    #[test]
    fn an_empty_directory_opens_as_an_empty_spool() {
        let dir = tempfile::tempdir().unwrap();
        let opened = open(&dir.path().join("spool")).unwrap();
        assert_eq!(opened.found.messages, 0);
        assert_eq!(opened.found.next_id, 1);
        assert_eq!(opened.lost, 0);
    }

    #[test]
    fn a_second_open_of_the_same_spool_is_refused_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let first = open(&spool).unwrap();
        let error = match open(&spool) {
            Ok(_) => panic!("a second open of a spool in use succeeded"),
            Err(error) => error,
        };
        assert!(matches!(error, SpoolError::InUse { .. }), "{error}");
        assert!(error.to_string().contains("broker.spool.path"), "{error}");
        assert!(
            error
                .to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{error}"
        );
        // Nothing was taken for damage and moved aside.
        assert_eq!(moved_aside(&spool), Vec::<String>::new());
        drop(first);
        open(&spool).unwrap();
    }

    #[test]
    fn a_spool_that_cannot_be_opened_is_an_error_not_damage() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        // A directory where the database should be: SQLite cannot open it,
        // and it is not a damaged database to move aside.
        std::fs::create_dir_all(spool.join(SPOOL_FILE)).unwrap();
        let error = match open(&spool) {
            Ok(_) => panic!("opened a directory as the spool database"),
            Err(error) => error,
        };
        assert!(matches!(error, SpoolError::Open { .. }), "{error}");
        assert!(spool.join(SPOOL_FILE).is_dir());
        assert_eq!(moved_aside(&spool), Vec::<String>::new());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside_and_the_spool_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir_all(&spool).unwrap();
        std::fs::write(spool.join(SPOOL_FILE), vec![0xa5u8; 10_000]).unwrap();
        let opened = open(&spool).unwrap();
        assert_eq!(opened.found.messages, 0);
        assert_eq!(moved_aside(&spool).len(), 1);
    }
}
