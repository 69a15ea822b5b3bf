//! Parsed documents of recently executed query texts.
//!
//! Clients send a few documents over and over with different variables
//! (codegen, persisted queries, paging with `after: $cursor`), and every
//! cache miss used to parse its document with async-graphql's pest grammar:
//! ~6% of a miss's CPU under W4. A document is kept once it parsed; its
//! copy for execution is a clone (names are reference-counted), and
//! async-graphql still runs the extensions' parse hook and validation on it
//! (introspection stays refused, variables are still checked).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use async_graphql::parser::{Error as ParseError, parse_query, types::ExecutableDocument};

/// Documents kept at most; full means cleared (cheap, hot ones return at once).
const DOC_ENTRIES: usize = 1024;
/// Longer query texts are parsed each time.
const DOC_MAX_QUERY: usize = 16 * 1024;

/// Seeded per process: keys are query texts, chosen by clients.
type DocMap = HashMap<Box<str>, Arc<ExecutableDocument>, foldhash::fast::RandomState>;

/// Bounded map from query text to its parsed document.
#[derive(Default)]
pub struct DocCache {
    map: Mutex<DocMap>,
}

impl DocCache {
    /// The parsed document of `query`, from the map when it was parsed before.
    pub fn parse(&self, query: &str) -> Result<Arc<ExecutableDocument>, ParseError> {
        if query.len() > DOC_MAX_QUERY {
            return parse_query(query).map(Arc::new);
        }
        if let Some(doc) = self.map.lock().ok().and_then(|m| m.get(query).cloned()) {
            return Ok(doc);
        }
        let doc = Arc::new(parse_query(query)?);
        if let Ok(mut map) = self.map.lock() {
            if map.len() >= DOC_ENTRIES {
                map.clear();
            }
            map.insert(query.into(), doc.clone());
        }
        Ok(doc)
    }

    /// How many documents are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_parsed_once_and_errors_are_not_kept() {
        let docs = DocCache::default();
        let a = docs
            .parse("{ feed(first: 1) { edges { cursor } } }")
            .expect("parses");
        let b = docs
            .parse("{ feed(first: 1) { edges { cursor } } }")
            .expect("parses");
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second request reuses the document"
        );
        assert!(docs.parse("{ feed(first: ").is_err());
        assert_eq!(docs.len(), 1, "a text that failed to parse is not kept");
    }

    #[test]
    fn the_map_stays_bounded() {
        let docs = DocCache::default();
        for i in 0..DOC_ENTRIES + 10 {
            docs.parse(&format!("{{ title(id: \"{i}\") {{ name }} }}"))
                .expect("parses");
        }
        assert!(docs.len() <= DOC_ENTRIES);
        let long = format!("{{ a{} }}", "b".repeat(DOC_MAX_QUERY));
        docs.parse(&long).expect("parses");
        assert!(docs.len() <= DOC_ENTRIES, "long texts are not kept");
    }
}
