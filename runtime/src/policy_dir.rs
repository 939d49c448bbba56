//! Reads a policy set from disk: every `.gate` file and every inventory `.json` file
//! below a directory, in a stable order, as bytes handed to the compiler.

use std::fs;
use std::path::{Path, PathBuf};

use compiler::source::SourceSet;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: no such file or directory")]
    NotFound { path: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no `.gate` files found")]
    NoPolicyFiles { path: PathBuf },
}

/// The files of one policy set, ready for `compiler::analyze`.
#[derive(Debug)]
pub struct PolicyFiles {
    pub sources: SourceSet,
    pub paths: Vec<PathBuf>,
}

/// Reads a policy directory (or a single file).
pub fn read_policy_dir(root: &Path) -> Result<PolicyFiles, LoadError> {
    read_policy_paths(&[root.to_path_buf()])
}

/// Reads several directories or files as one policy set.
pub fn read_policy_paths(roots: &[PathBuf]) -> Result<PolicyFiles, LoadError> {
    let mut paths = Vec::new();
    for root in roots {
        let metadata = fs::metadata(root).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => LoadError::NotFound { path: root.clone() },
            _ => LoadError::Unreadable {
                path: root.clone(),
                source,
            },
        })?;
        if metadata.is_dir() {
            collect(root, &mut paths)?;
        } else {
            paths.push(root.clone());
        }
    }
    paths.sort();
    paths.dedup();
    if !paths.iter().any(|path| has_extension(path, "gate")) {
        let path = roots.first().cloned().unwrap_or_default();
        return Err(LoadError::NoPolicyFiles { path });
    }
    let mut sources = SourceSet::new();
    for path in &paths {
        let bytes = fs::read(path).map_err(|source| LoadError::Unreadable {
            path: path.clone(),
            source,
        })?;
        sources.add_bytes(path.display().to_string(), &bytes);
    }
    Ok(PolicyFiles { sources, paths })
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|found| found == extension)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let entries = fs::read_dir(dir).map_err(|source| LoadError::Unreadable {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Unreadable {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let hidden = path
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with('.'));
        if hidden {
            continue;
        }
        let file_type = entry.file_type().map_err(|source| LoadError::Unreadable {
            path: path.clone(),
            source,
        })?;
        if file_type.is_dir() {
            collect(&path, out)?;
        } else if has_extension(&path, "gate") || has_extension(&path, "json") {
            out.push(path);
        }
    }
    Ok(())
}
