//! Masking fields of a log line in place: each member keeps its position, and values
//! outside the masked paths keep their text, so a masked line has the same keys in the
//! same order as an unmasked one (the order spec/server.md gives).

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// An object's members in order, each value left as its JSON text.
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Members<'de>, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some(member) = map.next_entry::<String, &'de RawValue>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// Appends `object` (one JSON object's text) to `out` with the value at each of `paths`
/// (`["principal", "id"]`) replaced by `"***"`; a path the object lacks changes nothing.
/// `None` if `object` is not a JSON object.
pub(super) fn masked(object: &str, paths: &[&[String]], out: &mut Vec<u8>) -> Option<()> {
    let Members(members) = serde_json::from_str(object).ok()?;
    out.push(b'{');
    let mut inner: Vec<&[String]> = Vec::new();
    for (index, (key, value)) in members.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        crate::json_text::string(out, key);
        out.push(b':');
        inner.clear();
        inner.extend(paths.iter().filter_map(|path| match path.split_first() {
            Some((first, rest)) if first == key => Some(rest),
            _ => None,
        }));
        let text = value.get();
        if inner.iter().any(|rest| rest.is_empty()) {
            out.extend_from_slice(b"\"***\"");
        } else if !inner.is_empty() && text.starts_with('{') {
            masked(text, &inner, out)?;
        } else {
            out.extend_from_slice(text.as_bytes());
        }
    }
    out.push(b'}');
    Some(())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use super::*;

    fn mask(line: &str, paths: &[&str]) -> String {
        let paths: Vec<Vec<String>> = paths
            .iter()
            .map(|path| path.split('.').map(str::to_owned).collect())
            .collect();
        let paths: Vec<&[String]> = paths.iter().map(Vec::as_slice).collect();
        let mut out = Vec::new();
        masked(line, &paths, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn masked_fields_keep_their_place_and_the_rest_its_text() {
        let line = r#"{"time":"2026-12-03T10:00:00Z","principal":{"id":"alice","kind":"user","groups":["a\"b"]},"host":"h1","n":1.50,"dag":null}"#;
        assert_eq!(
            mask(line, &["principal.id", "host"]),
            r#"{"time":"2026-12-03T10:00:00Z","principal":{"id":"***","kind":"user","groups":["a\"b"]},"host":"***","n":1.50,"dag":null}"#
        );
        assert_eq!(
            mask(line, &["principal"]),
            line.replace(
                r#"{"id":"alice","kind":"user","groups":["a\"b"]}"#,
                r#""***""#
            )
        );
        assert_eq!(
            mask(line, &["missing", "time.deeper", "principal.none"]),
            line
        );
    }

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        let line = "{\"a\\u00e9\\n\":1}";
        assert_eq!(mask(line, &[]), "{\"aé\\n\":1}");
    }

    #[test]
    fn only_objects_are_masked() {
        for text in ["[1]", "1", "{", ""] {
            assert!(masked(text, &[], &mut Vec::new()).is_none(), "{text}");
        }
    }
}
