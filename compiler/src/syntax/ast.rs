//! The syntax tree: what the author wrote, with a span on every node and nothing resolved.

use crate::source::Span;

/// A name as written, such as an attribute, action or enum value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A string literal with escapes already decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrLit {
    pub value: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "built once per declaration; boxing rules would only add noise"
)]
pub enum Item {
    Enum(EnumDecl),
    Entity(EntityDecl),
    Actions(ActionsDecl),
    Alias(AliasDecl),
    Inventory(InventoryEntry),
    Rule(Rule),
    Test(TestBlock),
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Enum(item) => item.span,
            Item::Entity(item) => item.span,
            Item::Actions(item) => item.span,
            Item::Alias(item) => item.span,
            Item::Inventory(item) => item.span,
            Item::Rule(item) => item.span,
            Item::Test(item) => item.span,
        }
    }
}

/// `enum Env { dev, staging, prod }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnumDecl {
    pub name: Name,
    pub values: Vec<Name>,
    pub span: Span,
}

/// `host { env: Env, site: String? }` — the attributes one kind of entity carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityDecl {
    pub kind: Name,
    pub fields: Vec<Field>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: Name,
    pub ty: TypeExpr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeExpr {
    pub kind: TypeExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExprKind {
    Named(Name),
    Set(Box<TypeExpr>),
    Optional(Box<TypeExpr>),
}

/// `actions { trigger, clear }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionsDecl {
    pub names: Vec<Name>,
    pub span: Span,
}

/// `action operate = { trigger, clear };`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasDecl {
    pub name: Name,
    pub actions: Vec<Name>,
    pub span: Span,
}

/// `dag "etl_daily" { owner: "data-eng" }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InventoryEntry {
    pub kind: Name,
    pub id: StrLit,
    pub attrs: Vec<AttrInit>,
    pub span: Span,
}

/// `name: value` inside an inventory entry or a test's principal or context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrInit {
    pub name: Name,
    pub value: Expr,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Effect {
    Permit,
    Forbid,
}

impl Effect {
    pub fn keyword(self) -> &'static str {
        match self {
            Effect::Permit => "permit",
            Effect::Forbid => "forbid",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub annotations: Vec<Annotation>,
    pub effect: Effect,
    pub effect_span: Span,
    pub actions: ActionSpec,
    pub principals: Vec<PrincipalMatcher>,
    pub dag: Option<EntityConstraint>,
    pub host: Option<EntityConstraint>,
    pub conditions: Vec<Condition>,
    pub span: Span,
}

/// `@id("etl-operators")`; the value is optional for flags such as `@draft`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    pub key: Name,
    pub value: Option<StrLit>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ActionSpec {
    All(Span),
    Named(Vec<Name>),
}

/// `group "data-eng"`, `user "bob@corp.example"`, `service "svc-*"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrincipalMatcher {
    pub kind: Name,
    pub pattern: Pattern,
    pub span: Span,
}

/// `on dag "etl_*" where "pii" in tags` or `at host where env == prod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityConstraint {
    pub keyword: Name,
    pub kind: Name,
    pub patterns: Vec<Pattern>,
    pub filter: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub kind: PatternKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternKind {
    /// Exact when it has no `*`, `?` or `[`, else a glob; the checker decides.
    Text(String),
    /// The source between the slashes, kept raw for the regex engine.
    Regex {
        source: String,
        case_insensitive: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionKind {
    When,
    Unless,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionKind,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    NotEq,
    Less,
    LessEq,
    Greater,
    GreaterEq,
    In,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "||",
            BinaryOp::And => "&&",
            BinaryOp::Eq => "==",
            BinaryOp::NotEq => "!=",
            BinaryOp::Less => "<",
            BinaryOp::LessEq => "<=",
            BinaryOp::Greater => ">",
            BinaryOp::GreaterEq => ">=",
            BinaryOp::In => "in",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExprKind {
    Bool(bool),
    Int(i64),
    Str(String),
    /// A bare name: an attribute of the entity a `where` tests, or an enum value.
    Ident(String),
    /// `base.name`, as in `principal.mfa` or `context.time.hour`.
    Field {
        base: Box<Expr>,
        name: Name,
    },
    Set(Vec<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// `principal has mfa`, or `has site` inside a `where`.
    Has {
        target: Option<Box<Expr>>,
        attr: Name,
    },
    Paren(Box<Expr>),
    /// Stands where the parser could not read an expression; already reported.
    Error,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestBlock {
    pub name: StrLit,
    pub expects: Vec<Expectation>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Allow,
    Deny,
}

/// `expect allow trigger by user "alice" in groups {"data-eng"} on dag "etl_daily" at host "stg-sql-01";`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expectation {
    pub outcome: Outcome,
    pub action: Name,
    pub principal_kind: Name,
    pub principal_id: StrLit,
    pub groups: Vec<StrLit>,
    pub principal_attrs: Vec<AttrInit>,
    pub dag: Option<StrLit>,
    pub host: Option<StrLit>,
    pub context: Vec<AttrInit>,
    pub span: Span,
}
