//! A total lexer: every byte sequence becomes tokens; bad input becomes `Error` tokens and
//! diagnostics, never an abort, so the parser always sees the whole file.

use super::token::{Comment, Token, TokenKind};
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

pub struct Lexed {
    pub tokens: Vec<Token>,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn lex(file: FileId, text: &str) -> Lexed {
    let mut lexer = Lexer {
        file,
        text,
        bytes: text.as_bytes(),
        pos: 0,
        out: Vec::new(),
        comments: Vec::new(),
        diagnostics: Vec::new(),
        line_started: true,
        code_on_line: false,
    };
    lexer.run();
    Lexed {
        tokens: lexer.out,
        comments: lexer.comments,
        diagnostics: lexer.diagnostics,
    }
}

struct Lexer<'a> {
    file: FileId,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    out: Vec<Token>,
    comments: Vec<Comment>,
    diagnostics: Vec<Diagnostic>,
    line_started: bool,
    code_on_line: bool,
}

impl Lexer<'_> {
    fn peek(&self, ahead: usize) -> Option<u8> {
        self.bytes.get(self.pos + ahead).copied()
    }

    fn span(&self, start: usize) -> Span {
        Span::new(self.file, start, self.pos)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        let token = Token {
            kind,
            span: self.span(start),
            starts_line: self.line_started,
        };
        self.out.push(token);
        self.line_started = false;
        self.code_on_line = true;
    }

    fn run(&mut self) {
        while let Some(byte) = self.peek(0) {
            let start = self.pos;
            match byte {
                b'\n' => {
                    self.pos += 1;
                    self.line_started = true;
                    self.code_on_line = false;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'/' if self.peek(1) == Some(b'/') => self.comment(),
                b'/' => self.regex(),
                b'"' => self.string(),
                b'0'..=b'9' => {
                    while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
                        self.pos += 1;
                    }
                    self.push(TokenKind::Int, start);
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    while self
                        .peek(0)
                        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        self.pos += 1;
                    }
                    self.push(TokenKind::Ident, start);
                }
                _ => self.punct(byte),
            }
        }
        let end = self.bytes.len();
        self.out.push(Token {
            kind: TokenKind::Eof,
            span: Span::new(self.file, end, end),
            starts_line: true,
        });
    }

    fn punct(&mut self, byte: u8) {
        let start = self.pos;
        let next = self.peek(1);
        let (kind, width) = match (byte, next) {
            (b'<', Some(b'=')) => (TokenKind::LessEq, 2),
            (b'>', Some(b'=')) => (TokenKind::GreaterEq, 2),
            (b'=', Some(b'=')) => (TokenKind::EqEq, 2),
            (b'!', Some(b'=')) => (TokenKind::NotEq, 2),
            (b'&', Some(b'&')) => (TokenKind::AndAnd, 2),
            (b'|', Some(b'|')) => (TokenKind::OrOr, 2),
            (b'{', _) => (TokenKind::LBrace, 1),
            (b'}', _) => (TokenKind::RBrace, 1),
            (b'(', _) => (TokenKind::LParen, 1),
            (b')', _) => (TokenKind::RParen, 1),
            (b'<', _) => (TokenKind::LAngle, 1),
            (b'>', _) => (TokenKind::RAngle, 1),
            (b'=', _) => (TokenKind::Eq, 1),
            (b',', _) => (TokenKind::Comma, 1),
            (b';', _) => (TokenKind::Semi, 1),
            (b':', _) => (TokenKind::Colon, 1),
            (b'.', _) => (TokenKind::Dot, 1),
            (b'@', _) => (TokenKind::At, 1),
            (b'*', _) => (TokenKind::Star, 1),
            (b'?', _) => (TokenKind::Question, 1),
            (b'!', _) => (TokenKind::Bang, 1),
            (b'-', _) => (TokenKind::Minus, 1),
            _ => {
                let width = self
                    .text
                    .get(start..)
                    .and_then(|rest| rest.chars().next())
                    .map_or(1, char::len_utf8);
                self.pos += width;
                let shown = self.text.get(start..self.pos).unwrap_or("?");
                let mut diagnostic = Diagnostic::error(
                    Code::InvalidCharacter,
                    self.span(start),
                    format!("unexpected character `{}`", shown.escape_debug()),
                );
                diagnostic = match byte {
                    b'&' => diagnostic.with_help("write `&&` for \"and\""),
                    b'|' => diagnostic.with_help("write `||` for \"or\""),
                    b'\'' => diagnostic.with_help("strings use double quotes: `\"text\"`"),
                    b'#' => diagnostic.with_help("comments start with `//`"),
                    _ => diagnostic,
                };
                self.diagnostics.push(diagnostic);
                self.push(TokenKind::Error, start);
                return;
            }
        };
        self.pos += width;
        self.push(kind, start);
    }

    fn comment(&mut self) {
        let start = self.pos;
        while self.peek(0).is_some_and(|b| b != b'\n') {
            self.pos += 1;
        }
        let text = self
            .text
            .get(start..self.pos)
            .unwrap_or("")
            .trim_end()
            .to_owned();
        self.comments.push(Comment {
            span: self.span(start),
            text,
            trailing: self.code_on_line,
        });
    }

    /// Strings end at the closing quote; a line break before it means the quote is missing.
    fn string(&mut self) {
        let start = self.pos;
        if self.scan_to_closing(b'"') {
            self.push(TokenKind::Str, start);
            return;
        }
        self.diagnostics.push(
            Diagnostic::error(
                Code::UnterminatedString,
                self.span(start),
                "unterminated string",
            )
            .with_label("this string has no closing `\"` on its line")
            .with_help("add the closing `\"`; strings cannot span lines"),
        );
        self.push(TokenKind::Error, start);
    }

    /// `/pattern/` with an optional `i` flag; like strings, a regex stays on one line.
    fn regex(&mut self) {
        let start = self.pos;
        if self.scan_to_closing(b'/') {
            let flag_alone = !self
                .peek(1)
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            if self.peek(0) == Some(b'i') && flag_alone {
                self.pos += 1;
            }
            self.push(TokenKind::Regex, start);
            return;
        }
        self.diagnostics.push(
            Diagnostic::error(
                Code::UnterminatedRegex,
                self.span(start),
                "unterminated regular expression",
            )
            .with_label("this pattern has no closing `/` on its line")
            .with_help("end the pattern with `/`; write `\\/` for a literal slash"),
        );
        self.push(TokenKind::Error, start);
    }

    /// Moves past the opening delimiter and on to just after the closing one, honouring
    /// backslash escapes. Returns false, stopped before the line break, when the line ends
    /// first: literals never span lines, so one missing quote cannot swallow the file.
    fn scan_to_closing(&mut self, delimiter: u8) -> bool {
        self.pos += 1;
        loop {
            match self.peek(0) {
                Some(byte) if byte == delimiter => {
                    self.pos += 1;
                    return true;
                }
                Some(b'\\') => {
                    self.pos += if self.peek(1).is_some_and(|b| b != b'\n') {
                        2
                    } else {
                        1
                    }
                }
                Some(b'\n') | None => return false,
                Some(_) => self.pos += 1,
            }
        }
    }
}
