//! Stable diagnostic codes. Each has a page in `spec/diagnostics/<code>.md`.

macro_rules! codes {
    ($($variant:ident => $name:literal,)*) => {
        /// The kebab-case name of a problem; stable across releases so CI filters and
        /// editor settings can refer to it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }
        }
    };
}

codes! {
    InvalidUtf8 => "invalid-utf8",
    InvalidCharacter => "invalid-character",
    UnterminatedString => "unterminated-string",
    UnterminatedRegex => "unterminated-regex",
    InvalidEscape => "invalid-escape",
    IntegerOutOfRange => "integer-out-of-range",
    SyntaxError => "syntax-error",
    NestingTooDeep => "nesting-too-deep",
    EmptyFile => "empty-file",
    InvalidJson => "invalid-json",
    MissingSchema => "missing-schema",
    DuplicateDeclaration => "duplicate-declaration",
    UnknownType => "unknown-type",
    UnknownEntityKind => "unknown-entity-kind",
    UnknownAttribute => "unknown-attribute",
    TypeMismatch => "type-mismatch",
    UnknownEnumValue => "unknown-enum-value",
    UnknownAction => "unknown-action",
    OptionalWithoutHas => "optional-without-has",
    MissingAttribute => "missing-attribute",
    InvalidGlob => "invalid-glob",
    InvalidRegex => "invalid-regex",
    PatternMatchesNothing => "pattern-matches-nothing",
    DuplicateId => "duplicate-id",
    DuplicateAnnotation => "duplicate-annotation",
    InvalidAnnotation => "invalid-annotation",
    InvalidExpires => "invalid-expires",
    RuleExpired => "rule-expired",
    RuleExpiresSoon => "rule-expires-soon",
    RuleNeverMatches => "rule-never-matches",
    InvalidTest => "invalid-test",
}
