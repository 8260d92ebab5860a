//! The running service: configuration, scheduler and state, and reloads between them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError, Global};
use crate::scheduler::{DrainReport, Scheduler};
use crate::state::State;

/// A configuration applied to a running scheduler, and the means to replace it.
pub struct Exporter {
    path: PathBuf,
    env: Option<HashMap<String, String>>,
    state: Arc<State>,
    scheduler: Scheduler,
    registry: Registry,
    global: Mutex<Global>,
    reloading: tokio::sync::Mutex<()>,
    /// Counts applied configurations, so that a start-up that waits for Vault does not apply
    /// its configuration after a reload replaced it.
    generation: AtomicU64,
}

impl Exporter {
    /// Loads the configuration at `path` and starts its checks. Must be called inside a tokio
    /// runtime.
    pub fn start(path: &Path) -> Result<Arc<Exporter>, ConfigError> {
        Self::start_with_env(path, None)
    }

    /// Like [`Exporter::start`], with environment overrides taken from `env`.
    pub fn start_with_env(
        path: &Path,
        env: Option<HashMap<String, String>>,
    ) -> Result<Arc<Exporter>, ConfigError> {
        let config = config::load_with_env(path, env.clone())?;
        Ok(Self::start_loaded(path, env, config))
    }

    /// Starts the checks of `config`, already loaded from `path` with the environment `env`
    /// (`None` for the process environment), which reloads read again.
    pub fn start_loaded(
        path: &Path,
        env: Option<HashMap<String, String>>,
        config: Config,
    ) -> Arc<Exporter> {
        let state = Arc::new(State::new());
        state.set_external_url(
            config
                .global
                .external_url
                .as_ref()
                .map(|url| url.to_string()),
        );
        let scheduler = Scheduler::new(state.clone());
        info!(
            config = %path.display(),
            checks = config.checks.len(),
            blocking = config::blocking_count(&config.checks),
            sections = config::sections(&config.checks).len(),
            "Configuration loaded"
        );
        warn_if_nothing_blocks(&config);
        let exporter = Arc::new(Exporter {
            path: path.to_path_buf(),
            env,
            registry: crate::metrics::registry(state.clone()),
            state,
            scheduler,
            global: Mutex::new(config.global.clone()),
            reloading: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
        });
        match config.vault.clone() {
            None => exporter.scheduler.apply(&config),
            Some(vault) => {
                // Checks start once Vault secret references are read, so that their first run
                // does not report a secret that is merely not read yet. Until then they are
                // listed as not run.
                exporter.state.set_checks(&config.checks);
                let starting = exporter.clone();
                tokio::spawn(async move {
                    vault.start().await;
                    starting.apply_initial(&config).await;
                });
            }
        }
        exporter
    }

    async fn apply_initial(&self, config: &Config) {
        let _serialised = self.reloading.lock().await;
        if self.generation.load(Ordering::SeqCst) == 0 {
            self.scheduler.apply(config);
        }
    }

    /// Loads the configuration file again and applies it. An invalid file changes nothing: the
    /// running checks go on, every problem is logged and the reload metrics record the failure.
    pub async fn reload(&self) -> Result<usize, ConfigError> {
        let _serialised = self.reloading.lock().await;
        let path = self.path.clone();
        let env = self.env.clone();
        // Reading files (CA bundles among them) blocks, so it runs off the async workers.
        let loaded = tokio::task::spawn_blocking(move || config::load_with_env(&path, env))
            .await
            .unwrap_or_else(|_| {
                Err(ConfigError::Syntax {
                    path: self.path.clone(),
                    message: "the loader panicked".to_string(),
                })
            });
        let now = SystemTime::now();
        if let Ok(Config {
            vault: Some(vault), ..
        }) = &loaded
        {
            vault.start().await;
        }
        match loaded {
            Ok(config) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                let mut global = self.global.lock().unwrap_or_else(|e| e.into_inner());
                if config.global.listen_address != global.listen_address {
                    warn!(
                        listen_address = %config.global.listen_address,
                        "The new listen address takes effect after a restart"
                    );
                }
                self.scheduler.apply(&config);
                self.state.set_external_url(
                    config
                        .global
                        .external_url
                        .as_ref()
                        .map(|url| url.to_string()),
                );
                *global = config.global.clone();
                self.state.set_reload(true, now);
                info!(config = %self.path.display(), checks = config.checks.len(), blocking = config::blocking_count(&config.checks), "Configuration reloaded");
                warn_if_nothing_blocks(&config);
                Ok(config.checks.len())
            }
            Err(err) => {
                self.state.set_reload(false, now);
                match &err {
                    ConfigError::Invalid { problems, .. } => {
                        for problem in problems {
                            error!(config = %self.path.display(), problem = %problem, "Configuration problem");
                        }
                        error!(config = %self.path.display(), problems = problems.len(), "Reload rejected; the previous configuration stays in effect");
                    }
                    other => {
                        error!(config = %self.path.display(), error = %other, "Reload rejected; the previous configuration stays in effect");
                    }
                }
                Err(err)
            }
        }
    }

    /// The store of results.
    pub fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// The registry whose encoding is `/metrics`.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The `global` block in effect.
    pub fn global(&self) -> Global {
        self.global
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the schedule for a graceful shutdown and waits, within a limit, for the runs in
    /// flight to finish. See [`Scheduler::drain`].
    pub async fn drain(&self) -> DrainReport {
        self.scheduler.drain().await
    }

    /// Returns the number of check runs in flight at this moment.
    pub fn in_flight(&self) -> usize {
        self.scheduler.in_flight()
    }

    /// Stops every check.
    pub fn stop(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.scheduler.stop();
    }
}

/// Logs a warning when no check of `config` is blocking, because the gate then never closes.
fn warn_if_nothing_blocks(config: &Config) {
    if config::blocking_count(&config.checks) == 0 {
        warn!("{}", config::NO_BLOCKING_CHECK);
    }
}
