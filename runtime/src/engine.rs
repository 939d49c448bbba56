//! The engine embedders and the sidecar use: a checked policy set, its decision table and
//! its version, behind one immutable, thread-safe value.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::Path;

use compiler::diag::Diagnostic;
use compiler::eval::{Decision, PreparedRequest, Request, RuleIndex};
use compiler::ir::PolicySet;
use compiler::source::SourceSet;
use compiler::table::{DecisionTable, Scratch};
use compiler::time::Timestamp;
use compiler::{CheckOptions, analyze};
use sha2::{Digest, Sha256};

use crate::outcome::Outcome;
use crate::policy_dir::{LoadError, PolicyFiles, read_policy_dir};
use crate::wire::{Answer, WireError, decode_request};

/// What to do with a DAG or host the inventory does not list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UnlistedEntities {
    /// Judge it: id patterns apply, attribute tests are unknown (fail closed).
    #[default]
    Judge,
    /// Deny every request that names one.
    Deny,
}

#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// The clock for the checker's `@expires` warnings.
    pub now: Timestamp,
    pub unlisted: UnlistedEntities,
}

/// Which policy answered: a hash of every file's name and bytes, and the git commit when
/// the directory is a checkout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyVersion {
    pub content_hash: String,
    pub git_commit: Option<String>,
}

impl PolicyVersion {
    /// Short form for answers and logs: the commit when known, else the hash.
    pub fn label(&self) -> String {
        match &self.git_commit {
            Some(commit) => format!("git:{}", commit.get(..12).unwrap_or(commit)),
            None => format!(
                "sha256:{}",
                self.content_hash.get(..16).unwrap_or(&self.content_hash)
            ),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the policy set does not pass the checker")]
    Invalid {
        sources: SourceSet,
        diagnostics: Vec<Diagnostic>,
    },
}

#[derive(Debug)]
pub struct Engine {
    set: PolicySet,
    table: DecisionTable,
    sources: SourceSet,
    warnings: Vec<Diagnostic>,
    version: PolicyVersion,
    /// `version.label()`, made once: every answer carries it.
    version_label: String,
    options: EngineOptions,
}

thread_local! {
    static BUFFERS: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Engine {
    /// Reads, checks and compiles a policy directory.
    pub fn load(dir: &Path, options: EngineOptions) -> Result<Engine, EngineError> {
        let files = read_policy_dir(dir)?;
        let git_commit = crate::git::head_commit(dir);
        Engine::from_files(files, git_commit, options)
    }

    pub fn from_files(
        files: PolicyFiles,
        git_commit: Option<String>,
        options: EngineOptions,
    ) -> Result<Engine, EngineError> {
        let analysis = analyze(&files.sources, &CheckOptions::at(options.now));
        let Some(set) = analysis.policy_set else {
            return Err(EngineError::Invalid {
                sources: files.sources,
                diagnostics: analysis.diagnostics,
            });
        };
        let table = compiler::lower::lower(&set);
        let version = PolicyVersion {
            content_hash: content_hash(&files.sources),
            git_commit,
        };
        Ok(Engine {
            set,
            table,
            sources: files.sources,
            warnings: analysis.diagnostics,
            version_label: version.label(),
            version,
            options,
        })
    }

    pub fn policy_set(&self) -> &PolicySet {
        &self.set
    }

    pub fn table(&self) -> &DecisionTable {
        &self.table
    }

    pub fn sources(&self) -> &SourceSet {
        &self.sources
    }

    /// Warnings the checker reported for the loaded set.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    pub fn version(&self) -> &PolicyVersion {
        &self.version
    }

    /// `@id`, else `file:line`.
    pub fn rule_id(&self, index: RuleIndex) -> &str {
        self.set
            .rules()
            .get(index as usize)
            .map_or("?", |rule| rule.id.as_str())
    }

    /// Why a request is denied before any rule is consulted, under `UnlistedEntities::Deny`.
    pub fn unlisted_denial(&self, request: &Request) -> Option<String> {
        if self.options.unlisted != UnlistedEntities::Deny {
            return None;
        }
        let inventory = self.set.inventory();
        if let Some(dag) = request
            .dag
            .as_ref()
            .filter(|dag| !inventory.dags.contains_key(&dag.id))
        {
            return Some(format!("dag `{}` is not in the inventory", dag.id));
        }
        if let Some(host) = request
            .host
            .as_ref()
            .filter(|host| !inventory.hosts.contains_key(&host.id))
        {
            return Some(format!("host `{}` is not in the inventory", host.id));
        }
        None
    }

    /// Decides one request with this thread's reusable buffers.
    pub fn decide(&self, request: &Request) -> Decision {
        let mut decision = Decision::default();
        if self.unlisted_denial(request).is_some() {
            return decision;
        }
        BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
            Ok(mut scratch) => self.table.decide(request, &mut scratch, &mut decision),
            // Re-entered from inside a decision (it cannot be today): use fresh buffers.
            Err(_) => self
                .table
                .decide(request, &mut self.table.scratch(), &mut decision),
        });
        decision
    }

    /// Decides with caller-owned buffers; nothing is allocated when they are reused.
    pub fn decide_into(&self, request: &Request, scratch: &mut Scratch, decision: &mut Decision) {
        if self.unlisted_denial(request).is_some() {
            decision.clear();
            return;
        }
        self.table.decide(request, scratch, decision);
    }

    pub fn decide_batch<R: AsRef<Request>>(&self, requests: &[R]) -> Vec<Decision> {
        let mut scratch = self.table.scratch();
        requests
            .iter()
            .map(|request| {
                let mut decision = Decision::default();
                self.decide_into(request.as_ref(), &mut scratch, &mut decision);
                decision
            })
            .collect()
    }

    /// Resolves a request's names against this engine's table once, for callers that
    /// decide the same request repeatedly (or build requests ahead, as benchmarks do);
    /// deciding it then compares no strings. Another engine decides it like any request.
    pub fn prepare(&self, request: Request) -> PreparedRequest {
        self.table.prepare(request)
    }

    /// Decodes a JSON request; see [`crate::wire`].
    pub fn request_from_json(
        &self,
        json: &serde_json::Value,
        now: Timestamp,
    ) -> Result<Request, WireError> {
        decode_request(&self.set, json, now)
    }

    /// The answer callers receive for a decided request.
    pub fn answer(&self, request: &Request, decision: &Decision) -> Answer {
        Outcome::decided(self, request, decision).to_answer()
    }

    /// The version as answers and log lines carry it.
    pub(crate) fn version_label(&self) -> &str {
        &self.version_label
    }
}

fn content_hash(sources: &SourceSet) -> String {
    let mut hasher = Sha256::new();
    for (_, file) in sources.files() {
        hasher.update(file.name().as_bytes());
        hasher.update([0]);
        hasher.update(file.text().as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}
