//! A reader for the request bodies the sidecar sees on nearly every call: decision
//! requests whose strings need no unescaping and whose attribute values are strings,
//! booleans, integers, null or arrays of those. It reads them into the same borrowed
//! form the serde path produces, without serde's per-value machinery and with the body's
//! UTF-8 checked once rather than string by string. Anything else — an escape, a float,
//! a nested object, a repeated or unknown key, malformed text — makes it give up
//! (`None`), and the serde path reads the body instead, so what is accepted and every
//! error message stay exactly theirs.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::{FastPrincipal, FastRequest, Text};

/// Reads `{"principal": …, "action": …, …}`.
pub(super) fn request(body: &[u8]) -> Option<FastRequest<'_>> {
    let mut scanner = Scanner::new(body)?;
    let request = scanner.request(Vec::new(), Vec::new())?;
    scanner.end()?;
    Some(request)
}

/// Reads `{"requests": [ … ]}`, handing each request to `each` as soon as it is read;
/// `each` may give up too. The requests' lists of groups and attributes reuse one
/// allocation across the batch.
pub(super) fn batch<'a>(
    body: &'a [u8],
    mut each: impl FnMut(&FastRequest<'a>) -> Option<()>,
) -> Option<()> {
    let mut scanner = Scanner::new(body)?;
    scanner.expect(b'{')?;
    if scanner.key()? != "requests" {
        return None;
    }
    scanner.expect(b'[')?;
    if !scanner.eat(b']') {
        let mut groups = Vec::new();
        let mut attributes = Vec::new();
        loop {
            let request = scanner.request(groups, attributes)?;
            each(&request)?;
            FastPrincipal {
                groups,
                attributes,
                ..
            } = request.principal;
            groups.clear();
            attributes.clear();
            if scanner.eat(b']') {
                break;
            }
            scanner.expect(b',')?;
        }
    }
    scanner.expect(b'}')?;
    scanner.end()
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

/// Deeper arrays than this are left to serde, which has its own limit.
const MAX_DEPTH: usize = 32;

impl<'a> Scanner<'a> {
    fn new(body: &'a [u8]) -> Option<Scanner<'a>> {
        let text = std::str::from_utf8(body).ok()?;
        Some(Scanner { text, at: 0 })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.bytes().get(self.at).copied()
    }

    /// Consumes `byte` (after any whitespace) if it is next.
    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn end(&mut self) -> Option<()> {
        self.skip_space();
        (self.at == self.text.len()).then_some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let rest = self.text.get(self.at..)?;
        if rest.starts_with(word) {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// A string without escapes, borrowed from the body.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let length = crate::json_text::first_to_escape(self.bytes().get(start..)?)?;
        let end = start + length;
        if self.bytes().get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    fn text(&mut self) -> Option<Text<'a>> {
        self.string().map(|text| Text(Cow::Borrowed(text)))
    }

    /// `null` or a string.
    fn optional_text(&mut self) -> Option<Option<Text<'a>>> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            Some(None)
        } else {
            self.text().map(Some)
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> Option<&'a str> {
        let key = self.string()?;
        self.expect(b':')?;
        Some(key)
    }

    /// Calls `field` for each key of an object, the scanner then at its value.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.key()?;
            field(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// A request, its groups and attributes put in the (empty) vectors given.
    fn request(
        &mut self,
        groups: Vec<Text<'a>>,
        attributes: Vec<(Text<'a>, Json)>,
    ) -> Option<FastRequest<'a>> {
        let mut lists = Some((groups, attributes));
        let mut principal = None;
        let mut action = None;
        let mut dag = None;
        let mut host = None;
        let mut context = None;
        self.object(|scanner, key| {
            match key {
                "principal" if principal.is_none() => {
                    let (groups, attributes) = lists.take()?;
                    principal = Some(scanner.principal(groups, attributes)?);
                }
                "action" if action.is_none() => action = Some(scanner.text()?),
                "dag" if dag.is_none() => dag = Some(scanner.optional_text()?),
                "host" if host.is_none() => host = Some(scanner.optional_text()?),
                "context" if context.is_none() => context = Some(scanner.context()?),
                _ => return None,
            }
            Some(())
        })?;
        Some(FastRequest {
            principal: principal?,
            action: action?,
            dag: dag.flatten(),
            host: host.flatten(),
            context: context.flatten(),
        })
    }

    fn principal(
        &mut self,
        mut groups: Vec<Text<'a>>,
        mut attributes: Vec<(Text<'a>, Json)>,
    ) -> Option<FastPrincipal<'a>> {
        let mut id = None;
        let mut kind = None;
        let mut seen_groups = false;
        self.object(|scanner, key| {
            match key {
                "id" if id.is_none() => id = Some(scanner.text()?),
                "kind" if kind.is_none() => kind = Some(scanner.optional_text()?),
                "groups" if !seen_groups => {
                    seen_groups = true;
                    scanner.groups(&mut groups)?;
                }
                "id" | "kind" | "groups" => return None,
                _ => {
                    if attributes.iter().any(|(name, _)| &**name == key) {
                        return None;
                    }
                    let value = scanner.value(0)?;
                    attributes.push((Text(Cow::Borrowed(key)), value));
                }
            }
            Some(())
        })?;
        Some(FastPrincipal {
            id: id?,
            kind: kind.flatten(),
            groups,
            attributes,
        })
    }

    /// `null` (no groups) or an array of strings, put in `groups`.
    fn groups(&mut self, groups: &mut Vec<Text<'a>>) -> Option<()> {
        if self.peek() == Some(b'n') {
            return self.literal("null");
        }
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            groups.push(self.text()?);
            if self.eat(b']') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// `null` or an object of attribute values. A repeated key keeps the last value, as
    /// the serde path's map does.
    fn context(&mut self) -> Option<Option<BTreeMap<Text<'a>, Json>>> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Some(None);
        }
        let mut context = BTreeMap::new();
        self.object(|scanner, key| {
            let value = scanner.value(0)?;
            context.insert(Text(Cow::Borrowed(key)), value);
            Some(())
        })?;
        Some(Some(context))
    }

    /// A string, boolean, integer, null, or an array of those.
    fn value(&mut self, depth: usize) -> Option<Json> {
        match self.peek()? {
            b'"' => self.string().map(|text| Json::String(text.to_owned())),
            b't' => self.literal("true").map(|()| Json::Bool(true)),
            b'f' => self.literal("false").map(|()| Json::Bool(false)),
            b'n' => self.literal("null").map(|()| Json::Null),
            b'[' if depth < MAX_DEPTH => {
                self.at += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Some(Json::Array(items));
                    }
                    self.expect(b',')?;
                }
            }
            b'-' | b'0'..=b'9' => self.integer(),
            _ => None,
        }
    }

    /// An integer as serde_json reads it: non-negative ones as unsigned, negative ones
    /// as signed. Fractions, exponents, `-0` and integers too large for 64 bits are left
    /// to serde, which reads them as floats.
    fn integer(&mut self) -> Option<Json> {
        let negative = self.bytes().get(self.at) == Some(&b'-');
        let start = self.at + usize::from(negative);
        let digits = self
            .bytes()
            .get(start..)?
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        let end = start + digits;
        let text = self.text.get(start..end)?;
        if digits == 0
            || (digits > 1 && text.starts_with('0'))
            || matches!(self.bytes().get(end), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        let magnitude: u64 = text.parse().ok()?;
        self.at = end;
        if negative {
            if magnitude == 0 {
                return None;
            }
            let value = 0_i64.checked_sub_unsigned(magnitude)?;
            Some(Json::from(value))
        } else {
            Some(Json::from(magnitude))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        reason = "tests fail loudly by design"
    )]

    use proptest::prelude::*;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SerdeBatch<'a> {
        #[serde(borrow)]
        requests: Vec<FastRequest<'a>>,
    }

    /// What `batch` hands out, as text to compare: its requests are lent, not given.
    fn scanned_batch(body: &[u8]) -> Option<Vec<String>> {
        let mut requests = Vec::new();
        batch(body, |request| {
            requests.push(format!("{request:?}"));
            Some(())
        })?;
        Some(requests)
    }

    fn debug_texts(requests: &[FastRequest<'_>]) -> Vec<String> {
        requests
            .iter()
            .map(|request| format!("{request:?}"))
            .collect()
    }

    #[test]
    fn reads_the_usual_bodies_as_serde_does() {
        let bodies = [
            r#"{"principal": {"id": "alice@corp.example", "groups": ["data-eng"], "mfa": true}, "action": "trigger", "dag": "etl_daily", "host": "stg-af-worker-01"}"#,
            r#"{"action":"view","principal":{"kind":"service","id":"svc","groups":null,"n":-12,"m":0,"s":["a",["b"]]},"dag":null,"context":{"ticket":"CHG-1","ticket":"CHG-2","time":"2026-01-02T03:04:05Z"}}"#,
            " \n{ \"principal\" : { \"id\" : \"caf\u{e9}\" , \"groups\" : [ ] } ,\t\"action\" : \"view\" , \"context\" : null }\r\n",
        ];
        for body in bodies {
            let scanned = request(body.as_bytes());
            assert!(scanned.is_some(), "{body}");
            let read: FastRequest<'_> = serde_json::from_str(body).unwrap();
            assert_eq!(scanned, Some(read), "{body}");
        }
    }

    /// What it leaves to serde: escapes, floats, objects as values, repeated or unknown
    /// keys, numbers serde reads as floats, and anything malformed.
    #[test]
    fn gives_up_on_the_rest() {
        let bodies = [
            r#"{"principal": {"id": "a\u0062"}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": 1.5}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": 1e3}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": -0}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": 18446744073709551616}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": 01}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": {"y": 1}}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "x": 1, "x": 2}, "action": "view"}"#,
            r#"{"principal": {"id": "a", "id": "b"}, "action": "view"}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "action": "view"}"#,
            r#"{"principal": {"id": "a"}, "action": "view", "extra": 1}"#,
            r#"{"principal": {"id": "a"}}"#,
            r#"{"principal": {"id": "a"}, "action": "view"} x"#,
            r#"{"principal": {"id": "a"}, "action": "view",}"#,
            "{\"principal\": {\"id\": \"a\tb\"}, \"action\": \"view\"}",
            r#"{"principal": {"id": "a"}, "action": "view""#,
            "",
        ];
        for body in bodies {
            assert_eq!(request(body.as_bytes()), None, "{body}");
        }
        assert_eq!(
            request(b"{\"principal\": {\"id\": \"\xff\"}, \"action\": \"v\"}"),
            None
        );
    }

    #[test]
    fn reads_batches_as_serde_does() {
        let one = r#"{"principal": {"id": "a", "groups": ["g"]}, "action": "view"}"#;
        for body in [
            format!(r#"{{"requests": [{one}, {one}]}}"#),
            String::from(r#"{"requests": []}"#),
            format!(" {{ \"requests\" : [ {one} ] }} "),
        ] {
            let read: SerdeBatch<'_> = serde_json::from_str(&body).unwrap();
            assert_eq!(
                scanned_batch(body.as_bytes()),
                Some(debug_texts(&read.requests)),
                "{body}"
            );
        }
        for body in [
            format!(r#"{{"requests": [{one}], "extra": 1}}"#),
            format!(r#"{{"requests": [{one},]}}"#),
            String::from(r#"{"requests": {}}"#),
            String::from("{}"),
        ] {
            assert_eq!(scanned_batch(body.as_bytes()), None, "{body}");
        }
        // The caller may stop it, as it does past the batch limit.
        let body = format!(r#"{{"requests": [{one}, {one}]}}"#);
        let mut seen = 0;
        let stopped = batch(body.as_bytes(), |_| {
            seen += 1;
            (seen < 2).then_some(())
        });
        assert_eq!((stopped, seen), (None, 2));
    }

    /// Strings; `plain` ones need no escaping.
    fn text(plain: bool) -> impl Strategy<Value = String> {
        let pattern = if plain {
            "[a-z0-9 _.@\u{e9}\u{1F600}-]{0,8}"
        } else {
            "[a-z0-9 _.@\"\\\\\u{e9}\u{1F600}\n-]{0,8}"
        };
        prop::string::string_regex(pattern).unwrap()
    }

    /// Attribute values; `plain` ones are those it reads itself.
    fn attribute_value(plain: bool) -> BoxedStrategy<serde_json::Value> {
        let mut choices = vec![
            any::<bool>().prop_map(|value| json!(value)).boxed(),
            any::<i64>().prop_map(|value| json!(value)).boxed(),
            any::<u64>().prop_map(|value| json!(value)).boxed(),
            text(plain).prop_map(|value| json!(value)).boxed(),
            Just(serde_json::Value::Null).boxed(),
            prop::collection::vec(text(plain), 0..3)
                .prop_map(|value| json!(value))
                .boxed(),
        ];
        if !plain {
            choices.push((-1e6..1e6_f64).prop_map(|value| json!(value)).boxed());
            choices.push(
                any::<i32>()
                    .prop_map(|value| json!({"nested": value}))
                    .boxed(),
            );
        }
        prop::strategy::Union::new(choices).boxed()
    }

    fn optional_text(plain: bool) -> impl Strategy<Value = Option<serde_json::Value>> {
        prop_oneof![
            Just(None),
            Just(Some(serde_json::Value::Null)),
            text(plain).prop_map(|value| Some(json!(value))),
        ]
    }

    fn request_json(plain: bool) -> impl Strategy<Value = serde_json::Value> {
        let principal = (
            text(plain),
            optional_text(plain),
            prop::option::of(prop::collection::vec(text(plain), 0..3)),
            prop::collection::btree_map(
                prop::sample::select(vec!["mfa", "team", "x"]),
                attribute_value(plain),
                0..3,
            ),
        )
            .prop_map(|(id, kind, groups, attributes)| {
                let mut principal = json!({"id": id});
                if let Some(kind) = kind {
                    principal["kind"] = kind;
                }
                if let Some(groups) = groups {
                    principal["groups"] = json!(groups);
                }
                for (name, value) in attributes {
                    principal[name] = value;
                }
                principal
            });
        (
            principal,
            prop::sample::select(vec!["view", "trigger", "launch"]),
            optional_text(plain),
            optional_text(plain),
            prop::option::of(prop::collection::btree_map(
                text(plain),
                attribute_value(plain),
                0..3,
            )),
            any::<bool>().prop_map(move |extra| extra && !plain),
        )
            .prop_map(|(principal, action, dag, host, context, extra)| {
                let mut request = json!({"principal": principal, "action": action});
                if let Some(dag) = dag {
                    request["dag"] = dag;
                }
                if let Some(host) = host {
                    request["host"] = host;
                }
                if let Some(context) = context {
                    request["context"] = json!(context);
                }
                if extra {
                    request["extra"] = json!(1);
                }
                request
            })
    }

    fn body(request_json: &serde_json::Value, pretty: bool) -> String {
        if pretty {
            serde_json::to_string_pretty(request_json).unwrap()
        } else {
            serde_json::to_string(request_json).unwrap()
        }
    }

    proptest! {
        /// Whatever it reads, serde reads the same way.
        #[test]
        fn agrees_with_serde(request_json in request_json(false), pretty in any::<bool>()) {
            let body = body(&request_json, pretty);
            if let Some(scanned) = request(body.as_bytes()) {
                let read: FastRequest<'_> = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(scanned, read);
            }
        }

        /// And it reads every request without escapes, floats or nested objects.
        #[test]
        fn reads_every_plain_request(request_json in request_json(true), pretty in any::<bool>()) {
            let body = body(&request_json, pretty);
            let read: FastRequest<'_> = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(request(body.as_bytes()), Some(read));
        }

        #[test]
        fn batches_agree_with_serde(
            requests in prop::collection::vec(request_json(false), 0..4),
            plain in prop::collection::vec(request_json(true), 0..4),
        ) {
            let body = serde_json::to_string(&json!({"requests": requests})).unwrap();
            if let Some(scanned) = scanned_batch(body.as_bytes()) {
                let read: SerdeBatch<'_> = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(scanned, debug_texts(&read.requests));
            }
            let body = serde_json::to_string(&json!({"requests": plain})).unwrap();
            let read: SerdeBatch<'_> = serde_json::from_str(&body).unwrap();
            prop_assert_eq!(scanned_batch(body.as_bytes()), Some(debug_texts(&read.requests)));
        }
    }
}
