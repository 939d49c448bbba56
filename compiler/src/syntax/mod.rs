//! Source text to syntax tree: a total lexer, a recovering parser and the tree they build.

pub mod ast;
pub mod json;
mod lexer;
mod parser;
mod token;

pub use lexer::{lex, Lexed};
pub use parser::{parse, Parsed, MAX_NESTING};
pub use token::{Comment, Token, TokenKind};
