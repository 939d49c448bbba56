//! Source text to syntax tree: a total lexer, a recovering parser and the tree they build.

pub mod ast;
pub mod json;
mod lexer;
mod parser;
mod token;

pub use lexer::{Lexed, lex};
pub use parser::{KEYWORDS, MAX_NESTING, Parsed, parse};
pub use token::{Comment, Token, TokenKind};
