//! Hot reload: on SIGHUP or a change in the policy directory, load and check the set off
//! the request path and swap it in atomically. A set that fails keeps the last good one
//! serving; the failure shows in `/v1/policy` and the metrics.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
/// ends. Loading runs on a blocking thread so decisions are never delayed by it. SIGHUP
/// also has the decision log open its file's path again.
pub(crate) fn spawn(state: Arc<AppState>, dir: PathBuf, options: EngineOptions, watch: bool) {
    let (sender, mut receiver) = mpsc::channel::<()>(16);
    // Set when the policy path itself was replaced (or on SIGHUP); kept apart from the
    // channel, which may be full, so the news cannot be lost.
    let replaced = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        let sender = sender.clone();
        let replaced = replaced.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let Ok(mut hangup) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            else {
                return;
            };
            while hangup.recv().await.is_some() {
                // SIGHUP also watches the path afresh: the operator's way to recover a
                // watch the system dropped.
                replaced.store(true, Ordering::Relaxed);
                // And it reopens the decision log, for logrotate's `postrotate`.
                if let Some(log) = &state.log {
                    log.reopen();
                }
                let _ = sender.try_send(());
            }
        });
    }
    let mut watch = if watch {
        Watch::start(&dir, sender, replaced.clone())
    } else {
        None
    };
    tokio::spawn(async move {
        while receiver.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while receiver.try_recv().is_ok() {}
            if replaced.swap(false, Ordering::Relaxed)
                && let Some(watch) = &mut watch
            {
                watch.watch_root();
            }
            let state = state.clone();
            let dir = dir.clone();
            let options = options.clone();
            let _ = tokio::task::spawn_blocking(move || reload(&state, &dir, &options)).await;
        }
    });
}

/// Watches the policy path and, without recursion, the folder it sits in. The second
/// watch sees the path itself replaced: a link swapped to a new folder in one rename (as
/// git-sync and Kubernetes ConfigMap volumes update), or the folder deleted and made
/// again. A watch follows the folder, not the name, so after such a replacement the first
/// watch sees nothing more and has to be set up again on the name.
struct Watch {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
}

impl Watch {
    fn start(dir: &Path, sender: mpsc::Sender<()>, replaced: Arc<AtomicBool>) -> Option<Watch> {
        use notify::Watcher as _;
        // Absolute, so event paths (which the watcher builds from the watched ones) compare
        // with it; links are kept, since the name is what gets replaced.
        let root = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let watched = root.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            if event.paths.contains(&watched) {
                replaced.store(true, Ordering::Relaxed);
            } else if !event.paths.iter().any(|path| path.starts_with(&watched)) {
                // Something else in the parent folder.
                return;
            }
            let _ = sender.try_send(());
        });
        let mut watcher = match watcher {
            Ok(watcher) => watcher,
            Err(error) => {
                super::notice!("flowgate: cannot watch for changes: {error}; reload with SIGHUP");
                return None;
            }
        };
        if let Some(parent) = root.parent()
            && let Err(error) = watcher.watch(parent, notify::RecursiveMode::NonRecursive)
        {
            super::notice!(
                "flowgate: cannot watch {}: {error}; a replaced policy folder needs SIGHUP",
                parent.display()
            );
        }
        let mut watch = Watch { watcher, root };
        watch.watch_root();
        Some(watch)
    }

    /// (Re)watches whatever the policy path names now.
    fn watch_root(&mut self) {
        use notify::Watcher as _;
        // The old watch may be gone with its folder; only the new one matters.
        let _ = self.watcher.unwatch(&self.root);
        if let Err(error) = self
            .watcher
            .watch(&self.root, notify::RecursiveMode::Recursive)
        {
            super::notice!(
                "flowgate: cannot watch {}: {error}; watching for it to come back",
                self.root.display()
            );
        }
    }
}
