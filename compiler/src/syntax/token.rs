//! Token kinds produced by the lexer.

use crate::source::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Ident,
    Int,
    Str,
    Regex,
    LBrace,
    RBrace,
    LParen,
    RParen,
    LAngle,
    RAngle,
    LessEq,
    GreaterEq,
    EqEq,
    NotEq,
    Eq,
    Comma,
    Semi,
    Colon,
    Dot,
    At,
    Star,
    Question,
    Bang,
    AndAnd,
    OrOr,
    Minus,
    /// A character or sequence the language has no use for; already reported.
    Error,
    Eof,
}

impl TokenKind {
    /// How the token reads in an "expected …, found …" message.
    pub fn describe(self) -> &'static str {
        match self {
            TokenKind::Ident => "a name",
            TokenKind::Int => "a number",
            TokenKind::Str => "a string",
            TokenKind::Regex => "a regular expression",
            TokenKind::LBrace => "`{`",
            TokenKind::RBrace => "`}`",
            TokenKind::LParen => "`(`",
            TokenKind::RParen => "`)`",
            TokenKind::LAngle => "`<`",
            TokenKind::RAngle => "`>`",
            TokenKind::LessEq => "`<=`",
            TokenKind::GreaterEq => "`>=`",
            TokenKind::EqEq => "`==`",
            TokenKind::NotEq => "`!=`",
            TokenKind::Eq => "`=`",
            TokenKind::Comma => "`,`",
            TokenKind::Semi => "`;`",
            TokenKind::Colon => "`:`",
            TokenKind::Dot => "`.`",
            TokenKind::At => "`@`",
            TokenKind::Star => "`*`",
            TokenKind::Question => "`?`",
            TokenKind::Bang => "`!`",
            TokenKind::AndAnd => "`&&`",
            TokenKind::OrOr => "`||`",
            TokenKind::Minus => "`-`",
            TokenKind::Error => "an invalid token",
            TokenKind::Eof => "the end of the file",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
    /// True when a line break (or the file start) precedes the token; error recovery
    /// restarts at declarations that begin a line.
    pub starts_line: bool,
}

/// A `//` comment, kept beside the tokens so the formatter can put it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    pub text: String,
    /// True when code precedes the comment on its line (`rule; // why`).
    pub trailing: bool,
}
