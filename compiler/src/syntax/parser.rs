//! Recursive-descent parser with error recovery. A syntax error drops only the declaration
//! it is in: the parser reports it, skips to the next `;` or declaration, and goes on, so a
//! file with several mistakes reports each of them and the rest is still checked.

use super::ast::*;
use super::lexer::lex;
use super::token::{Comment, Token, TokenKind};
use crate::diag::{Code, Diagnostic};
use crate::source::{FileId, Span};

/// Deep enough for any policy a person writes, shallow enough that recursion never
/// threatens the stack, even on the small stacks of server worker threads.
/// Every parenthesis, `!`, set and chained `&&`/`||` operand counts as one level, so the
/// tree's depth (and every recursive walk over it) is bounded by this number.
pub const MAX_NESTING: usize = 128;

pub struct Parsed {
    pub file: File,
    pub comments: Vec<Comment>,
    pub diagnostics: Vec<Diagnostic>,
}

pub fn parse(file: FileId, text: &str) -> Parsed {
    let lexed = lex(file, text);
    let mut parser = Parser {
        file,
        text,
        tokens: lexed.tokens,
        pos: 0,
        depth: 0,
        diagnostics: lexed.diagnostics,
    };
    let items = parser.items();
    if items.is_empty()
        && parser.diagnostics.is_empty()
        && lexed.comments.is_empty()
        && text.trim().is_empty()
    {
        parser.diagnostics.push(
            Diagnostic::warning(Code::EmptyFile, Span::new(file, 0, 0), "file is empty")
                .with_help("delete the file, or add declarations, rules or tests to it"),
        );
    }
    Parsed {
        file: File { items },
        comments: lexed.comments,
        diagnostics: parser.diagnostics,
    }
}

/// The error has been reported; the caller only has to resynchronise.
struct Reported;

type PResult<T> = Result<T, Reported>;

struct Parser<'a> {
    file: FileId,
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
    diagnostics: Vec<Diagnostic>,
}

/// Every word the parser reads as a keyword somewhere; `spec/language.md`'s grammar must
/// name exactly these (a test keeps the two in step).
pub const KEYWORDS: &[&str] = &[
    "action", "actions", "allow", "at", "by", "context", "dag", "deny", "enum", "expect", "false",
    "forbid", "groups", "has", "host", "in", "on", "permit", "Set", "test", "to", "true", "unless",
    "when", "where", "with",
];

const ITEM_KEYWORDS: &[&str] = &[
    "permit",
    "forbid",
    "test",
    "enum",
    "actions",
    "action",
    "principal",
    "context",
];

impl<'a> Parser<'a> {
    // ----- token access -----

    fn token(&self, ahead: usize) -> Token {
        let eof = Token {
            kind: TokenKind::Eof,
            span: Span::new(self.file, self.text.len(), self.text.len()),
            starts_line: true,
        };
        self.tokens.get(self.pos + ahead).copied().unwrap_or(eof)
    }

    fn current(&self) -> Token {
        self.token(0)
    }

    fn text_of(&self, token: Token) -> &'a str {
        self.text.get(token.span.range()).unwrap_or("")
    }

    fn at(&self, kind: TokenKind) -> bool {
        self.current().kind == kind
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        let token = self.current();
        token.kind == TokenKind::Ident && self.text_of(token) == keyword
    }

    fn bump(&mut self) -> Token {
        let token = self.current();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, kind: TokenKind) -> Option<Token> {
        if self.at(kind) {
            Some(self.bump())
        } else {
            None
        }
    }

    fn eat_keyword(&mut self, keyword: &str) -> Option<Token> {
        if self.at_keyword(keyword) {
            Some(self.bump())
        } else {
            None
        }
    }

    /// Where a missing token belongs: just after the previous one, as rustc points.
    fn after_previous(&self) -> Span {
        match self
            .pos
            .checked_sub(1)
            .and_then(|index| self.tokens.get(index))
        {
            Some(previous) => Span {
                file: self.file,
                start: previous.span.end,
                end: previous.span.end,
            },
            None => self.current().span,
        }
    }

    fn found(&self) -> String {
        let token = self.current();
        match token.kind {
            TokenKind::Ident => format!("`{}`", self.text_of(token)),
            TokenKind::Eof | TokenKind::Error => token.kind.describe().to_owned(),
            _ => token.kind.describe().to_string(),
        }
    }

    fn error_expected(&mut self, what: &str, context: &str) -> Reported {
        let token = self.current();
        // An error token was reported by the lexer already; one message per mistake.
        if token.kind != TokenKind::Error {
            let found = self.found();
            let (span, label) = if token.kind == TokenKind::Eof || token.starts_line {
                (self.after_previous(), format!("expected {what} here"))
            } else {
                (token.span, format!("expected {what}"))
            };
            self.diagnostics.push(
                Diagnostic::error(
                    Code::SyntaxError,
                    span,
                    format!("expected {what} {context}, found {found}"),
                )
                .with_label(label),
            );
        }
        Reported
    }

    fn expect(&mut self, kind: TokenKind, context: &str) -> PResult<Token> {
        match self.eat(kind) {
            Some(token) => Ok(token),
            None => Err(self.error_expected(kind.describe(), context)),
        }
    }

    fn expect_keyword(&mut self, keyword: &str, context: &str) -> PResult<Token> {
        match self.eat_keyword(keyword) {
            Some(token) => Ok(token),
            None => Err(self.error_expected(&format!("`{keyword}`"), context)),
        }
    }

    fn name(&mut self, what: &str, context: &str) -> PResult<Name> {
        if self.at(TokenKind::Ident) {
            let token = self.bump();
            Ok(Name {
                text: self.text_of(token).to_owned(),
                span: token.span,
            })
        } else {
            Err(self.error_expected(what, context))
        }
    }

    fn string(&mut self, what: &str, context: &str) -> PResult<StrLit> {
        if self.at(TokenKind::Str) {
            let token = self.bump();
            Ok(StrLit {
                value: self.decode_string(token),
                span: token.span,
            })
        } else {
            Err(self.error_expected(what, context))
        }
    }

    fn decode_string(&mut self, token: Token) -> String {
        let raw = self.text_of(token);
        let inner = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.char_indices();
        while let Some((offset, ch)) = chars.next() {
            if ch != '\\' {
                out.push(ch);
                continue;
            }
            let escape_start = token.span.start as usize + 1 + offset;
            let decoded = match chars.next() {
                Some((_, '"')) => Some('"'),
                Some((_, '\\')) => Some('\\'),
                Some((_, 'n')) => Some('\n'),
                Some((_, 't')) => Some('\t'),
                Some((_, 'r')) => Some('\r'),
                Some((_, 'u')) => {
                    let rest = inner.get(offset + 2..).unwrap_or("");
                    let code = rest
                        .strip_prefix('{')
                        .and_then(|body| body.split_once('}'))
                        .map(|(hex, _)| hex);
                    match code
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                        .and_then(char::from_u32)
                    {
                        Some(decoded) => {
                            let consumed = code.map_or(0, |hex| hex.len() + 2);
                            for _ in 0..consumed {
                                chars.next();
                            }
                            Some(decoded)
                        }
                        None => None,
                    }
                }
                _ => None,
            };
            match decoded {
                Some(decoded) => out.push(decoded),
                None => {
                    let end = (escape_start + 2).min(token.span.end as usize);
                    self.diagnostics.push(
                        Diagnostic::error(
                            Code::InvalidEscape,
                            Span::new(self.file, escape_start, end),
                            "invalid escape in string",
                        )
                        .with_help(
                            "the escapes are `\\\"`, `\\\\`, `\\n`, `\\t`, `\\r` and `\\u{hex}`",
                        ),
                    );
                }
            }
        }
        out
    }

    // ----- recovery -----

    fn at_item_start(&self) -> bool {
        let token = self.current();
        if !token.starts_line {
            return false;
        }
        match token.kind {
            TokenKind::At | TokenKind::Eof => true,
            TokenKind::Ident => {
                ITEM_KEYWORDS.contains(&self.text_of(token))
                    || matches!(self.token(1).kind, TokenKind::Str | TokenKind::LBrace)
            }
            _ => false,
        }
    }

    /// Skips to just after the next `;` or to the next line that starts a declaration.
    fn recover(&mut self) {
        let start = self.pos;
        loop {
            if self.at(TokenKind::Eof) || (self.pos > start && self.at_item_start()) {
                return;
            }
            if self.bump().kind == TokenKind::Semi {
                return;
            }
        }
    }

    // ----- items -----

    fn items(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        while !self.at(TokenKind::Eof) {
            let before = self.pos;
            match self.item() {
                Ok(item) => items.push(item),
                Err(Reported) => self.recover(),
            }
            if self.pos == before {
                self.bump();
            }
        }
        items
    }

    fn item(&mut self) -> PResult<Item> {
        let token = self.current();
        if token.kind == TokenKind::At {
            return self.rule().map(Item::Rule);
        }
        if token.kind != TokenKind::Ident {
            return Err(self.error_expected("a declaration, rule or test", "at the top level"));
        }
        match self.text_of(token) {
            "permit" | "forbid" => self.rule().map(Item::Rule),
            "test" => self.test().map(Item::Test),
            "enum" => self.enum_decl().map(Item::Enum),
            "actions" => self.actions_decl().map(Item::Actions),
            "action" => self.alias_decl().map(Item::Alias),
            _ => match self.token(1).kind {
                TokenKind::LBrace => self.entity_decl().map(Item::Entity),
                TokenKind::Str => self.inventory_entry().map(Item::Inventory),
                _ => {
                    let word = self.text_of(token).to_owned();
                    let mut diagnostic = Diagnostic::error(
                        Code::SyntaxError,
                        token.span,
                        format!("expected a declaration, rule or test, found `{word}`"),
                    )
                    .with_help("a top-level item starts with `permit`, `forbid`, `test`, `enum`, `actions`, `action`, an entity kind such as `dag` or `host`, or `@`");
                    if let Some(suggestion) = crate::suggest::closest(
                        &word,
                        ["permit", "forbid", "test", "enum", "actions", "action"],
                    ) {
                        diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
                    }
                    self.diagnostics.push(diagnostic);
                    Err(Reported)
                }
            },
        }
    }

    /// Comma-separated names in braces, trailing comma allowed.
    fn name_list(&mut self, what: &str, context: &str) -> PResult<(Vec<Name>, Span)> {
        let open = self.expect(TokenKind::LBrace, context)?;
        let mut names = Vec::new();
        while !self.at(TokenKind::RBrace) {
            names.push(self.name(what, "in the list")?);
            if self.eat(TokenKind::Comma).is_none() {
                break;
            }
        }
        let close = self.expect(TokenKind::RBrace, &format!("to close the list of {what}s"))?;
        Ok((names, open.span.to(close.span)))
    }

    fn enum_decl(&mut self) -> PResult<EnumDecl> {
        let keyword = self.bump();
        let name = self.name("the enum's name", "after `enum`")?;
        let (values, list) = self.name_list("an enum value", "after the enum's name")?;
        Ok(EnumDecl {
            name,
            values,
            span: keyword.span.to(list),
        })
    }

    fn actions_decl(&mut self) -> PResult<ActionsDecl> {
        let keyword = self.bump();
        let (names, list) = self.name_list("an action", "after `actions`")?;
        Ok(ActionsDecl {
            names,
            span: keyword.span.to(list),
        })
    }

    fn alias_decl(&mut self) -> PResult<AliasDecl> {
        let keyword = self.bump();
        let name = self.name("the alias's name", "after `action`")?;
        self.expect(TokenKind::Eq, "after the alias's name")?;
        let (actions, list) = self.name_list("an action", "after `=`")?;
        let end = self.eat(TokenKind::Semi).map_or(list, |semi| semi.span);
        Ok(AliasDecl {
            name,
            actions,
            span: keyword.span.to(end),
        })
    }

    fn entity_decl(&mut self) -> PResult<EntityDecl> {
        let kind = self.name("an entity kind", "")?;
        self.expect(TokenKind::LBrace, "after the entity kind")?;
        let mut fields = Vec::new();
        while !self.at(TokenKind::RBrace) {
            let name = self.name("an attribute name", "in the schema block")?;
            self.expect(TokenKind::Colon, "after the attribute name")?;
            let ty = self.type_expr(0)?;
            fields.push(Field {
                span: name.span.to(ty.span),
                name,
                ty,
            });
            if self.eat(TokenKind::Comma).is_none() {
                break;
            }
        }
        let close = self.expect(TokenKind::RBrace, "to close the schema block")?;
        Ok(EntityDecl {
            span: kind.span.to(close.span),
            kind,
            fields,
        })
    }

    fn type_expr(&mut self, depth: usize) -> PResult<TypeExpr> {
        if depth > MAX_NESTING {
            return Err(self.too_deep());
        }
        let name = self.name("a type", "after `:`")?;
        let mut ty = if name.text == "Set" && self.at(TokenKind::LAngle) {
            self.bump();
            let element = self.type_expr(depth + 1)?;
            let close = self.expect(TokenKind::RAngle, "to close `Set<`")?;
            TypeExpr {
                span: name.span.to(close.span),
                kind: TypeExprKind::Set(Box::new(element)),
            }
        } else {
            TypeExpr {
                span: name.span,
                kind: TypeExprKind::Named(name),
            }
        };
        if let Some(question) = self.eat(TokenKind::Question) {
            ty = TypeExpr {
                span: ty.span.to(question.span),
                kind: TypeExprKind::Optional(Box::new(ty)),
            };
        }
        Ok(ty)
    }

    fn inventory_entry(&mut self) -> PResult<InventoryEntry> {
        let kind = self.name("an entity kind", "")?;
        let id = self.string("the entity's id", "after the entity kind")?;
        let (attrs, close) = self.attr_inits("after the entity's id")?;
        let end = self.eat(TokenKind::Semi).map_or(close, |semi| semi.span);
        Ok(InventoryEntry {
            span: kind.span.to(end),
            kind,
            id,
            attrs,
        })
    }

    /// `{ name: value, … }`
    fn attr_inits(&mut self, context: &str) -> PResult<(Vec<AttrInit>, Span)> {
        self.expect(TokenKind::LBrace, context)?;
        let mut attrs = Vec::new();
        while !self.at(TokenKind::RBrace) {
            let name = self.name("an attribute name", "in the attribute list")?;
            self.expect(TokenKind::Colon, "after the attribute name")?;
            let value = self.expr()?;
            attrs.push(AttrInit {
                span: name.span.to(value.span),
                name,
                value,
            });
            if self.eat(TokenKind::Comma).is_none() {
                break;
            }
        }
        let close = self.expect(TokenKind::RBrace, "to close the attribute list")?;
        Ok((attrs, close.span))
    }

    // ----- rules -----

    fn rule(&mut self) -> PResult<Rule> {
        let start = self.current().span;
        let mut annotations = Vec::new();
        while let Some(at) = self.eat(TokenKind::At) {
            let key = self.name("an annotation name", "after `@`")?;
            let mut span = at.span.to(key.span);
            let mut value = None;
            if self.eat(TokenKind::LParen).is_some() {
                let text = self.string("a string", "as the annotation's value")?;
                let close = self.expect(TokenKind::RParen, "after the annotation's value")?;
                span = span.to(close.span);
                value = Some(text);
            }
            annotations.push(Annotation { key, value, span });
        }
        let effect_token = self.current();
        let effect = match self.text_of(effect_token) {
            "permit" if effect_token.kind == TokenKind::Ident => Effect::Permit,
            "forbid" if effect_token.kind == TokenKind::Ident => Effect::Forbid,
            _ => return Err(self.error_expected("`permit` or `forbid`", "after the annotations")),
        };
        self.bump();
        let actions = if let Some(star) = self.eat(TokenKind::Star) {
            ActionSpec::All(star.span)
        } else {
            let mut names = vec![self.name(
                "an action, an alias or `*`",
                &format!("after `{}`", effect.keyword()),
            )?];
            while self.eat(TokenKind::Comma).is_some() {
                names.push(self.name("an action", "after `,`")?);
            }
            ActionSpec::Named(names)
        };
        let mut rule = Rule {
            annotations,
            effect,
            effect_span: effect_token.span,
            actions,
            principals: Vec::new(),
            dag: None,
            host: None,
            conditions: Vec::new(),
            span: start,
        };
        let mut last_clause = "the actions";
        let mut seen_to = false;
        loop {
            let token = self.current();
            let word = if token.kind == TokenKind::Ident {
                self.text_of(token)
            } else {
                ""
            };
            match word {
                "to" => {
                    self.bump();
                    if seen_to {
                        return Err(self.duplicate_clause(token, "to"));
                    }
                    seen_to = true;
                    loop {
                        let kind = self.name("`user`, `group` or `service`", "after `to`")?;
                        let pattern = self.pattern(&format!("after `{}`", kind.text))?;
                        rule.principals.push(PrincipalMatcher {
                            span: kind.span.to(pattern.span),
                            kind,
                            pattern,
                        });
                        if self.eat(TokenKind::Comma).is_none() {
                            break;
                        }
                    }
                    last_clause = "the `to` clause";
                }
                "on" | "at" => {
                    let keyword = self.name("", "")?;
                    let existing = if word == "on" { &rule.dag } else { &rule.host };
                    if existing.is_some() {
                        return Err(self.duplicate_clause(token, word));
                    }
                    let constraint = self.entity_constraint(keyword)?;
                    if word == "on" {
                        rule.dag = Some(constraint);
                        last_clause = "the `on` clause";
                    } else {
                        rule.host = Some(constraint);
                        last_clause = "the `at` clause";
                    }
                }
                "when" | "unless" => {
                    let keyword = self.bump();
                    let expr = self.expr()?;
                    let kind = if word == "when" {
                        ConditionKind::When
                    } else {
                        ConditionKind::Unless
                    };
                    rule.conditions.push(Condition {
                        span: keyword.span.to(expr.span),
                        kind,
                        expr,
                    });
                    last_clause = if word == "when" {
                        "the `when` condition"
                    } else {
                        "the `unless` condition"
                    };
                }
                _ => break,
            }
        }
        if let Some(semi) = self.eat(TokenKind::Semi) {
            rule.span = start.to(semi.span);
            return Ok(rule);
        }
        let context = format!("after {last_clause}");
        let reported = self.error_expected("`;`", &context);
        // A rule that lacks only its `;` before the next declaration is otherwise whole:
        // keep it, so one typo does not hide the rule's own mistakes.
        if self.at_item_start() {
            rule.span = start.to(self.after_previous());
            return Ok(rule);
        }
        Err(reported)
    }

    fn duplicate_clause(&mut self, token: Token, keyword: &str) -> Reported {
        self.diagnostics.push(
            Diagnostic::error(
                Code::SyntaxError,
                token.span,
                format!("a rule has at most one `{keyword}` clause"),
            )
            .with_help("list several alternatives in one clause, separated by commas"),
        );
        Reported
    }

    fn entity_constraint(&mut self, keyword: Name) -> PResult<EntityConstraint> {
        let kind = self.name(
            "an entity kind such as `dag` or `host`",
            &format!("after `{}`", keyword.text),
        )?;
        let mut patterns = Vec::new();
        let mut span = keyword.span.to(kind.span);
        if matches!(self.current().kind, TokenKind::Str | TokenKind::Regex) {
            loop {
                let pattern = self.pattern("after `,`")?;
                span = span.to(pattern.span);
                patterns.push(pattern);
                if self.eat(TokenKind::Comma).is_none() {
                    break;
                }
            }
        }
        let mut filter = None;
        if self.eat_keyword("where").is_some() {
            let expr = self.expr()?;
            span = span.to(expr.span);
            filter = Some(expr);
        } else if patterns.is_empty() {
            return Err(self.error_expected(
                "an id pattern or `where`",
                &format!("after `{} {}`", keyword.text, kind.text),
            ));
        }
        Ok(EntityConstraint {
            keyword,
            kind,
            patterns,
            filter,
            span,
        })
    }

    fn pattern(&mut self, context: &str) -> PResult<Pattern> {
        let token = self.current();
        match token.kind {
            TokenKind::Str => {
                let text = self.string("", "")?;
                Ok(Pattern {
                    kind: PatternKind::Text(text.value),
                    span: text.span,
                })
            }
            TokenKind::Regex => {
                self.bump();
                let raw = self.text_of(token);
                let case_insensitive = raw.ends_with("/i");
                let body_end = raw.len() - if case_insensitive { 2 } else { 1 };
                let source = raw.get(1..body_end).unwrap_or("").to_owned();
                Ok(Pattern {
                    kind: PatternKind::Regex {
                        source,
                        case_insensitive,
                    },
                    span: token.span,
                })
            }
            _ => Err(self.error_expected(
                "a quoted id, a glob such as `\"etl_*\"` or a `/regex/`",
                context,
            )),
        }
    }

    // ----- expressions -----

    fn too_deep(&mut self) -> Reported {
        let span = self.current().span;
        self.diagnostics.push(
            Diagnostic::error(
                Code::NestingTooDeep,
                span,
                format!("nesting too deep: more than {MAX_NESTING} levels"),
            )
            .with_help("split the condition, or remove redundant parentheses"),
        );
        Reported
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            self.depth -= 1;
            return Err(self.too_deep());
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.enter()?;
        let result = self.or_expr();
        self.leave();
        result
    }

    fn or_expr(&mut self) -> PResult<Expr> {
        self.chain(TokenKind::OrOr, BinaryOp::Or, Parser::and_expr)
    }

    fn and_expr(&mut self) -> PResult<Expr> {
        self.chain(TokenKind::AndAnd, BinaryOp::And, Parser::not_expr)
    }

    /// A left-nested chain `a op b op c`; each operand deepens the tree by one level.
    fn chain(
        &mut self,
        token: TokenKind,
        op: BinaryOp,
        operand: fn(&mut Parser<'a>) -> PResult<Expr>,
    ) -> PResult<Expr> {
        let mut left = operand(self)?;
        let mut levels = 0;
        let result = loop {
            if self.eat(token).is_none() {
                break Ok(left);
            }
            if let Err(reported) = self.enter() {
                break Err(reported);
            }
            levels += 1;
            match operand(self) {
                Ok(right) => left = binary(op, left, right),
                Err(reported) => break Err(reported),
            }
        };
        for _ in 0..levels {
            self.leave();
        }
        result
    }

    fn not_expr(&mut self) -> PResult<Expr> {
        if let Some(bang) = self.eat(TokenKind::Bang) {
            self.enter()?;
            let inner = self.not_expr();
            self.leave();
            let inner = inner?;
            return Ok(Expr {
                span: bang.span.to(inner.span),
                kind: ExprKind::Not(Box::new(inner)),
            });
        }
        self.relation()
    }

    fn relation(&mut self) -> PResult<Expr> {
        let left = self.postfix()?;
        let op = match self.current().kind {
            TokenKind::EqEq => BinaryOp::Eq,
            TokenKind::NotEq => BinaryOp::NotEq,
            TokenKind::LAngle => BinaryOp::Less,
            TokenKind::LessEq => BinaryOp::LessEq,
            TokenKind::RAngle => BinaryOp::Greater,
            TokenKind::GreaterEq => BinaryOp::GreaterEq,
            TokenKind::Eq => {
                let token = self.current();
                self.diagnostics.push(
                    Diagnostic::error(Code::SyntaxError, token.span, "`=` is not a comparison")
                        .with_help("write `==` to compare"),
                );
                return Err(Reported);
            }
            TokenKind::Ident if self.at_keyword("in") => BinaryOp::In,
            TokenKind::Ident if self.at_keyword("has") => {
                self.bump();
                let attr = self.name("an attribute name", "after `has`")?;
                return Ok(Expr {
                    span: left.span.to(attr.span),
                    kind: ExprKind::Has {
                        target: Some(Box::new(left)),
                        attr,
                    },
                });
            }
            _ => return Ok(left),
        };
        self.bump();
        let right = self.postfix()?;
        Ok(binary(op, left, right))
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut expr = self.primary()?;
        while self.eat(TokenKind::Dot).is_some() {
            let name = self.name("an attribute name", "after `.`")?;
            expr = Expr {
                span: expr.span.to(name.span),
                kind: ExprKind::Field {
                    base: Box::new(expr),
                    name,
                },
            };
        }
        Ok(expr)
    }

    fn primary(&mut self) -> PResult<Expr> {
        let token = self.current();
        match token.kind {
            TokenKind::Int => {
                self.bump();
                Ok(Expr {
                    kind: ExprKind::Int(self.int_value(token, false)),
                    span: token.span,
                })
            }
            TokenKind::Minus if self.token(1).kind == TokenKind::Int => {
                self.bump();
                let digits = self.bump();
                Ok(Expr {
                    kind: ExprKind::Int(self.int_value(digits, true)),
                    span: token.span.to(digits.span),
                })
            }
            TokenKind::Str => {
                let text = self.string("", "")?;
                Ok(Expr {
                    kind: ExprKind::Str(text.value),
                    span: text.span,
                })
            }
            TokenKind::Ident => match self.text_of(token) {
                "true" | "false" => {
                    self.bump();
                    Ok(Expr {
                        kind: ExprKind::Bool(self.text_of(token) == "true"),
                        span: token.span,
                    })
                }
                "has" => {
                    self.bump();
                    let attr = self.name("an attribute name", "after `has`")?;
                    Ok(Expr {
                        span: token.span.to(attr.span),
                        kind: ExprKind::Has { target: None, attr },
                    })
                }
                word => {
                    self.bump();
                    Ok(Expr {
                        kind: ExprKind::Ident(word.to_owned()),
                        span: token.span,
                    })
                }
            },
            TokenKind::LParen => {
                self.bump();
                let inner = self.expr()?;
                let close = self.expect(TokenKind::RParen, "to close the parenthesis")?;
                Ok(Expr {
                    span: token.span.to(close.span),
                    kind: ExprKind::Paren(Box::new(inner)),
                })
            }
            TokenKind::LBrace => {
                self.bump();
                self.enter()?;
                let mut elements = Vec::new();
                let result = loop {
                    if self.at(TokenKind::RBrace) {
                        break Ok(());
                    }
                    match self.postfix() {
                        Ok(element) => elements.push(element),
                        Err(reported) => break Err(reported),
                    }
                    if self.eat(TokenKind::Comma).is_none() {
                        break Ok(());
                    }
                };
                self.leave();
                result?;
                let close = self.expect(TokenKind::RBrace, "to close the set")?;
                Ok(Expr {
                    span: token.span.to(close.span),
                    kind: ExprKind::Set(elements),
                })
            }
            _ => Err(self.error_expected("a value or condition", "here")),
        }
    }

    fn int_value(&mut self, token: Token, negative: bool) -> i64 {
        let digits = self.text_of(token);
        let parsed = if negative {
            format!("-{digits}").parse::<i64>()
        } else {
            digits.parse::<i64>()
        };
        match parsed {
            Ok(value) => value,
            Err(_) => {
                self.diagnostics.push(
                    Diagnostic::error(
                        Code::IntegerOutOfRange,
                        token.span,
                        "number does not fit in 64 bits",
                    )
                    .with_help("numbers range from -9223372036854775808 to 9223372036854775807"),
                );
                0
            }
        }
    }

    // ----- tests -----

    fn test(&mut self) -> PResult<TestBlock> {
        let keyword = self.bump();
        let name = self.string("the test's name in quotes", "after `test`")?;
        self.expect(TokenKind::LBrace, "after the test's name")?;
        let mut expects = Vec::new();
        while !self.at(TokenKind::RBrace) && !self.at(TokenKind::Eof) {
            match self.expectation() {
                Ok(expectation) => expects.push(expectation),
                Err(Reported) => {
                    // Resynchronise inside the block so the other expectations still count.
                    while !matches!(
                        self.current().kind,
                        TokenKind::Semi | TokenKind::RBrace | TokenKind::Eof
                    ) && !self.at_keyword("expect")
                    {
                        self.bump();
                    }
                    self.eat(TokenKind::Semi);
                }
            }
        }
        let close = self.expect(TokenKind::RBrace, "to close the test block")?;
        Ok(TestBlock {
            name,
            expects,
            span: keyword.span.to(close.span),
        })
    }

    fn expectation(&mut self) -> PResult<Expectation> {
        let keyword = self.expect_keyword("expect", "in a test block")?;
        let outcome = if self.eat_keyword("allow").is_some() {
            Outcome::Allow
        } else if self.eat_keyword("deny").is_some() {
            Outcome::Deny
        } else {
            return Err(self.error_expected("`allow` or `deny`", "after `expect`"));
        };
        let action = self.name("an action", "after the expected outcome")?;
        self.expect_keyword("by", "after the action")?;
        let principal_kind = self.name("`user` or `service`", "after `by`")?;
        let principal_id = self.string(
            "the principal's id in quotes",
            &format!("after `{}`", principal_kind.text),
        )?;
        let mut expectation = Expectation {
            outcome,
            action,
            principal_kind,
            principal_id,
            groups: Vec::new(),
            principal_attrs: Vec::new(),
            dag: None,
            host: None,
            context: Vec::new(),
            span: keyword.span,
        };
        if self.eat_keyword("in").is_some() {
            self.expect_keyword("groups", "after `in`")?;
            self.expect(TokenKind::LBrace, "after `groups`")?;
            while !self.at(TokenKind::RBrace) {
                expectation
                    .groups
                    .push(self.string("a group name in quotes", "in the group list")?);
                if self.eat(TokenKind::Comma).is_none() {
                    break;
                }
            }
            self.expect(TokenKind::RBrace, "to close the group list")?;
        }
        if self.eat_keyword("with").is_some() {
            expectation.principal_attrs = self.attr_inits("after `with`")?.0;
        }
        if self.eat_keyword("on").is_some() {
            self.expect_keyword("dag", "after `on`")?;
            expectation.dag = Some(self.string("the DAG's id in quotes", "after `dag`")?);
        }
        if self.eat_keyword("at").is_some() {
            self.expect_keyword("host", "after `at`")?;
            expectation.host = Some(self.string("the host's id in quotes", "after `host`")?);
        }
        if self.eat_keyword("context").is_some() {
            expectation.context = self.attr_inits("after `context`")?.0;
        }
        let semi = self.expect(TokenKind::Semi, "after the expectation")?;
        expectation.span = keyword.span.to(semi.span);
        Ok(expectation)
    }
}

fn binary(op: BinaryOp, left: Expr, right: Expr) -> Expr {
    Expr {
        span: left.span.to(right.span),
        kind: ExprKind::Binary {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
    }
}
