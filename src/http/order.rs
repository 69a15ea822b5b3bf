//! Restores selection order in responses.
//!
//! async-graphql resolves sibling fields concurrently and inserts them in
//! completion order; the GraphQL spec asks for the order of the request
//! (CollectFields). This walks the executed document next to the result and
//! reorders every object's keys. It runs once per executed response (cache
//! hits are stored already ordered).

use std::cell::OnceCell;

use async_graphql::{
    Name, Value,
    indexmap::IndexMap,
    parser::types::{DocumentOperations, ExecutableDocument, Selection, SelectionSet},
};

/// Reorders `data` to follow the selected operation's selection order.
pub fn reorder(doc: &ExecutableDocument, operation: Option<&str>, data: &mut Value) {
    let op = match (&doc.operations, operation) {
        (DocumentOperations::Single(op), _) => &op.node,
        (DocumentOperations::Multiple(ops), Some(name)) => match ops.get(name) {
            Some(op) => &op.node,
            None => return,
        },
        (DocumentOperations::Multiple(ops), None) => match ops.values().next() {
            Some(op) => &op.node,
            None => return,
        },
    };
    Plan::new(doc, &[&op.selection_set.node]).apply(data);
}

/// Collects response keys in order, with the sub-selections of each key.
fn collect<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    out: &mut Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    depth: usize,
) {
    if depth > 32 {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => {
                let key = f.node.response_key();
                let sub = &f.node.selection_set.node;
                match out.iter_mut().find(|(k, _)| *k == &key.node) {
                    Some((_, subs)) => subs.push(sub),
                    None => out.push((&key.node, vec![sub])),
                }
            }
            Selection::InlineFragment(frag) => {
                collect(doc, &frag.node.selection_set.node, out, depth + 1)
            }
            Selection::FragmentSpread(spread) => {
                if let Some(def) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect(doc, &def.node.selection_set.node, out, depth + 1);
                }
            }
        }
    }
}

/// The response keys of one place in the response, in selection order,
/// each with its sub-selections and, once needed, their own plan. Every
/// object at that place (the 20 nodes of a page, their 20 titles) shares
/// one plan: selections are collected once per place, not once per object.
struct Plan<'a> {
    doc: &'a ExecutableDocument,
    keys: Vec<(&'a Name, Vec<&'a SelectionSet>)>,
    subs: Vec<OnceCell<Plan<'a>>>,
}

impl<'a> Plan<'a> {
    fn new(doc: &'a ExecutableDocument, sets: &[&'a SelectionSet]) -> Self {
        let mut keys = Vec::new();
        for set in sets {
            collect(doc, set, &mut keys, 0);
        }
        let subs = keys.iter().map(|_| OnceCell::new()).collect();
        Plan { doc, keys, subs }
    }

    /// The plan under key `i`, when it selects anything.
    fn sub(&self, i: usize) -> Option<&Plan<'a>> {
        let sets = &self.keys[i].1;
        if sets.iter().all(|s| s.items.is_empty()) {
            return None;
        }
        Some(self.subs[i].get_or_init(|| Plan::new(self.doc, sets)))
    }

    fn apply(&self, value: &mut Value) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.apply(item);
                }
            }
            Value::Object(map) => self.apply_object(map),
            _ => {}
        }
    }

    fn apply_object(&self, map: &mut IndexMap<Name, Value>) {
        let keys = &self.keys;
        // Most objects are already in order (objects whose fields are all
        // synchronous, and every `Lean` one): names compared side by side,
        // nothing hashed, nothing moved.
        if map.len() == keys.len() && map.keys().zip(keys).all(|(a, (b, _))| a == *b) {
            for (i, v) in map.values_mut().enumerate() {
                if let Some(sub) = self.sub(i) {
                    sub.apply(v);
                }
            }
            return;
        }
        // A stable sort by selection position, in place: the map keeps each
        // key's stored hash (a rebuilt map would hash every key again). Anything
        // not selected (should not happen) keeps its relative place at the end.
        let position = |k: &Name| keys.iter().position(|(key, _)| *key == k);
        map.sort_by_cached_key(|k, _| position(k).unwrap_or(usize::MAX));
        for (k, v) in map.iter_mut() {
            if let Some(sub) = position(k).and_then(|i| self.sub(i)) {
                sub.apply(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn obj(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (Name::new(k), v)).collect())
    }

    fn keys(value: &Value) -> Vec<String> {
        match value {
            Value::Object(map) => map.keys().map(|k| k.to_string()).collect(),
            _ => vec![],
        }
    }

    #[test]
    fn every_object_follows_the_selection_order_in_lists_and_fragments() {
        let doc = parse_query(
            "{ feed { edges { node { id rating ...F } } } } \
             fragment F on Review { body title { name id } }",
        )
        .expect("parses");
        // completion order, not selection order; the first node in order
        // already, the second one not
        let node = |first: bool| {
            let title = obj(vec![("id", Value::from(1)), ("name", Value::from("T"))]);
            if first {
                obj(vec![
                    ("id", Value::from("a")),
                    ("rating", Value::from(5)),
                    ("body", Value::from("b")),
                    ("title", title),
                ])
            } else {
                obj(vec![
                    ("title", title),
                    ("body", Value::from("b")),
                    ("rating", Value::from(4)),
                    ("id", Value::from("c")),
                ])
            }
        };
        let edges = Value::List(vec![
            obj(vec![("node", node(true))]),
            obj(vec![("node", node(false))]),
        ]);
        let mut data = obj(vec![("feed", obj(vec![("edges", edges)]))]);
        reorder(&doc, None, &mut data);
        let Value::Object(root) = &data else { panic!() };
        let Value::Object(feed) = &root["feed"] else {
            panic!()
        };
        let Value::List(edges) = &feed["edges"] else {
            panic!()
        };
        for edge in edges {
            let Value::Object(edge) = edge else { panic!() };
            let node = &edge["node"];
            assert_eq!(keys(node), ["id", "rating", "body", "title"]);
            let Value::Object(node) = node else { panic!() };
            assert_eq!(keys(&node["title"]), ["name", "id"]);
        }
    }

    #[test]
    fn objects_of_different_types_at_one_place_each_keep_their_own_keys() {
        let doc = parse_query(
            "{ nodes { __typename ... on Title { name reviews { total } } ... on User { username } id } }",
        )
        .expect("parses");
        let title = obj(vec![
            ("id", Value::from("t")),
            ("reviews", obj(vec![("total", Value::from(3))])),
            ("name", Value::from("T")),
            ("__typename", Value::from("Title")),
        ]);
        let user = obj(vec![
            ("username", Value::from("u")),
            ("id", Value::from("u1")),
            ("__typename", Value::from("User")),
        ]);
        let mut data = obj(vec![("nodes", Value::List(vec![title, user, Value::Null]))]);
        reorder(&doc, None, &mut data);
        let Value::Object(root) = &data else { panic!() };
        let Value::List(nodes) = &root["nodes"] else {
            panic!()
        };
        assert_eq!(keys(&nodes[0]), ["__typename", "name", "reviews", "id"]);
        assert_eq!(keys(&nodes[1]), ["__typename", "username", "id"]);
        assert_eq!(nodes[2], Value::Null);
    }
}
