//! The fast path for decoding requests: JSON text read straight into borrowed fields, with
//! no JSON tree in between. It accepts only what the tree path in [`crate::wire`] accepts
//! and builds the same request; anything unusual (an unknown field, a wrong type, a
//! duplicate key) makes it give up, and the caller runs the tree path, which names the
//! problem by JSON pointer. So errors stay as precise as before, and well-formed traffic
//! skips the tree.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use compiler::eval::{Request, RequestBuilder};
use compiler::ir::{EntityKind, PolicySet, PrincipalKind};
use compiler::time::{self, Timestamp};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value as Json;

mod scan;

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FastRequest<'a> {
    #[serde(borrow)]
    principal: FastPrincipal<'a>,
    #[serde(borrow)]
    action: Text<'a>,
    #[serde(borrow, default)]
    dag: Option<Text<'a>>,
    #[serde(borrow, default)]
    host: Option<Text<'a>>,
    /// A repeated key keeps its last value, as in the tree path.
    #[serde(borrow, default)]
    context: Option<BTreeMap<Text<'a>, Json>>,
}

/// A string borrowed from the body when it has no escapes, copied only when it does.
/// (`Cow<str>` itself always copies unless a derive marks the very field as borrowed,
/// which does not reach inside `Option` or `Vec`.)
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor(std::marker::PhantomData))
    }
}

struct TextVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for TextVisitor<'a> {
    type Value = Text<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }
}

#[derive(Debug, PartialEq)]
struct FastPrincipal<'a> {
    id: Text<'a>,
    kind: Option<Text<'a>>,
    groups: Vec<Text<'a>>,
    /// Every other key, typed later against the schema.
    attributes: Vec<(Text<'a>, Json)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for FastPrincipal<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(PrincipalVisitor(std::marker::PhantomData))
    }
}

struct PrincipalVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for PrincipalVisitor<'a> {
    type Value = FastPrincipal<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a principal object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut id = None;
        let mut kind = None;
        let mut groups = None;
        let mut attributes = Vec::with_capacity(4);
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key {
                "id" if id.is_none() => id = Some(map.next_value::<Text<'de>>()?),
                "kind" if kind.is_none() => {
                    kind = Some(map.next_value::<Option<Text<'de>>>()?);
                }
                "groups" if groups.is_none() => {
                    groups = Some(map.next_value::<Option<Vec<Text<'de>>>>()?);
                }
                "id" | "kind" | "groups" => return Err(de::Error::custom("duplicate key")),
                _ => {
                    let value = map.next_value::<Json>()?;
                    if attributes.iter().any(|(name, _)| *name == key) {
                        return Err(de::Error::custom("duplicate key"));
                    }
                    attributes.push((key, value));
                }
            }
        }
        Ok(FastPrincipal {
            id: id.ok_or_else(|| de::Error::missing_field("id"))?,
            kind: kind.flatten(),
            groups: groups.flatten().unwrap_or_default(),
            attributes,
        })
    }
}

/// One request, or `None` to take the tree path.
pub(crate) fn decode(set: &PolicySet, body: &[u8], now: Timestamp) -> Option<Request> {
    let fast = match scan::request(body) {
        Some(fast) => fast,
        None => serde_json::from_slice(body).ok()?,
    };
    build(set, &fast, now)
}

/// A batch, or `None` to take the tree path (which also reports an oversized batch).
pub(crate) fn decode_batch(
    set: &PolicySet,
    body: &[u8],
    now: Timestamp,
    max_batch: usize,
) -> Option<Vec<Request>> {
    // Sized once: a request's JSON is rarely shorter than this many bytes.
    let expected = (body.len() / 64).min(max_batch);
    let mut requests = Vec::with_capacity(expected);
    let scanned = scan::batch(body, |fast| {
        if requests.len() == max_batch {
            return None;
        }
        requests.push(build(set, fast, now)?);
        Some(())
    });
    if scanned.is_some() {
        return Some(requests);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let batch = BatchSeed {
        set,
        now,
        max_batch,
        expected,
    };
    let requests = batch.deserialize(&mut deserializer).ok()?;
    deserializer.end().ok()?;
    Some(requests)
}

/// `{"requests": [...]}`, each request built as soon as it is read. Anything the fast
/// path does not take — an unknown key, a request it cannot build, more than
/// `max_batch` requests — stops it, and the tree path says why.
#[derive(Clone, Copy)]
struct BatchSeed<'s> {
    set: &'s PolicySet,
    now: Timestamp,
    max_batch: usize,
    expected: usize,
}

impl<'de> DeserializeSeed<'de> for BatchSeed<'_> {
    type Value = Vec<Request>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for BatchSeed<'_> {
    type Value = Vec<Request>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a batch object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut requests = None;
        while let Some(key) = map.next_key::<Text<'de>>()? {
            if &*key != "requests" || requests.is_some() {
                return Err(de::Error::custom("left to the tree path"));
            }
            requests = Some(map.next_value_seed(RequestsSeed(self))?);
        }
        requests.ok_or_else(|| de::Error::missing_field("requests"))
    }
}

struct RequestsSeed<'s>(BatchSeed<'s>);

impl<'de> DeserializeSeed<'de> for RequestsSeed<'_> {
    type Value = Vec<Request>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RequestsSeed<'_> {
    type Value = Vec<Request>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of requests")
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let BatchSeed {
            set,
            now,
            max_batch,
            expected,
        } = self.0;
        let mut requests = Vec::with_capacity(expected);
        while let Some(fast) = seq.next_element::<FastRequest<'de>>()? {
            if requests.len() == max_batch {
                return Err(de::Error::custom("left to the tree path"));
            }
            let request =
                build(set, &fast, now).ok_or_else(|| de::Error::custom("left to the tree path"))?;
            requests.push(request);
        }
        Ok(requests)
    }
}

fn build(set: &PolicySet, fast: &FastRequest<'_>, now: Timestamp) -> Option<Request> {
    let principal_kind = match fast.principal.kind.as_deref() {
        None | Some("user") => PrincipalKind::User,
        Some("service") => PrincipalKind::Service,
        Some(_) => return None,
    };
    let action = set.schema().action(&fast.action)?;
    let mut request = RequestBuilder::new(
        set,
        fast.principal.id.to_string(),
        principal_kind,
        action,
        now,
    );
    request.reserve_groups(fast.principal.groups.len());
    for group in &fast.principal.groups {
        request.group(group);
    }
    for (name, value) in &fast.principal.attributes {
        if value.is_null() {
            continue;
        }
        let value = crate::wire::attribute_value(set, EntityKind::Principal, name, value)?;
        request.principal_attribute(name, value).ok()?;
    }
    // An empty id is an error the tree path names.
    match fast.dag.as_deref() {
        Some("") => return None,
        Some(id) => request.dag(id),
        None => {}
    }
    match fast.host.as_deref() {
        Some("") => return None,
        Some(id) => request.host(id),
        None => {}
    }
    for (name, value) in fast.context.iter().flatten() {
        if value.is_null() {
            continue;
        }
        if &**name == "time" {
            request.time(time::parse_rfc3339(value.as_str()?)?);
            continue;
        }
        let value = crate::wire::attribute_value(set, EntityKind::Context, name, value)?;
        request.context_attribute(name, value).ok()?;
    }
    Some(request.build())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use compiler::source::SourceSet;

    use super::*;
    use crate::wire::decode_request;

    fn set() -> PolicySet {
        let mut sources = SourceSet::new();
        sources.add(
            "schema.gate",
            "enum Env { dev, prod }\nprincipal { mfa: Bool, team: String }\nhost { env: Env }\n\
             context { ticket: String, window: Set<String> }\nactions { trigger, view }\n\
             host \"h1\" { env: prod }\npermit view to group \"ops\";\n",
        );
        compiler::analyze(&sources, &compiler::check::CheckOptions::at(0))
            .policy_set
            .expect("the schema checks")
    }

    /// Where the fast path answers, it answers exactly as the tree path does.
    #[test]
    fn agrees_with_the_tree_path() {
        let set = set();
        let bodies = [
            r#"{"principal": {"id": "alice", "groups": ["ops", "dev"], "mfa": true}, "action": "trigger", "dag": "etl", "host": "H1."}"#,
            r#"{"principal": {"id": "svc", "kind": "service", "team": "a\"b"}, "action": "view", "context": {"time": "2026-01-02T03:04:05Z", "ticket": "CHG-1", "window": ["x"]}}"#,
            r#"{"principal": {"id": "bob", "kind": null, "groups": null, "mfa": null}, "action": "view", "dag": null, "host": null, "context": null}"#,
            r#"{"principal": {"id": "caf\u00e9"}, "action": "view"}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "context": {"ticket": "x", "ticket": "y"}}"#,
        ];
        for body in bodies {
            let json: Json = serde_json::from_str(body).unwrap();
            let tree = decode_request(&set, &json, 7).unwrap();
            assert_eq!(decode(&set, body.as_bytes(), 7), Some(tree), "{body}");
        }
    }

    /// Strings without escapes are borrowed from the body wherever they sit; one with an
    /// escape is copied.
    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let body = br#"{"principal": {"id": "a\u0062", "kind": "user", "groups": ["ops"]}, "action": "view", "dag": "etl", "host": "h1", "context": {"ticket": "x"}}"#;
        let fast: FastRequest<'_> = serde_json::from_slice(body).unwrap();
        let borrowed = |text: &Text<'_>| matches!(text.0, Cow::Borrowed(_));
        assert!(!borrowed(&fast.principal.id), "an escaped id is copied");
        assert!(borrowed(&fast.action));
        assert!(fast.principal.kind.as_ref().is_some_and(borrowed));
        assert!(fast.principal.groups.iter().all(borrowed));
        assert!(fast.dag.as_ref().is_some_and(borrowed));
        assert!(fast.host.as_ref().is_some_and(borrowed));
        assert!(fast.context.unwrap().keys().all(borrowed));
    }

    #[test]
    fn a_batch_is_its_requests_and_anything_odd_is_left_to_the_tree_path() {
        let set = set();
        let one =
            r#"{"principal": {"id": "alice", "groups": ["ops"]}, "action": "view", "dag": "etl"}"#;
        let two = r#"{"principal": {"id": "svc", "kind": "service"}, "action": "trigger", "host": "H1."}"#;
        let body = format!(r#"{{"requests": [{one}, {two}, {one}]}}"#);
        let expected: Vec<Request> = [one, two, one]
            .iter()
            .map(|text| decode_request(&set, &serde_json::from_str(text).unwrap(), 7).unwrap())
            .collect();
        assert_eq!(
            decode_batch(&set, body.as_bytes(), 7, 3),
            Some(expected.clone())
        );
        assert_eq!(
            decode_batch(&set, br#"{"requests": []}"#, 7, 3),
            Some(Vec::new())
        );
        // A batch of one more than allowed, a request the fast path cannot build, an
        // unknown or repeated key, trailing text.
        let refused = [
            body.clone(),
            format!(
                r#"{{"requests": [{one}, {{"principal": {{"id": "a"}}, "action": "launch"}}]}}"#
            ),
            format!(r#"{{"requests": [{one}], "extra": 1}}"#),
            format!(r#"{{"requests": [{one}], "requests": [{one}]}}"#),
            format!(r#"{{"requests": [{one}]}} x"#),
            String::from(r#"{"requests": {}}"#),
            String::from("{}"),
        ];
        for (index, body) in refused.iter().enumerate() {
            let limit = if index == 0 { 2 } else { 3 };
            assert_eq!(
                decode_batch(&set, body.as_bytes(), 7, limit),
                None,
                "{body}"
            );
        }
    }

    /// Whatever the tree path refuses, the fast path leaves to it.
    #[test]
    fn leaves_every_bad_request_to_the_tree_path() {
        let set = set();
        let bodies = [
            r#"{"principal": {"id": "a"}, "action": "launch"}"#,
            r#"{"principal": {"id": "a", "mfa": "yes"}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "shoe": 1}, "action": "view"}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "dag": ""}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "extra": 1}"#,
            r#"{"principal": {"id": "a", "kind": "robot"}, "action": "view"}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "context": {"time": "noon"}}"#,
            r#"{"principal": {"id": "a", "id": "b"}, "action": "view"}"#,
            r#"{"principal": {"groups": ["ops"]}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "groups": [1]}, "action": "view"}"#,
            r#"[1, 2]"#,
        ];
        for body in bodies {
            assert_eq!(decode(&set, body.as_bytes(), 7), None, "{body}");
        }
    }
}
