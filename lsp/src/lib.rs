//! Editor support. Only this crate knows the Language Server Protocol's conventions; for
//! now it maps compiler spans to LSP positions, which count lines from zero and columns in
//! UTF-16 code units, so diagnostics land on the right character in every editor.

use compiler::source::{SourceFile, Span};

/// A zero-based LSP position: line and UTF-16 code unit offset within the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub character: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

/// The LSP position of a byte offset in a file.
pub fn position(file: &SourceFile, offset: usize) -> Position {
    let text = file.text();
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let line_start = text
        .get(..offset)
        .and_then(|prefix| prefix.rfind('\n'))
        .map_or(0, |index| index + 1);
    let line = text
        .get(..line_start)
        .map_or(0, |prefix| prefix.matches('\n').count());
    let character = text
        .get(line_start..offset)
        .map_or(0, |segment| segment.encode_utf16().count());
    Position {
        line: u32::try_from(line).unwrap_or(u32::MAX),
        character: u32::try_from(character).unwrap_or(u32::MAX),
    }
}

pub fn range(file: &SourceFile, span: Span) -> Range {
    Range {
        start: position(file, span.start as usize),
        end: position(file, span.end as usize),
    }
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use compiler::source::SourceSet;

    #[test]
    fn columns_count_utf16_code_units() {
        let mut sources = SourceSet::new();
        let id = sources.add("a.gate", "// 😀 é\npermit triger;\n");
        let Some(file) = sources.file(id) else { return };
        // 😀 is two UTF-16 units, é one: `é` starts at byte 8, character 6.
        assert_eq!(
            position(file, 8),
            Position {
                line: 0,
                character: 6
            }
        );
        assert_eq!(
            position(file, 18),
            Position {
                line: 1,
                character: 7
            }
        );
        let span = Span::new(id, 18, 24);
        assert_eq!(
            range(file, span).end,
            Position {
                line: 1,
                character: 13
            }
        );
        assert_eq!(
            position(file, 9),
            Position {
                line: 0,
                character: 6
            },
            "inside a character rounds down"
        );
        assert_eq!(
            position(file, 999),
            Position {
                line: 2,
                character: 0
            }
        );
    }
}
