//! Cache keys: `cache:gql:` + hex sha256 over the normalized document, the
//! operation name, the canonical variables and the scope.
//!
//! Normalization is lexical (no parse, so a hit skips parsing entirely):
//! whitespace, commas and comments are dropped and tokens are joined by one
//! space, so requests that differ only in layout or comments share an entry.
//! Variables are serialized with object keys sorted at every level.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Fields whose value depends on who is asking. A document that names any of
/// them is cached per viewer (anonymous being one more scope), never publicly.
pub const VIEWER_FIELDS: [&str; 4] = ["viewer", "viewerHasLiked", "viewerIsFollowing", "homeFeed"];

/// Whose result a cache entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The same for everyone.
    Public,
    /// Viewer-specific fields, asked anonymously.
    Anonymous,
    /// Viewer-specific fields, asked by this user.
    User(i64),
}

impl Scope {
    fn as_key_part(&self) -> String {
        match self {
            Scope::Public => "public".into(),
            Scope::Anonymous => "anon".into(),
            Scope::User(id) => format!("user:{id}"),
        }
    }
}

/// A document reduced to its tokens, plus whether it names viewer fields.
#[derive(Debug)]
pub struct Normalized {
    /// Tokens joined by single spaces.
    pub text: String,
    /// Whether any name token is a [`VIEWER_FIELDS`] entry.
    pub mentions_viewer: bool,
    /// The first token (`query`, `mutation`, `subscription`, `{`, `fragment`…).
    pub first_token: String,
}

/// Lexically normalizes a GraphQL document.
pub fn normalize(doc: &str) -> Normalized {
    let bytes = doc.as_bytes();
    let mut out = String::with_capacity(doc.len());
    let mut mentions_viewer = false;
    let mut first_token = String::new();
    let mut i = 0;
    let mut push = |tok: &str, out: &mut String| {
        if first_token.is_empty() {
            first_token = tok.to_owned();
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(tok);
    };
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            0xEF if bytes[i..].starts_with(&[0xEF, 0xBB, 0xBF]) => i += 3, // BOM
            b'"' => {
                let start = i;
                if bytes[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                        i += if bytes[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i = (i + 3).min(bytes.len());
                } else {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i = (i + 1).min(bytes.len());
                }
                push(&doc[start..i.min(doc.len())], &mut out);
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                push("...", &mut out);
                i += 3;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let start = i;
                while i < bytes.len() && (bytes[i] == b'_' || bytes[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                let name = &doc[start..i];
                mentions_viewer |= VIEWER_FIELDS.contains(&name);
                push(name, &mut out);
            }
            c if c == b'-' || c.is_ascii_digit() => {
                let start = i;
                i += 1;
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
                push(&doc[start..i], &mut out);
            }
            _ => {
                // punctuators and anything else, one character (UTF-8 aware)
                let ch_len = doc[i..].chars().next().map_or(1, char::len_utf8);
                push(&doc[i..i + ch_len], &mut out);
                i += ch_len;
            }
        }
    }
    Normalized {
        text: out,
        mentions_viewer,
        first_token,
    }
}

/// Serializes variables with object keys sorted, so key order and
/// whitespace never matter; `null` and absent are the empty object.
pub fn canonical_variables(vars: Option<&Value>) -> String {
    // serde_json writes strings and scalars exactly as `Value`'s `Display`
    // does; writing them into one buffer spares an allocation per value
    fn write(v: &Value, out: &mut Vec<u8>) {
        match v {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                out.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    // writing into a Vec cannot fail
                    let _ = serde_json::to_writer(&mut *out, k);
                    out.push(b':');
                    write(v, out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            other => {
                let _ = serde_json::to_writer(&mut *out, other);
            }
        }
    }
    let mut out = Vec::with_capacity(64);
    match vars {
        None | Some(Value::Null) => out.extend_from_slice(b"{}"),
        Some(v) => write(v, &mut out),
    }
    // serde_json writes UTF-8 only
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The hash state after a request key's first part, the normalized document
/// (each part is followed by a zero byte).
fn hash_prefix(normalized: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update(normalized.as_bytes());
    h.update([0u8]);
    h
}

/// The hex sha256 identifying one cacheable request, from the state
/// [`hash_prefix`] left: the operation name, the canonical variables and
/// the scope follow the document.
fn finish_hash(mut h: Sha256, operation: Option<&str>, variables: &str, scope: &Scope) -> String {
    for part in [operation.unwrap_or(""), variables, &scope.as_key_part()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let mut out = [0u8; 64];
    // 32 bytes always fit 64 hex digits, which are ASCII
    let _ = hex::encode_to_slice(h.finalize(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A normalized document with its key's hash state so far: what every
/// request sending the same document text shares, whatever its variables
/// (see [`KeyMemo::document`]).
#[derive(Debug)]
pub struct Document {
    /// The document's tokens.
    pub normalized: Normalized,
    /// [`hash_prefix`] of the normalized text.
    prefix: Sha256,
}

impl Document {
    /// Normalizes `doc`.
    pub fn new(doc: &str) -> Self {
        let normalized = normalize(doc);
        let prefix = hash_prefix(&normalized.text);
        Self { normalized, prefix }
    }
}

/// Everything a cacheable query's key depends on except the viewer.
#[derive(Debug)]
pub struct Keyed {
    /// The normalized document.
    pub document: std::sync::Arc<Document>,
    /// The operation name sent.
    pub operation: Option<String>,
    /// The canonical variables.
    pub variables: String,
    /// The key for [`Scope::Public`], computed once.
    pub public_hash: String,
}

impl Keyed {
    /// Keys a query from its parts.
    pub fn new(
        document: std::sync::Arc<Document>,
        operation: Option<&str>,
        variables: Option<&Value>,
    ) -> Self {
        let variables = canonical_variables(variables);
        let public_hash = finish_hash(
            document.prefix.clone(),
            operation,
            &variables,
            &Scope::Public,
        );
        Self {
            document,
            operation: operation.map(str::to_owned),
            variables,
            public_hash,
        }
    }

    /// The scope a viewer's request falls in.
    pub fn scope(&self, viewer: Option<i64>) -> Scope {
        match (self.document.normalized.mentions_viewer, viewer) {
            (false, _) => Scope::Public,
            (true, None) => Scope::Anonymous,
            (true, Some(id)) => Scope::User(id),
        }
    }

    /// The request hash in `scope`.
    pub fn hash(&self, scope: &Scope) -> String {
        match scope {
            Scope::Public => self.public_hash.clone(),
            _ => finish_hash(
                self.document.prefix.clone(),
                self.operation.as_deref(),
                &self.variables,
                scope,
            ),
        }
    }
}

/// Remembers the [`Keyed`] of recently seen request bodies (exact bytes), so
/// a repeated request is keyed without parsing its JSON, normalizing its
/// document or hashing it again: on a cache hit those were most of the work.
/// A body is remembered the second time it is seen (bodies seen once, like
/// W4's ever-new cursors, cost only a fingerprint). Bounded by entries and
/// body size; full means cleared (cheap, and hot bodies return at once).
///
/// It also remembers normalized documents by their text
/// ([`KeyMemo::document`]): clients send the same few documents with ever
/// new variables (a page after a new cursor, a title by id), and those
/// bodies are new each time.
pub struct KeyMemo {
    map: std::sync::Mutex<MemoMap>,
    seen_once: std::sync::Mutex<std::collections::HashSet<u64>>,
    fingerprint: foldhash::fast::RandomState,
    documents: std::sync::Mutex<Documents>,
}

/// Documents by their text, and the bytes they hold (text and tokens).
#[derive(Default)]
struct Documents {
    map: std::collections::HashMap<Box<str>, std::sync::Arc<Document>, foldhash::fast::RandomState>,
    bytes: usize,
}

/// Seeded per process: keys are request bodies, chosen by clients.
type MemoMap =
    std::collections::HashMap<bytes::Bytes, std::sync::Arc<Keyed>, foldhash::fast::RandomState>;

/// Bodies kept at most.
const MEMO_ENTRIES: usize = 8192;
/// Larger bodies are keyed each time.
const MEMO_MAX_BODY: usize = 4096;
/// Documents kept at most.
const DOCUMENT_ENTRIES: usize = 1024;
/// Bytes of documents (text and tokens) kept at most.
const DOCUMENT_BYTES: usize = 4 << 20;
/// Longer documents are normalized each time.
const DOCUMENT_MAX_LEN: usize = 64 << 10;

impl Default for KeyMemo {
    fn default() -> Self {
        Self {
            map: std::sync::Mutex::new(MemoMap::with_capacity_and_hasher(
                1024,
                foldhash::fast::RandomState::default(),
            )),
            seen_once: std::sync::Mutex::new(std::collections::HashSet::new()),
            fingerprint: foldhash::fast::RandomState::default(),
            documents: std::sync::Mutex::new(Documents::default()),
        }
    }
}

impl KeyMemo {
    /// `doc` normalized, from memory when this text was seen lately.
    /// Bounded by entries and bytes; full means cleared, as for bodies.
    pub fn document(&self, doc: &str) -> std::sync::Arc<Document> {
        if doc.len() > DOCUMENT_MAX_LEN {
            return std::sync::Arc::new(Document::new(doc));
        }
        if let Ok(docs) = self.documents.lock()
            && let Some(found) = docs.map.get(doc)
        {
            return found.clone();
        }
        // normalized outside the lock
        let document = std::sync::Arc::new(Document::new(doc));
        if let Ok(mut docs) = self.documents.lock() {
            let size = doc.len() + document.normalized.text.len();
            if docs.map.len() >= DOCUMENT_ENTRIES || docs.bytes + size > DOCUMENT_BYTES {
                docs.map.clear();
                docs.bytes = 0;
            }
            if docs.map.insert(doc.into(), document.clone()).is_none() {
                docs.bytes += size;
            }
        }
        document
    }

    /// The key parts of a body seen before.
    pub fn get(&self, body: &[u8]) -> Option<std::sync::Arc<Keyed>> {
        if body.len() > MEMO_MAX_BODY {
            return None;
        }
        self.map.lock().ok()?.get(body).cloned()
    }

    /// Remembers the key parts of `body`.
    pub fn put(&self, body: bytes::Bytes, keyed: std::sync::Arc<Keyed>) {
        if body.len() > MEMO_MAX_BODY {
            return;
        }
        use std::hash::BuildHasher;
        let fingerprint = self.fingerprint.hash_one(&body[..]);
        {
            let Ok(mut seen) = self.seen_once.lock() else {
                return;
            };
            if !seen.remove(&fingerprint) {
                if seen.len() >= MEMO_ENTRIES {
                    seen.clear();
                }
                seen.insert(fingerprint);
                return;
            }
        }
        // a copy: the request's bytes may be a slice of a connection's read
        // buffer, which a kept slice would keep alive whole
        let body = bytes::Bytes::copy_from_slice(&body);
        let Ok(mut map) = self.map.lock() else { return };
        if map.len() >= MEMO_ENTRIES {
            map.clear();
        }
        map.insert(body, keyed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's key from its parts in one go, as [`Keyed`] computes it in two.
    fn request_hash(
        normalized: &str,
        operation: Option<&str>,
        variables: &str,
        scope: &Scope,
    ) -> String {
        finish_hash(hash_prefix(normalized), operation, variables, scope)
    }

    #[test]
    fn the_memo_keeps_bodies_seen_twice_and_keys_them_like_a_parse() {
        let memo = KeyMemo::default();
        let body = bytes::Bytes::from_static(br#"{"query":"{ titles { totalCount } }"}"#);
        let keyed = || {
            std::sync::Arc::new(Keyed::new(
                std::sync::Arc::new(Document::new("{ titles { totalCount } }")),
                None,
                None,
            ))
        };
        memo.put(body.clone(), keyed());
        assert!(memo.get(&body).is_none(), "seen once: only a fingerprint");
        memo.put(body.clone(), keyed());
        let hit = memo.get(&body).expect("seen twice: remembered");
        assert_eq!(hit.public_hash, keyed().public_hash);
        assert!(
            memo.get(br#"{"query":"{ titles { totalCount } } "}"#)
                .is_none(),
            "exact bytes only"
        );
        let big = bytes::Bytes::from(vec![b' '; MEMO_MAX_BODY + 1]);
        memo.put(big.clone(), keyed());
        memo.put(big.clone(), keyed());
        assert!(memo.get(&big).is_none(), "large bodies are keyed each time");
    }

    #[test]
    fn layout_and_comments_do_not_matter_but_strings_do() {
        let a =
            normalize("query Q($id: ID!) {\n  title(id: $id) { name, reviewCount } # the title\n}");
        let b = normalize("query Q($id:ID!){title(id:$id){name reviewCount}}");
        assert_eq!(a.text, b.text);
        assert_eq!(a.first_token, "query");
        let c = normalize("{ titles(search: \"a  b\") { name } }");
        let d = normalize("{ titles(search: \"a b\") { name } }");
        assert_ne!(c.text, d.text);
        let e = normalize("{ f(s: \"\"\"block # not a comment\"\"\") { ...F } }");
        assert!(
            e.text.contains("\"\"\"block # not a comment\"\"\""),
            "{}",
            e.text
        );
        assert!(e.text.contains("..."));
    }

    #[test]
    fn viewer_fields_are_detected_as_names_only() {
        assert!(normalize("{ feed { edges { node { viewerHasLiked } } } }").mentions_viewer);
        assert!(normalize("{ homeFeed { totalCount } }").mentions_viewer);
        assert!(!normalize("{ titles(search: \"viewer\") { name } }").mentions_viewer);
        assert!(!normalize("{ feed { totalCount } }").mentions_viewer);
    }

    #[test]
    fn variables_are_canonical() {
        let a: Value =
            serde_json::from_str(r#"{"b": 1, "a": {"y": [1, {"q": 2, "p": 1}], "x": null}}"#)
                .expect("json");
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":null,"y":[1,{"p":1,"q":2}]},"b":1}"#).expect("json");
        assert_eq!(canonical_variables(Some(&a)), canonical_variables(Some(&b)));
        assert_eq!(
            canonical_variables(None),
            canonical_variables(Some(&Value::Null))
        );
        let h1 = request_hash("x", None, "{}", &Scope::Public);
        assert_ne!(h1, request_hash("x", None, "{}", &Scope::Anonymous));
        assert_ne!(
            request_hash("x", None, "{}", &Scope::User(1)),
            request_hash("x", None, "{}", &Scope::User(2))
        );
    }

    #[test]
    fn keys_stay_what_they_were() {
        // sha256 of "x\0\0{}\0public\0": keys change only with their format
        assert_eq!(
            request_hash("x", None, "{}", &Scope::Public),
            "cfeeaa2e82a230442596cc535ff418be2d784937b78454139bca83187de01e63"
        );
        let vars: Value =
            serde_json::from_str(r#"{"id":"5","a":[1,"é\n",null,true,2.5,{"z":0,"\"":1}]}"#)
                .expect("json");
        assert_eq!(
            canonical_variables(Some(&vars)),
            r#"{"a":[1,"é\n",null,true,2.5,{"\"":1,"z":0}],"id":"5"}"#
        );
    }

    #[test]
    fn a_remembered_document_keys_like_a_fresh_one() {
        use std::sync::Arc;
        let memo = KeyMemo::default();
        let text = "query Q($id: ID!) { title(id: $id) { name viewerHasLiked } }";
        let doc = memo.document(text);
        assert!(
            Arc::ptr_eq(&doc, &memo.document(text)),
            "the same text is normalized once"
        );
        let vars = serde_json::json!({ "id": "5" });
        let keyed = Keyed::new(doc, Some("Q"), Some(&vars));
        let fresh = normalize(text);
        for scope in [Scope::Public, Scope::Anonymous, Scope::User(7)] {
            assert_eq!(
                keyed.hash(&scope),
                request_hash(&fresh.text, Some("Q"), r#"{"id":"5"}"#, &scope)
            );
        }
        assert_eq!(keyed.scope(Some(7)), Scope::User(7));
        assert_eq!(keyed.scope(None), Scope::Anonymous);
    }

    #[test]
    fn the_document_memo_is_bounded() {
        use std::sync::Arc;
        let memo = KeyMemo::default();
        let first = memo.document("{ a0 }");
        for i in 1..=DOCUMENT_ENTRIES {
            memo.document(&format!("{{ a{i} }}"));
        }
        assert!(
            !Arc::ptr_eq(&first, &memo.document("{ a0 }")),
            "full means cleared"
        );
        let long = format!("{{ {} }}", "a ".repeat(DOCUMENT_MAX_LEN));
        assert!(!Arc::ptr_eq(&memo.document(&long), &memo.document(&long)));
    }
}
