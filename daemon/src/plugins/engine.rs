//! The sandbox every plugin runs in: one shared wasmtime `Engine` with epoch
//! interruption, a `Linker` that satisfies the WASI imports of a wasip2 guest
//! while granting nothing, and the per-store state that caps memory and keeps
//! the tail of the guest's stderr (where a Rust panic message lands).

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{
    HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

/// How often the epoch advances; CPU deadlines are counted in these ticks.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of a guest's stderr is kept for error messages.
const STDERR_TAIL: usize = 2048;

/// The engine shared by every plugin, with its epoch ticker started.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        let engine = Engine::new(&config).expect("the plugin engine configuration is valid");
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("plugin-epoch".to_owned())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .expect("spawning the plugin epoch thread");
        engine
    })
}

/// The linker shared by every plugin: WASI p2, backed by a context granting nothing.
pub(crate) fn linker() -> Result<&'static Linker<HostState>, String> {
    static LINKER: OnceLock<Result<Linker<HostState>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| {
            let mut linker = Linker::new(engine());
            wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
                .map_err(|error| format!("cannot link WASI for plugins: {error}"))?;
            Ok(linker)
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// What a plugin's store holds: its (empty) WASI context, its memory cap and
/// its captured stderr.
pub(crate) struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryCap,
    pub(crate) stderr: CapturedStderr,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("HostState")
            .field("limiter", &self.limiter)
            .finish_non_exhaustive()
    }
}

impl HostState {
    /// A state with no capabilities and at most `memory_bytes` of linear memory.
    pub(crate) fn new(memory_bytes: usize) -> HostState {
        let stderr = CapturedStderr::default();
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        HostState {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max_bytes: memory_bytes,
                hit: false,
            },
            stderr,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps a plugin's linear memory (and tables) and remembers whether it hit the cap.
#[derive(Debug)]
pub(crate) struct MemoryCap {
    pub(crate) max_bytes: usize,
    pub(crate) hit: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = true;
            return Err(wasmtime::format_err!(
                "exceeded its memory cap of {} MiB",
                self.max_bytes / (1024 * 1024)
            ));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Clocks that never move: plugins get no clock.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }

    fn now(&self) -> u64 {
        0
    }
}

/// The last few KiB a guest wrote to stderr; never blocks or fails the guest.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedStderr {
    tail: Arc<Mutex<Vec<u8>>>,
}

impl CapturedStderr {
    /// Takes what was captured so far, as text.
    pub(crate) fn take(&self) -> String {
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let text = String::from_utf8_lossy(&tail).trim().to_owned();
        tail.clear();
        text
    }

    fn append(&self, bytes: &[u8]) {
        let mut tail = self
            .tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.extend_from_slice(bytes);
        if tail.len() > STDERR_TAIL {
            let excess = tail.len() - STDERR_TAIL;
            tail.drain(..excess);
        }
    }
}

impl IsTerminal for CapturedStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

impl OutputStream for CapturedStderr {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait::async_trait]
impl Pollable for CapturedStderr {
    async fn ready(&mut self) {}
}
