//! Inventory from JSON, as a generator over Airflow's DAG list or a CMDB writes it:
//! `[{"kind": "dag", "id": "etl_daily", "attrs": {"owner": "data-eng"}}, …]`.
//! A small JSON reader of our own keeps the span of every value, so a wrong attribute
//! in a generated file is reported at its line and column like one in a `.gate` file.

use super::ast::{AttrInit, Expr, ExprKind, InventoryEntry, Name, StrLit};
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

const MAX_DEPTH: usize = 64;

pub struct ParsedJson {
    pub entries: Vec<InventoryEntry>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn parse_inventory_json(file: FileId, text: &str) -> ParsedJson {
    let mut reader = Reader {
        file,
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut diagnostics = Vec::new();
    let entries = match reader.document() {
        Ok(value) => to_entries(value, &mut diagnostics),
        Err(error) => {
            diagnostics.push(error);
            Vec::new()
        }
    };
    ParsedJson {
        entries,
        diagnostics,
    }
}

enum Json {
    Null,
    Bool(bool),
    Number(Option<i64>),
    String(String),
    Array(Vec<Spanned>),
    Object(Vec<(StrLit, Spanned)>),
}

struct Spanned {
    value: Json,
    span: Span,
}

struct Reader<'a> {
    file: FileId,
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, start: usize, message: impl Into<String>) -> Diagnostic {
        let end = (start + 1).min(self.bytes.len()).max(start);
        Diagnostic::error(Code::InvalidJson, Span::new(self.file, start, end), message)
    }

    fn skip_whitespace(&mut self) {
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn document(&mut self) -> Result<Spanned, Diagnostic> {
        let value = self.value(0)?;
        self.skip_whitespace();
        if self.pos < self.bytes.len() {
            return Err(self.error(self.pos, "unexpected text after the JSON value"));
        }
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<Spanned, Diagnostic> {
        self.skip_whitespace();
        let start = self.pos;
        if depth > MAX_DEPTH {
            return Err(Diagnostic::error(
                Code::NestingTooDeep,
                Span::new(self.file, start, start + 1),
                "JSON nested too deep",
            ));
        }
        let value = match self.bytes.get(self.pos) {
            None => {
                return Err(self.error(start, "expected a JSON value, found the end of the file"));
            }
            Some(b'{') => self.object(depth)?,
            Some(b'[') => self.array(depth)?,
            Some(b'"') => Json::String(self.string()?.value),
            Some(b't') => self.literal("true", Json::Bool(true))?,
            Some(b'f') => self.literal("false", Json::Bool(false))?,
            Some(b'n') => self.literal("null", Json::Null)?,
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => return Err(self.error(start, "expected a JSON value")),
        };
        Ok(Spanned {
            value,
            span: Span::new(self.file, start, self.pos),
        })
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, Diagnostic> {
        if self
            .text
            .get(self.pos..)
            .is_some_and(|rest| rest.starts_with(word))
        {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error(self.pos, "expected a JSON value"))
        }
    }

    fn number(&mut self) -> Json {
        let start = self.pos;
        while self
            .bytes
            .get(self.pos)
            .is_some_and(|b| matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            self.pos += 1;
        }
        Json::Number(
            self.text
                .get(start..self.pos)
                .and_then(|digits| digits.parse().ok()),
        )
    }

    fn string(&mut self) -> Result<StrLit, Diagnostic> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(&byte) = self.bytes.get(self.pos) else {
                return Err(self.error(start, "unterminated JSON string"));
            };
            match byte {
                b'"' => {
                    self.pos += 1;
                    return Ok(StrLit {
                        value: out,
                        span: Span::new(self.file, start, self.pos),
                    });
                }
                b'\\' => {
                    let escape = self.bytes.get(self.pos + 1).copied();
                    self.pos += 2;
                    match escape {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'n') => out.push('\n'),
                        Some(b't') => out.push('\t'),
                        Some(b'r') => out.push('\r'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'u') => {
                            let hex = self.text.get(self.pos..self.pos + 4).unwrap_or("");
                            let decoded =
                                u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                            match decoded {
                                Some(ch) if hex.len() == 4 => out.push(ch),
                                _ => {
                                    return Err(self.error(
                                        self.pos - 2,
                                        "invalid `\\u` escape in JSON string",
                                    ));
                                }
                            }
                            self.pos += 4;
                        }
                        _ => return Err(self.error(self.pos - 2, "invalid escape in JSON string")),
                    }
                }
                b'\n' => return Err(self.error(start, "unterminated JSON string")),
                _ => {
                    let ch = self
                        .text
                        .get(self.pos..)
                        .and_then(|rest| rest.chars().next())
                        .unwrap_or('\u{fffd}');
                    out.push(ch);
                    self.pos += ch.len_utf8();
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, Diagnostic> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error(self.pos, "expected `,` or `]` in JSON array")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, Diagnostic> {
        self.pos += 1;
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.bytes.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b'"') {
                return Err(self.error(self.pos, "expected a quoted key in JSON object"));
            }
            let key = self.string()?;
            self.skip_whitespace();
            if self.bytes.get(self.pos) != Some(&b':') {
                return Err(self.error(self.pos, "expected `:` after the key in JSON object"));
            }
            self.pos += 1;
            let value = self.value(depth + 1)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => return Err(self.error(self.pos, "expected `,` or `}` in JSON object")),
            }
        }
    }
}

fn to_entries(document: Spanned, diagnostics: &mut Vec<Diagnostic>) -> Vec<InventoryEntry> {
    let Json::Array(items) = document.value else {
        diagnostics.push(
            Diagnostic::error(
                Code::InvalidJson,
                document.span,
                "an inventory file holds a JSON array of entries",
            )
            .with_help("write `[{\"kind\": \"dag\", \"id\": \"etl_daily\", \"attrs\": {…}}, …]`"),
        );
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| to_entry(item, diagnostics))
        .collect()
}

fn to_entry(item: Spanned, diagnostics: &mut Vec<Diagnostic>) -> Option<InventoryEntry> {
    let Json::Object(members) = item.value else {
        diagnostics.push(Diagnostic::error(
            Code::InvalidJson,
            item.span,
            "an inventory entry is a JSON object with `kind`, `id` and `attrs`",
        ));
        return None;
    };
    let mut kind = None;
    let mut id = None;
    let mut attrs = Vec::new();
    for (key, value) in members {
        match (key.value.as_str(), value.value) {
            ("kind", Json::String(text)) => {
                kind = Some(Name {
                    text,
                    span: value.span,
                })
            }
            ("id", Json::String(text)) => {
                id = Some(StrLit {
                    value: text,
                    span: value.span,
                })
            }
            ("attrs", Json::Object(fields)) => {
                for (name, field) in fields {
                    let span = name.span.to(field.span);
                    if let Some(value) = to_expr(field, diagnostics) {
                        attrs.push(AttrInit {
                            name: Name {
                                text: name.value,
                                span: name.span,
                            },
                            value,
                            span,
                        });
                    }
                }
            }
            ("kind" | "id", _) => diagnostics.push(Diagnostic::error(
                Code::InvalidJson,
                value.span,
                format!("`{}` must be a string", key.value),
            )),
            ("attrs", _) => diagnostics.push(Diagnostic::error(
                Code::InvalidJson,
                value.span,
                "`attrs` must be an object",
            )),
            (other, _) => diagnostics.push(
                Diagnostic::error(
                    Code::InvalidJson,
                    key.span,
                    format!("unknown key `{other}` in inventory entry"),
                )
                .with_help("an entry has `kind`, `id` and `attrs`"),
            ),
        }
    }
    match (kind, id) {
        (Some(kind), Some(id)) => Some(InventoryEntry {
            span: item.span,
            kind,
            id,
            attrs,
        }),
        (kind, _) => {
            let missing = if kind.is_none() { "kind" } else { "id" };
            diagnostics.push(Diagnostic::error(
                Code::InvalidJson,
                item.span,
                format!("inventory entry has no `{missing}`"),
            ));
            None
        }
    }
}

fn to_expr(value: Spanned, diagnostics: &mut Vec<Diagnostic>) -> Option<Expr> {
    let kind = match value.value {
        // `null` is how generators write "no value": the attribute is absent.
        Json::Null => return None,
        Json::Bool(flag) => ExprKind::Bool(flag),
        Json::Number(Some(number)) => ExprKind::Int(number),
        Json::Number(None) => {
            diagnostics.push(Diagnostic::error(
                Code::InvalidJson,
                value.span,
                "only whole numbers that fit in 64 bits are supported",
            ));
            return None;
        }
        Json::String(text) => ExprKind::Str(text),
        Json::Array(items) => ExprKind::Set(
            items
                .into_iter()
                .filter_map(|item| to_expr(item, diagnostics))
                .collect(),
        ),
        Json::Object(_) => {
            diagnostics.push(Diagnostic::error(
                Code::InvalidJson,
                value.span,
                "attribute values cannot be objects",
            ));
            return None;
        }
    };
    Some(Expr {
        kind,
        span: value.span,
    })
}
