//! The git commit a policy directory is checked out at, read from `.git` directly so the
//! engine needs no `git` binary on a Windows service host.

use std::fs;
use std::path::{Path, PathBuf};

/// The commit `HEAD` points at in the repository containing `dir`, if any.
pub(crate) fn head_commit(dir: &Path) -> Option<String> {
    let git_dir = find_git_dir(dir)?;
    let head = fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return is_commit_id(head).then(|| head.to_owned());
    };
    if let Ok(loose) = fs::read_to_string(git_dir.join(reference)) {
        let loose = loose.trim();
        return is_commit_id(loose).then(|| loose.to_owned());
    }
    let packed = fs::read_to_string(git_dir.join("packed-refs")).ok()?;
    packed
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(_, name)| *name == reference)
        .map(|(id, _)| id.to_owned())
        .filter(|id| is_commit_id(id))
}

fn find_git_dir(start: &Path) -> Option<PathBuf> {
    let start = fs::canonicalize(start).ok()?;
    let mut current = if start.is_dir() {
        start
    } else {
        start.parent()?.to_path_buf()
    };
    loop {
        let candidate = current.join(".git");
        if candidate.is_dir() {
            return Some(candidate);
        }
        // A worktree or submodule: `.git` is a file naming the real directory.
        if let Ok(pointer) = fs::read_to_string(&candidate) {
            let target = pointer.trim().strip_prefix("gitdir: ")?;
            return Some(current.join(target));
        }
        current = current.parent()?.to_path_buf();
    }
}

fn is_commit_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64) && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}
