//! Turning a `.wasm` file into a validated, ready-to-instantiate plugin: read
//! it, tell apart "not Wasm", "core module" and "component", compile it (or load
//! the cached compilation), check it implements this version of the contract,
//! link it, and run its self-check (`info` and `init` with its config).

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmtime::component::{Component, ComponentExportIndex, Func, Instance};
use wasmtime::{Store, Trap};

use super::bindings::{CONTRACT_PACKAGE, CONTRACT_VERSION, PROCESSOR_INTERFACE, Plugin, PluginPre};
use super::cache::{ComponentCache, sha256_hex};
use super::engine::{EPOCH_TICK, HostState, engine, linker};
use super::lifting::{Outcomes, ResultLimits};
use super::lowering::Batch;
use super::{PluginError, RuntimeOptions, bindings as wit};
use crate::config::{OnError, PluginConfig};

/// A compiled, linked and self-checked plugin, shared by every worker.
pub(crate) struct LoadedPlugin {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
    pub(crate) pre: PluginPre<HostState>,
    /// The contract's `process`, called with a [`Batch`].
    process: ComponentExportIndex,
    pub(crate) info: wit::PluginInfo,
    pub(crate) config_json: String,
    pub(crate) on_error: OnError,
    pub(crate) timeout: Duration,
    pub(crate) memory_bytes: usize,
    /// What the `process` calls for one batch, and one post's changes, may return.
    pub(crate) limits: ResultLimits,
    pub(crate) exports: Vec<String>,
    pub(crate) imports: Vec<String>,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("LoadedPlugin")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("version", &self.info.version)
            .field("on_error", &self.on_error)
            .field("timeout", &self.timeout)
            .field("memory_bytes", &self.memory_bytes)
            .finish_non_exhaustive()
    }
}

/// A live instance of a plugin: its own store (memory, limits) and exports.
pub(crate) struct Live {
    pub(crate) store: Store<HostState>,
    pub(crate) plugin: Plugin,
    process: Func,
}

/// Loads and self-checks the plugin of one `[[plugins]]` entry.
pub(crate) fn load_plugin(
    config: &PluginConfig,
    options: &RuntimeOptions,
) -> Result<LoadedPlugin, PluginError> {
    load_plugin_with(config, options, true)
}

/// Loads a plugin; with `run_init` false its configuration is not tried yet.
pub(crate) fn load_plugin_with(
    config: &PluginConfig,
    options: &RuntimeOptions,
    run_init: bool,
) -> Result<LoadedPlugin, PluginError> {
    off_runtime(|| load_plugin_now(config, options, run_init))
}

/// Runs `call` (which calls into a plugin) where wasmtime-wasi's synchronous
/// host functions may block on a future: its own runtime, not the caller's
/// tokio one (where it would panic with "Cannot start a runtime from within a
/// runtime"). Loading and instantiating are rare, so a thread for each costs
/// nothing; `process` calls already run on blocking threads.
fn off_runtime<R: Send>(call: impl FnOnce() -> R + Send) -> R {
    if tokio::runtime::Handle::try_current().is_err() {
        return call();
    }
    std::thread::scope(|scope| match scope.spawn(call).join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn load_plugin_now(
    config: &PluginConfig,
    options: &RuntimeOptions,
    run_init: bool,
) -> Result<LoadedPlugin, PluginError> {
    let name = config.display_name();
    let path = config.path.clone();
    let load_error = |message: String| PluginError::Load {
        plugin: name.clone(),
        message,
    };
    let bytes = std::fs::read(&path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => PluginError::Missing {
            plugin: name.clone(),
            path: path.clone(),
        },
        _ => PluginError::Read {
            plugin: name.clone(),
            path: path.clone(),
            source: error,
        },
    })?;
    match wasm_kind(&bytes) {
        WasmKind::Component => {}
        WasmKind::CoreModule => {
            return Err(PluginError::CoreModule { plugin: name, path });
        }
        WasmKind::NotWasm => return Err(PluginError::NotWasm { plugin: name, path }),
    }

    let engine = engine();
    let sha256 = sha256_hex(&bytes);
    let cache = options
        .cache_dir
        .clone()
        .map(|dir| ComponentCache::new(dir, engine));
    let cached = cache.as_ref().and_then(|cache| cache.load(engine, &sha256));
    let component = match cached {
        Some(component) => component,
        None => {
            let component =
                Component::new(engine, &bytes).map_err(|error| PluginError::Compile {
                    plugin: name.clone(),
                    message: format!("{error:#}"),
                })?;
            if let Some(cache) = &cache {
                cache.store(&sha256, &component);
            }
            component
        }
    };
    check_contract(&component, &name)?;
    let component_type = component.component_type();
    let exports = component_type
        .exports(engine)
        .map(|(export, _)| export.to_owned())
        .collect();
    let imports: Vec<String> = component_type
        .imports(engine)
        .map(|(import, _)| import.to_owned())
        .collect();

    let linker = linker().map_err(load_error)?;
    let instance_pre = linker.instantiate_pre(&component).map_err(|error| {
        let refused: Vec<String> = imports
            .iter()
            .filter(|import| super::engine::granted(import).is_none())
            .map(|import| format!("`{import}`"))
            .collect();
        let message = match refused.is_empty() {
            true => format!("{error:#}"),
            false => format!("it imports {}, not granted", refused.join(", ")),
        };
        PluginError::Capability {
            plugin: name.clone(),
            message,
            imports: imports.clone(),
        }
    })?;
    let pre = PluginPre::new(instance_pre).map_err(|error| PluginError::Contract {
        plugin: name.clone(),
        message: format!("{error:#}"),
    })?;
    let process = process_export(&component).ok_or_else(|| PluginError::Contract {
        plugin: name.clone(),
        message: format!(
            "it exports `{PROCESSOR_INTERFACE}@{CONTRACT_VERSION}` without its `process` function"
        ),
    })?;
    let config_json = serde_json::to_string(&config.config)
        .map_err(|error| load_error(format!("cannot pass its config as JSON: {error}")))?;

    let memory_bytes = mib_to_bytes(config.memory_mb.unwrap_or(options.default_memory_mb));
    let limits = ResultLimits {
        call_bytes: config
            .max_result_mb
            .map(mib_to_bytes)
            .unwrap_or((memory_bytes / 4).max(1024 * 1024)),
        post_bytes: config
            .max_post_kb
            .map(|kib| usize::try_from(kib.saturating_mul(1024)).unwrap_or(usize::MAX))
            .unwrap_or(DEFAULT_MAX_POST_BYTES),
        spent: 0,
        outcomes: None,
    };
    let mut plugin = LoadedPlugin {
        name: name.clone(),
        path,
        pre,
        process,
        info: wit::PluginInfo {
            name: String::new(),
            version: String::new(),
            reads: super::convert::all_fields(),
        },
        config_json,
        on_error: config.on_error,
        timeout: config.timeout.unwrap_or(options.default_timeout),
        memory_bytes,
        limits,
        exports,
        imports,
        size: bytes.len() as u64,
        sha256,
    };
    // The self-check: describe yourself, then accept your configuration.
    let mut live = plugin.instantiate_uninit()?;
    let info = live
        .call(&plugin, |plugin, store| {
            plugin.tweetpipe_plugin_processor().call_info(store)
        })
        .map_err(|reason| PluginError::SelfCheck {
            plugin: name.clone(),
            message: format!("`info` failed: {reason}"),
        })?;
    plugin.info = info;
    if run_init {
        live.init(&plugin)?;
    }
    Ok(plugin)
}

impl LoadedPlugin {
    /// A fresh instance, initialised with the plugin's config.
    pub(crate) fn instantiate(&self) -> Result<Live, PluginError> {
        off_runtime(|| {
            let mut live = self.instantiate_uninit()?;
            live.init(self)?;
            Ok(live)
        })
    }

    fn instantiate_uninit(&self) -> Result<Live, PluginError> {
        let mut store = Store::new(engine(), HostState::new(&self.name, self.memory_bytes));
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(deadline_ticks(self.timeout));
        let instance = self
            .pre
            .instance_pre()
            .instantiate(&mut store)
            .map_err(|error| PluginError::Instantiate {
                plugin: self.name.clone(),
                message: describe_failure(&error, &mut store, self.timeout),
            })?;
        let contract =
            |store: &mut Store<HostState>, error: wasmtime::Error| PluginError::Contract {
                plugin: self.name.clone(),
                message: mistyped_export(store, &instance).unwrap_or_else(|| format!("{error:#}")),
            };
        let plugin = match Plugin::new(&mut store, &instance) {
            Ok(plugin) => plugin,
            Err(error) => return Err(contract(&mut store, error)),
        };
        let Some(process) = instance.get_func(&mut store, self.process) else {
            let error = wasmtime::Error::msg("its `process` export is not a function");
            return Err(contract(&mut store, error));
        };
        // The batch and the outcomes type-check as the contract's `batch`
        // record and `list<outcome>`.
        if let Err(error) = process.typed::<(&Batch,), (Vec<wit::Outcome>,)>(&store) {
            return Err(contract(&mut store, error));
        }
        Ok(Live {
            store,
            plugin,
            process,
        })
    }

    /// One line describing the plugin for logs and `plugin check`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({} {}, contract {CONTRACT_PACKAGE}@{CONTRACT_VERSION}, {} bytes)",
            self.name, self.info.name, self.info.version, self.size
        )
    }
}

impl Live {
    /// Runs `call` under the plugin's CPU deadline; a failure is described as the
    /// reason that goes into the dead letter. After a failure the instance must
    /// be discarded.
    pub(crate) fn call<R>(
        &mut self,
        plugin: &LoadedPlugin,
        call: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, String> {
        self.store
            .set_epoch_deadline(deadline_ticks(plugin.timeout));
        call(&self.plugin, &mut self.store)
            .map_err(|error| describe_failure(&error, &mut self.store, plugin.timeout))
    }

    /// Calls the plugin's `process` with `batch`, within what is left of
    /// `limits` (which counts what it returns).
    pub(crate) fn process(
        &mut self,
        plugin: &LoadedPlugin,
        batch: &Batch,
        limits: &mut ResultLimits,
    ) -> Result<Outcomes, String> {
        let process = self.process;
        limits.outcomes = Some(batch.posts.len());
        self.call(plugin, |_, store| {
            let process = process.typed::<(&Batch,), (Vec<wit::Outcome>,)>(&*store)?;
            super::lifting::lift_within(store, limits, |store| {
                process.call(store, (batch,)).map(|(outcomes,)| outcomes)
            })
        })
    }

    fn init(&mut self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        let config = plugin.config_json.clone();
        match self.call(plugin, |bindings, store| {
            bindings
                .tweetpipe_plugin_processor()
                .call_init(store, &config)
        }) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(PluginError::Init {
                plugin: plugin.name.clone(),
                message,
            }),
            Err(reason) => Err(PluginError::InitFailed {
                plugin: plugin.name.clone(),
                message: reason,
                timeout_ms: plugin.timeout.as_millis(),
            }),
        }
    }
}

/// The most one post's changes may carry unless its entry sets `max_post_kb`
/// (X posts are at most 25,000 characters); an outcome past it fails that post.
pub(crate) const DEFAULT_MAX_POST_BYTES: usize = 256 * 1024;

fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib.saturating_mul(1024 * 1024)).unwrap_or(usize::MAX)
}

/// Epoch ticks for a timeout: rounded up, plus one because the first tick may
/// come at any moment.
fn deadline_ticks(timeout: Duration) -> u64 {
    let tick = EPOCH_TICK.as_millis().max(1);
    let ticks = timeout.as_millis().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).saturating_add(1)
}

/// Why a call into a plugin failed, in words fit for a dead letter.
pub(crate) fn describe_failure(
    error: &wasmtime::Error,
    store: &mut Store<HostState>,
    timeout: Duration,
) -> String {
    let state = store.data_mut();
    let stderr = state.stderr.take();
    if state.limiter.hit {
        state.limiter.hit = false;
        return format!(
            "exceeded its memory cap of {} MiB",
            state.limiter.max_bytes / (1024 * 1024)
        );
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return format!(
            "called exit({}); a plugin answers every post with an outcome (`fail` for an error) and never exits",
            exit.0
        );
    }
    let trap = error.downcast_ref::<Trap>();
    if trap == Some(&Trap::Interrupt) {
        return format!("exceeded its CPU deadline of {} ms", timeout.as_millis());
    }
    if let Some(panic) = panic_message(&stderr) {
        return format!("panicked: {panic}");
    }
    let what = match trap {
        Some(trap) => format!("trapped: {trap}"),
        None => format!("{:#}", error)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    };
    if stderr.is_empty() {
        what
    } else {
        let tail: String = stderr.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
        format!("{what} (stderr: {tail})")
    }
}

/// The message of a Rust panic printed by the guest's panic hook.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n")?;
    let message = message.split("\nnote: ").next().unwrap_or_default().trim();
    Some(format!("{message} (at {location})"))
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WasmKind {
    NotWasm,
    CoreModule,
    Component,
}

pub(crate) fn wasm_kind(bytes: &[u8]) -> WasmKind {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => WasmKind::CoreModule,
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => WasmKind::Component,
        _ => WasmKind::NotWasm,
    }
}

/// Checks the component exports this version of the contract, with a message
/// that says what it is instead.
fn check_contract(component: &Component, name: &str) -> Result<(), PluginError> {
    let engine = engine();
    let exports: Vec<String> = component
        .component_type()
        .exports(engine)
        .map(|(export, _)| export.to_owned())
        .collect();
    let expected = format!("{PROCESSOR_INTERFACE}@{CONTRACT_VERSION}");
    if exports.contains(&expected) {
        return Ok(());
    }
    let message = match exports
        .iter()
        .find(|export| export.starts_with(&format!("{PROCESSOR_INTERFACE}@")))
    {
        Some(other) => format!(
            "it was built for contract {CONTRACT_PACKAGE}@{} but this tweetpipe implements \
             {CONTRACT_PACKAGE}@{CONTRACT_VERSION}; rebuild it with tweetpipe-plugin {CONTRACT_VERSION}",
            other.rsplit('@').next().unwrap_or_default()
        ),
        None if exports.is_empty() => format!(
            "it exports nothing; a tweetpipe plugin exports `{expected}` (build it with the tweetpipe-plugin SDK)"
        ),
        None => format!(
            "it exports {} but not `{expected}`; it is not a tweetpipe plugin (build it with the tweetpipe-plugin SDK)",
            exports
                .iter()
                .map(|export| format!("`{export}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Err(PluginError::Contract {
        plugin: name.to_owned(),
        message,
    })
}

/// The contract's declaration of `function` (`info: func() -> plugin-info;`),
/// quoted in messages about an export of the wrong type.
fn contract_signature(function: &str) -> String {
    const WIT: &str = include_str!("../../../plugin-sdk/wit/plugin.wit");
    let start = format!("{function}: func(");
    WIT.lines()
        .map(str::trim)
        .find(|line| line.starts_with(&start))
        .map(|line| line.trim_end_matches(';').to_owned())
        .unwrap_or_else(|| format!("{function}: func(..)"))
}

/// Which of the contract's functions the instance lacks or exports with
/// another type, named with the signature the contract declares; `None` when
/// all three type-check.
fn mistyped_export(store: &mut Store<HostState>, instance: &Instance) -> Option<String> {
    type Check = fn(&Func, &Store<HostState>) -> wasmtime::Result<()>;
    let interface = format!("{PROCESSOR_INTERFACE}@{CONTRACT_VERSION}");
    let exported = instance.get_export_index(&mut *store, None, &interface)?;
    let checks: [(&str, Check); 3] = [
        ("info", |func, store| {
            func.typed::<(), (wit::PluginInfo,)>(store).map(drop)
        }),
        ("init", |func, store| {
            func.typed::<(&str,), (Result<(), String>,)>(store)
                .map(drop)
        }),
        ("process", |func, store| {
            func.typed::<(&Batch,), (Vec<wit::Outcome>,)>(store)
                .map(drop)
        }),
    ];
    for (name, check) in checks {
        let expected = contract_signature(name);
        let func = instance
            .get_export_index(&mut *store, Some(&exported), name)
            .and_then(|index| instance.get_func(&mut *store, index));
        let Some(func) = func else {
            return Some(format!(
                "it exports `{interface}` without the function `{name}`; the contract declares `{expected}`"
            ));
        };
        if let Err(error) = check(&func, store) {
            return Some(format!(
                "its export `{name}` of `{interface}` has the wrong type ({error:#}); the contract declares `{expected}` (rebuild it against plugin-sdk/wit of tweetpipe-plugin {CONTRACT_VERSION})"
            ));
        }
    }
    None
}

/// Where the contract's `process` function is among the component's exports.
fn process_export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = format!("{PROCESSOR_INTERFACE}@{CONTRACT_VERSION}");
    let (_, interface) = component.get_export(None, &interface)?;
    let (_, process) = component.get_export(Some(&interface), "process")?;
    Some(process)
}

/// The display name for a plugin file given on the command line.
pub(crate) fn name_for_path(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}
