//! Hot reload: on SIGHUP or a change in the policy directory, load and check the set off
//! the request path and swap it in atomically. A set that fails keeps the last good one
//! serving; the failure shows in `/v1/policy` and the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use compiler::diag::Severity;
use tokio::sync::mpsc;

use super::AppState;
use crate::engine::{Engine, EngineError, EngineOptions};

/// How long the watcher waits for a burst of file events (an editor's save, a `git pull`)
/// to settle before reloading once.
const SETTLE: Duration = Duration::from_millis(250);

/// Loads the directory again and swaps it in, or records why not. The identity provider's
/// keys are read again too, so a rotated JWKS takes effect without a restart; if they
/// cannot be read, the keys already loaded keep working.
pub(crate) fn reload(state: &AppState, dir: &Path, options: &EngineOptions) {
    if let Some(verifier) = &state.verifier
        && let Err(error) = verifier.refresh()
    {
        super::notice!("flowgate: keeping the previous signing keys: {error}");
    }
    // The checker's expiry warnings use the clock at reload time.
    let options = EngineOptions {
        now: super::now(),
        ..options.clone()
    };
    match Engine::load(dir, options) {
        Ok(engine) => {
            // Bookkeeping first: whoever sees the new set also sees its load recorded.
            state.loaded_at.store(super::now(), Ordering::Relaxed);
            state.metrics.reloads_ok.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut error) = state.last_reload_error.lock() {
                *error = None;
            }
            state.engine.store(Arc::new(engine));
        }
        Err(error) => {
            state.metrics.reloads_failed.fetch_add(1, Ordering::Relaxed);
            let reason = describe(&error);
            super::notice!(
                "flowgate: reload rejected, still serving the last good policy: {reason}"
            );
            if let Ok(mut last) = state.last_reload_error.lock() {
                *last = Some(reason);
            }
        }
    }
}

fn describe(error: &EngineError) -> String {
    match error {
        EngineError::Load(error) => error.to_string(),
        EngineError::Invalid {
            sources,
            diagnostics,
        } => {
            let errors: Vec<_> = diagnostics
                .iter()
                .filter(|diagnostic| diagnostic.severity == Severity::Error)
                .collect();
            match errors.first() {
                Some(first) => format!(
                    "{} error(s); first: {}: {} [{}]",
                    errors.len(),
                    sources.location(first.primary.span),
                    first.message,
                    first.code.as_str()
                ),
                None => String::from("the policy set does not pass the checker"),
            }
        }
    }
}

/// Reloads on SIGHUP and, when `watch` is set, on changes below `dir`, until the process
/// ends. Loading runs on a blocking thread so decisions are never delayed by it.
pub(crate) fn spawn(state: Arc<AppState>, dir: PathBuf, options: EngineOptions, watch: bool) {
    let (sender, mut receiver) = mpsc::channel::<()>(16);
    #[cfg(unix)]
    {
        let sender = sender.clone();
        tokio::spawn(async move {
            let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hangup.recv().await.is_some() {
                let _ = sender.try_send(());
            }
        });
    }
    let watcher = if watch {
        start_watcher(&dir, sender)
    } else {
        None
    };
    tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        while receiver.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while receiver.try_recv().is_ok() {}
            let state = state.clone();
            let dir = dir.clone();
            let options = options.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&state, &dir, &options)).await;
        }
    });
}

fn start_watcher(dir: &Path, sender: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|event| !event.kind.is_access()) {
            let _ = sender.try_send(());
        }
    })
    .ok()?;
    match watcher.watch(dir, notify::RecursiveMode::Recursive) {
        Ok(()) => Some(watcher),
        Err(error) => {
            super::notice!(
                "flowgate: cannot watch {}: {error}; reload with SIGHUP",
                dir.display()
            );
            None
        }
    }
}
