//! Source files, byte spans and line/column lookup shared by every stage.

use std::fmt;

/// Index of a file inside a [`SourceSet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(u32);

/// A byte range in one file. Every syntax node and diagnostic carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub file: FileId,
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(file: FileId, start: usize, end: usize) -> Span {
        Span {
            file,
            start: clamp_u32(start),
            end: clamp_u32(end.max(start)),
        }
    }

    /// The smallest span covering both; both must be in the same file.
    pub fn to(self, other: Span) -> Span {
        Span {
            file: self.file,
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

fn clamp_u32(value: usize) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

/// One policy or inventory file as the caller handed it in.
#[derive(Debug)]
pub struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
    invalid_utf8_at: Option<usize>,
}

impl SourceFile {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// One-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = offset.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&offset) {
            Ok(index) => index,
            Err(index) => index.saturating_sub(1),
        };
        let line_start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = self
            .text
            .get(line_start..offset)
            .map_or(0, |prefix| prefix.chars().count());
        LineCol {
            line: line_index + 1,
            column: column + 1,
        }
    }

    /// Byte offset of the first byte that is not UTF-8, when the file was not text.
    pub fn invalid_utf8_at(&self) -> Option<usize> {
        self.invalid_utf8_at
    }

    pub fn is_json(&self) -> bool {
        self.name.ends_with(".json")
    }
}

/// A one-based position a person can find in an editor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

impl Default for LineCol {
    fn default() -> LineCol {
        LineCol { line: 1, column: 1 }
    }
}

impl fmt::Display for LineCol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Every file of one policy set. The compiler never reads files itself: callers add the
/// bytes they read, so the same pipeline serves the command line, the server and the editor.
#[derive(Debug, Default)]
pub struct SourceSet {
    files: Vec<SourceFile>,
}

impl SourceSet {
    pub fn new() -> SourceSet {
        SourceSet::default()
    }

    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> FileId {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(index, _)| index + 1));
        let id = FileId(clamp_u32(self.files.len()));
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_starts,
            invalid_utf8_at: None,
        });
        id
    }

    /// Adds raw bytes as read from disk. Bytes that are not UTF-8 keep the valid prefix as
    /// the file's text, so the checker's error can point at a line and column.
    pub fn add_bytes(&mut self, name: impl Into<String>, bytes: &[u8]) -> FileId {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.add(name, text),
            Err(error) => {
                let valid = error.valid_up_to();
                let prefix =
                    String::from_utf8_lossy(bytes.get(..valid).unwrap_or_default()).into_owned();
                let file = self.add(name, prefix);
                if let Some(added) = self.files.last_mut() {
                    added.invalid_utf8_at = Some(valid);
                }
                file
            }
        }
    }

    pub fn file(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }

    pub fn files(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(index, file)| (FileId(clamp_u32(index)), file))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `file:line:column` of a span's start, as terminals and editors link it.
    pub fn location(&self, span: Span) -> String {
        match self.file(span.file) {
            Some(file) => format!("{}:{}", file.name(), file.line_col(span.start as usize)),
            None => String::from("<unknown>"),
        }
    }

    pub fn snippet(&self, span: Span) -> &str {
        self.file(span.file)
            .and_then(|file| file.text().get(span.range()))
            .unwrap_or("")
    }
}

impl Span {
    /// Position of the file in its [`SourceSet`], for renderers that index files by number.
    pub fn file_index(self) -> usize {
        self.file.0 as usize
    }
}

impl FileId {
    /// The first file added; diagnostics about the set as a whole point there.
    pub fn first() -> FileId {
        FileId(0)
    }
}
