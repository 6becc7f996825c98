//! The sandbox every plugin runs in: one shared wasmtime `Engine` with epoch
//! interruption, a `Linker` that satisfies the WASI imports of a wasip2 guest
//! while granting nothing, and the per-store state that caps memory and keeps
//! the tail of the guest's stderr (where a Rust panic message lands).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The WASI interfaces a plugin may import, each with what it grants. The
/// filesystem and sockets interfaces are linked empty (Python and JavaScript
/// runtimes import them unconditionally); anything else is not linked, so a
/// plugin importing it fails at load with [`super::PluginError::Capability`].
pub(crate) const GRANTED: &[(&str, &str)] = &[
    ("wasi:io/error", "error values of the streams below"),
    (
        "wasi:io/poll",
        "never waits: every pollable a plugin can make is ready at once",
    ),
    (
        "wasi:io/streams",
        "only stdin (empty), stdout and stderr (to the daemon log)",
    ),
    ("wasi:cli/environment", "empty: no variables, no arguments"),
    ("wasi:cli/exit", "exit fails the call with its code"),
    ("wasi:cli/stdin", "empty"),
    ("wasi:cli/stdout", "lines go to the daemon log"),
    ("wasi:cli/stderr", "lines go to the daemon log"),
    ("wasi:cli/terminal-input", "no terminal"),
    ("wasi:cli/terminal-output", "no terminal"),
    ("wasi:cli/terminal-stdin", "no terminal"),
    ("wasi:cli/terminal-stdout", "no terminal"),
    ("wasi:cli/terminal-stderr", "no terminal"),
    ("wasi:clocks/wall-clock", "frozen at 0"),
    (
        "wasi:clocks/monotonic-clock",
        "frozen at 0; a sleep returns at once",
    ),
    ("wasi:random/random", "random bytes"),
    ("wasi:random/insecure", "random bytes"),
    ("wasi:random/insecure-seed", "a random seed"),
    (
        "wasi:filesystem/preopens",
        "no directories: there is no file a plugin can open",
    ),
    (
        "wasi:filesystem/types",
        "types only: with no directory there is no descriptor to use",
    ),
    (
        "wasi:sockets/network",
        "no network: every address is refused",
    ),
    (
        "wasi:sockets/instance-network",
        "no network: every address is refused",
    ),
    ("wasi:sockets/tcp-create-socket", "refused: no TCP"),
    ("wasi:sockets/tcp", "refused: no TCP"),
    ("wasi:sockets/udp-create-socket", "refused: no UDP"),
    ("wasi:sockets/udp", "refused: no UDP"),
    ("wasi:sockets/ip-name-lookup", "refused: no name lookup"),
];

/// What the sandbox grants for `import` (`wasi:cli/stdout@0.2.6`), if anything.
pub(crate) fn granted(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    GRANTED
        .iter()
        .find(|(name, _)| *name == interface)
        .map(|(_, what)| *what)
}

/// The version of the WASI interfaces the linker defines; guests importing an
/// older 0.2 release are matched to it.
const WASI_VERSION: &str = "0.2.6";

/// Table access for the `wasi:io` host traits, which wasmtime-wasi implements
/// on the resource table itself.
struct HasIo;

impl wasmtime::component::HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The linker shared by every plugin: only the WASI interfaces in [`GRANTED`],
/// none of which can wait.
pub(crate) fn linker() -> Result<&'static Linker<HostState>, String> {
    static LINKER: OnceLock<Result<Linker<HostState>, String>> = OnceLock::new();
    LINKER
        .get_or_init(|| {
            build_linker().map_err(|error| format!("cannot link WASI for plugins: {error:#}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn build_linker() -> wasmtime::Result<Linker<HostState>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    let mut linker = Linker::new(engine());
    let l = &mut linker;
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<_, HasIo>(
        l,
        |state: &mut HostState| &mut state.table,
    )?;
    sync::io::poll::add_to_linker::<_, HasIo>(l, |state| &mut state.table)?;
    sync::io::streams::add_to_linker::<_, HasIo>(l, |state| &mut state.table)?;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, |state| state.clocks())?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, |state| state.clocks())?;
    random::random::add_to_linker::<_, WasiRandom>(l, |state| state.wasi.random())?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, |state| state.wasi.random())?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, |state| state.wasi.random())?;
    cli::exit::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::environment::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, |state| state.cli())?;
    // Python and JavaScript runtimes import the filesystem and sockets
    // interfaces whether or not a plugin uses them. They are linked with
    // nothing behind them: no preopened directory (so no file can be named),
    // no TCP, UDP or name lookup (creating a socket is refused).
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{filesystem, sockets};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, |state| state.filesystem())?;
    sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, |state| state.filesystem())?;
    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;
    sockets::network::add_to_linker::<_, WasiSockets>(
        l,
        &sockets::network::LinkOptions::default(),
        |state| state.sockets(),
    )?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;
    sync::sockets::tcp::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;
    sync::sockets::udp::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;
    sync::sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, |state| state.sockets())?;

    // wasmtime-wasi's clock subscriptions are tokio timers, which a plugin
    // would wait on in `poll` (out of reach of the epoch deadline, and inside
    // whatever runtime the call is made from). The clocks are frozen, so a
    // subscription is due at once.
    linker.allow_shadowing(true);
    let mut clock = linker.instance(&format!("wasi:clocks/monotonic-clock@{WASI_VERSION}"))?;
    clock.func_wrap(
        "subscribe-duration",
        |mut store: wasmtime::StoreContextMut<'_, HostState>, (_,): (u64,)| {
            let due = store.data_mut().table.push(Due)?;
            Ok((wasmtime_wasi::p2::subscribe(
                &mut store.data_mut().table,
                due,
            )?,))
        },
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |mut store: wasmtime::StoreContextMut<'_, HostState>, (_,): (u64,)| {
            let due = store.data_mut().table.push(Due)?;
            Ok((wasmtime_wasi::p2::subscribe(
                &mut store.data_mut().table,
                due,
            )?,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(linker)
}

/// A clock subscription: always due, since plugin clocks never move.
struct Due;

#[async_trait::async_trait]
impl Pollable for Due {
    async fn ready(&mut self) {}
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
    /// A state with no capabilities and at most `memory_bytes` of linear
    /// memory; what the guest prints is logged as `plugin`'s.
    pub(crate) fn new(plugin: &str, memory_bytes: usize) -> HostState {
        let stderr = CapturedStderr::new(plugin, "stderr");
        let wasi = WasiCtxBuilder::new()
            .stdout(CapturedStderr::new(plugin, "stdout"))
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

/// Longest line of plugin output logged; the rest of a longer line is cut.
pub(crate) const OUTPUT_LINE_MAX: usize = 4096;

/// Lines of output one plugin instance may log per second; the excess is counted, not logged.
pub(crate) const OUTPUT_LINES_PER_SECOND: u32 = 50;

/// Lines of plugin output not logged whole (cut, or over the rate), per
/// plugin name, for the metrics. One counter per name, shared by every
/// instance and version of that plugin.
static OUTPUT_LINES_DROPPED: Mutex<BTreeMap<String, Arc<AtomicU64>>> = Mutex::new(BTreeMap::new());

/// The counter of dropped output lines of `plugin`.
fn output_dropped_counter(plugin: &str) -> Arc<AtomicU64> {
    let mut counters = OUTPUT_LINES_DROPPED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    Arc::clone(counters.entry(plugin.to_owned()).or_default())
}

/// Per plugin name, the lines of its output that were cut or not logged.
pub(crate) fn output_lines_dropped() -> Vec<(String, u64)> {
    let counters = OUTPUT_LINES_DROPPED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    counters
        .iter()
        .map(|(plugin, count)| (plugin.clone(), count.load(Ordering::Relaxed)))
        .collect()
}

/// One of a guest's output streams: each line goes to the daemon's log,
/// prefixed with the plugin's name, cut at [`OUTPUT_LINE_MAX`] and limited to
/// [`OUTPUT_LINES_PER_SECOND`]; stderr also keeps its last few KiB for error
/// messages (where a Rust panic message lands). Never blocks or fails the guest.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapturedStderr {
    tail: Arc<Mutex<Output>>,
}

#[derive(Debug, Default)]
struct Output {
    plugin: String,
    stream: &'static str,
    /// The last bytes written, kept for error messages (stderr only).
    tail: Vec<u8>,
    /// The line being written, up to [`OUTPUT_LINE_MAX`] bytes.
    line: Vec<u8>,
    /// Bytes of the current line past the cut.
    cut: usize,
    /// The current rate window and the lines logged in it.
    window: Option<std::time::Instant>,
    logged: u32,
    /// This plugin's count of lines cut or not logged.
    dropped: Arc<AtomicU64>,
}

impl Output {
    fn end_line(&mut self) {
        let now = std::time::Instant::now();
        if self
            .window
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1))
        {
            self.window = Some(now);
            self.logged = 0;
        }
        if self.logged >= OUTPUT_LINES_PER_SECOND {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            self.logged += 1;
            let line = String::from_utf8_lossy(&self.line);
            if self.cut > 0 {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "plugin {} {}: {} [cut {} bytes]",
                    self.plugin,
                    self.stream,
                    line.trim_end(),
                    self.cut
                );
            } else {
                log::info!(
                    "plugin {} {}: {}",
                    self.plugin,
                    self.stream,
                    line.trim_end()
                );
            }
        }
        self.line.clear();
        self.cut = 0;
    }
}

impl CapturedStderr {
    fn new(plugin: &str, stream: &'static str) -> CapturedStderr {
        CapturedStderr {
            tail: Arc::new(Mutex::new(Output {
                plugin: plugin.to_owned(),
                stream,
                tail: Vec::new(),
                line: Vec::new(),
                cut: 0,
                window: None,
                logged: 0,
                dropped: output_dropped_counter(plugin),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Output> {
        self.tail
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes what was captured so far, as text.
    pub(crate) fn take(&self) -> String {
        let mut output = self.lock();
        let text = String::from_utf8_lossy(&output.tail).trim().to_owned();
        output.tail.clear();
        text
    }

    fn append(&self, bytes: &[u8]) {
        let mut output = self.lock();
        if output.stream == "stderr" {
            output.tail.extend_from_slice(bytes);
            if output.tail.len() > STDERR_TAIL {
                let excess = output.tail.len() - STDERR_TAIL;
                output.tail.drain(..excess);
            }
        }
        for piece in bytes.split_inclusive(|byte| *byte == b'\n') {
            let (text, ends) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            let room = OUTPUT_LINE_MAX.saturating_sub(output.line.len());
            let kept = text.len().min(room);
            output.line.extend_from_slice(&text[..kept]);
            output.cut += text.len() - kept;
            if ends {
                output.end_line();
            }
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.line.is_empty() || self.cut > 0 {
            self.end_line();
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
